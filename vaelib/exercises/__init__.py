"""Checkers for the notebooks' exercises: a student's function against a reference, one module per notebook.

`check_kl_normal(my_kl_normal)` runs `my_kl_normal` on random inputs, compares it with a reference and
prints one line: a tick when it agrees, otherwise a cross and what is wrong (vaelib.exercises.core).
`check_...(fn).use()` is the function the rest of the notebook runs: the student's once it passes, else
the reference, with a line that says so, so that a skipped exercise never stops a notebook.
"""

from .core import CheckResult
from .nb01 import check_bernoulli_entropy, check_bernoulli_log_likelihood
from .nb02 import check_kl_normal, check_kl_standard_normal
from .nb03 import check_reparameterize, check_rsample_tril
from .nb04 import check_elbo_per_image, check_lr_factor, check_train_step, check_vae_forward, check_warmup_loss
from .nb05 import check_interpolate
from .nb06 import check_iwae
from .nb07 import check_collapsed_dims
from .nb08 import check_planar_log_det
from .nb09 import check_adam_step
from .nb10 import check_paired_difference
from .nb12 import check_conv_side, check_transposed_side
from .nb13 import check_class_posterior, check_one_draw_loss, check_unlabelled_loss

__all__ = ["CheckResult"] + [name for name in dir() if name.startswith("check_")]
