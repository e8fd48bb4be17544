"""vaelib: the thin, tested library behind the VAE course notebooks.

Kingma & Welling (2014), "Auto-Encoding Variational Bayes", on binarised MNIST, in PyTorch.
"""

from .config import ModelConfig, TrainConfig, pick_device, seed_everything, smoke
from .data import MNISTData, load_mnist
from .elbo import bernoulli_log_likelihood, elbo_terms, iwae_bound, kl_standard_normal, log_normal, reparameterize
from .model import VAE, build_model
from . import conv as _conv  # noqa: F401,E402  registers the convolutional networks (vaelib.registry.NETWORKS)
from . import train as _train  # noqa: F401,E402  registers the training objectives (vaelib.registry.OBJECTIVES)
from . import m2 as _m2  # noqa: F401,E402  registers the semi-supervised model kind "m2" (vaelib.registry.KINDS)

__version__ = "0.1.0"
__all__ = ["ModelConfig", "TrainConfig", "pick_device", "seed_everything", "smoke", "MNISTData",
           "load_mnist", "bernoulli_log_likelihood", "elbo_terms", "iwae_bound", "kl_standard_normal",
           "log_normal", "VAE", "build_model", "reparameterize"]

from .cpus import fit_threads  # noqa: E402  one torch thread per CPU the process may use (quota, affinity)
fit_threads()
from .threads import install as _adapt_threads  # noqa: E402  then adapted to the load (vaelib.threads)
_adapt_threads()
