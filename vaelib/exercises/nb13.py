"""Checkers for Notebook 13, labels: M2's unlabelled loss, the class posterior p(y|x) by Bayes' rule, and a
one-drawn-label surrogate loss made unbiased by the score function.

The three exercises are pure functions of tensors a model gives, so each check is exact and needs no model:
- `unlabelled_loss(logits, elbos)`: logits (B, C) of q(y|x), elbos (C, B) = ELBO(x, y) for every label y, ->
  U(x) = sum_y q(y|x) (-ELBO(x, y)) - H(q(y|x)) per image, (B,) [Kingma et al. 2014, eq. 7].
- `class_posterior(log_px_given_y)`: (C, N) log p(x|y) for every label -> p(y|x) (N, C), with p(y) = 1/C.
- `one_draw_loss(logits, elbo, y)`: logits (B, C), ELBO(x, y) (B,) of one label y ~ q(y|x) per image, y (B,) ->
  a surrogate loss (B,) whose gradient, averaged over y, is the gradient of U(x) (judged by enumerating y).
The references are written here from torch.distributions (Categorical's entropy and probabilities), not from
vaelib.m2; tests/test_exercises_nb13.py checks that they agree with vaelib.m2's own unlabelled loss.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Categorical

from .core import CheckResult, Fail, answer, call, check_shape, compare, report

C = 10  # labels; B and N below differ from C and from each other, so a wrong shape names its axis
B, N = 6, 7


def reference_unlabelled_loss(logits: torch.Tensor, elbos: torch.Tensor) -> torch.Tensor:
    """U(x) = sum_y q(y|x) (-ELBO(x, y)) - H(q(y|x)). Shapes: (B, C), (C, B) -> (B,)."""
    q = Categorical(logits=logits, validate_args=False)  # no .item(): works on any device
    return -(q.probs * elbos.T).sum(-1) - q.entropy()


def reference_class_posterior(log_px_given_y: torch.Tensor) -> torch.Tensor:
    """p(y|x) = p(x|y) p(y) / sum_y' p(x|y') p(y') with p(y) = 1/C, from log p(x|y). Shapes: (C, N) -> (N, C)."""
    return Categorical(logits=(log_px_given_y - math.log(len(log_px_given_y))).T, validate_args=False).probs


def loss_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, C) from nearly flat to sure, and ELBOs (C, B) of MNIST's size (-60 to -200 nats) that differ by
    label by tens of nats, so that each mistake below moves the loss by far more than the tolerance. Seed 2 is in
    float32 with one classifier sure by 150 nats of logit, as a trained one can be: there q of the other labels
    underflows to 0, and log(softmax) gives 0 * -inf = nan where log_softmax does not."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, generator=g) * torch.linspace(0.3, 4.0, B)[:, None]
    elbos = -60 - 140 * torch.rand(C, B, generator=g)
    if seed == 2:
        logits[-1, 3] += 150.0
        return logits, elbos
    return logits.double(), elbos.double()


def posterior_inputs(seed: int = 0) -> torch.Tensor:
    """log p(x|y) (C, N) as exact quadrature gives it, in float32: -80 to -250 nats, some labels within a nat of
    each other (an ambiguous image), others a hundred nats apart. Most are below -104, where exp underflows to 0
    in float32, so a naive exp-and-divide gives 0 / 0 for most images; only a stable form survives."""
    g = torch.Generator().manual_seed(seed)
    logs = -80 - 170 * torch.rand(C, N, generator=g)
    logs[1, :3] = logs[0, :3] + torch.rand(3, generator=g)  # close calls
    return logs


def unlabelled_mistakes(logits: torch.Tensor, elbos: torch.Tensor) -> dict[str, torch.Tensor]:
    q = torch.softmax(logits, -1)
    h = Categorical(logits=logits).entropy()
    expected = -(q * elbos.T).sum(-1)  # the loss's first term
    best = elbos.T.gather(1, logits.argmax(-1, keepdim=True))[:, 0]
    return {
        "returns the bound -U(x), not the loss U(x): the loss is the negative of the bound, "
        "sum_y q(y|x) (-ELBO(x, y)) - H(q(y|x))": -(expected - h),
        "forgets the entropy: U(x) subtracts H(q(y|x)) = -sum_y q(y|x) log q(y|x). Without it, nothing stops "
        "q(y|x) from putting all its mass on one label": expected,
        "adds the entropy: U(x) subtracts H(q(y|x)); a loss that adds it rewards a classifier for being sure":
            expected + h,
        "weights the labels equally: each label's -ELBO(x, y) is weighted by q(y|x), the classifier's softmax, "
        "not by p(y) = 1/C": -elbos.mean(0) - h,
        "weights by the logits: turn them into probabilities first (a softmax over the labels)":
            -(logits * elbos.T).sum(-1) - h,
        "keeps only the most probable label: the sum runs over every label, each weighted by q(y|x)": -best - h,
        "normalises over the batch: the softmax runs over the labels of one image (the last axis of logits)":
            -(torch.softmax(logits, 0) * elbos.T).sum(-1) - h,
        "the entropy takes the logits for log-probabilities: H(q) = -sum_y q log q, with log q = "
        "log_softmax(logits)": expected + (q * logits).sum(-1),
    }


def posterior_mistakes(logs: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "normalises over the images: p(y|x) sums to 1 over the labels of one image": torch.softmax(logs, 1).T,
        "normalises the log-likelihoods themselves: Bayes' rule divides p(x|y), that is exp(log p(x|y)), not its "
        "logarithm (a softmax over the labels does it)": (logs / logs.sum(0)).T,
        "returns log p(y|x): the check asks for the probabilities": torch.log_softmax(logs, 0).T,
    }


def _unlabelled(fn) -> str:
    for seed in range(3):
        logits, elbos = loss_inputs(seed)
        compare(answer(fn, logits, elbos), reference_unlabelled_loss(logits.double(), elbos.double()),
                {B: "batch", C: "label"}, unlabelled_mistakes(logits.double(), elbos.double()),
                "every ELBO and logit here is finite, but a sure classifier's q(y|x) underflows to 0 for the other "
                "labels, and log(0) * 0 is nan: take log q(y|x) from log_softmax, not from the log of the softmax",
                rtol=1e-5, atol=1e-3)
    return f"U(x) agrees with the sum over all {C} labels and the entropy (torch.distributions.Categorical)"


def _posterior(fn) -> str:
    for seed in range(3):
        logs = posterior_inputs(seed)
        compare(answer(fn, logs), reference_class_posterior(logs.double()), {C: "label", N: "image"},
                posterior_mistakes(logs.double()),
                "exp(log p(x|y)) underflows to 0 for every label when log p(x|y) is below about -104 nats (in "
                "float32, as the quadrature gives it): subtract each image's largest log p(x|y) first, or use torch.softmax, "
                "which does", rtol=1e-5, atol=1e-6)
    return "p(y|x) agrees with Bayes' rule, p(x|y) p(y) normalised over the labels, down to -250 nats"


def check_unlabelled_loss(fn) -> CheckResult:
    """fn(logits (B, C), elbos (C, B)) -> U(x) (B,): sum_y q(y|x) (-ELBO(x, y)) - H(q(y|x))."""
    return report(fn, _unlabelled, reference_unlabelled_loss)


def check_class_posterior(fn) -> CheckResult:
    """fn(log_px_given_y (C, N)) -> p(y|x) (N, C), by Bayes' rule with the uniform p(y)."""
    return report(fn, _posterior, reference_class_posterior)


# Exercise 2: one drawn label, with the score function (notebook 3) -----------------------------------------------
#
# A surrogate loss is judged by its gradient, and an unbiased one by its gradient's expectation over the drawn
# label. The check enumerates that expectation exactly: it calls the answer with every label y = c for every image,
# weights each gradient by q(c|x), and compares the sum with the gradient of U(x) itself. So every unbiased form
# passes (f(y) + sg[f(y)] log q(y|x); -ELBO(x, y) - H(q(y|x)) + sg[-ELBO(x, y)] log q(y|x); ...), and so does
# one with a baseline b that does not depend on the image's label. Each call mixes the labels across the images (an
# answer that reads one image's label for the whole batch fails); a baseline built from the other images' draws,
# leave-one-out, is beyond it, as their labels are not drawn independently here. Its gradient with respect to ELBO(x, y) must be -1 for every
# draw: that is how the encoder and decoder learn, and nothing averages it out.


def reference_one_draw_loss(logits: torch.Tensor, elbo: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A surrogate loss for U(x) from one label y ~ q(y|x) per image: f(y) + sg[f(y)] log q(y|x), where
    f(y) = -ELBO(x, y) + log q(y|x) and sg stops the gradient. Its gradient, grad f(y) + f(y) grad log q(y|x), is
    unbiased for grad U(x), the classifier's included (the score-function, or REINFORCE, estimator).
    Shapes: (B, C), (B,), (B,) integer labels -> (B,)."""
    log_q = Categorical(logits=logits, validate_args=False).log_prob(y)
    f = -elbo + log_q
    return f + f.detach() * log_q


def draw_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits (B, C) from nearly flat to sure, every label's ELBO (C, B) of MNIST's size, and labels (B,) drawn
    from q(y|x) itself, in float64."""
    logits, elbos = loss_inputs(seed)
    y = torch.multinomial(torch.softmax(logits, -1), 1, generator=torch.Generator().manual_seed(seed))[:, 0]
    return logits, elbos, y


def one_draw_mistakes() -> dict:
    """Each known mistake as the surrogate a student writes: label -> function of (logits, elbo, y) -> (B,)."""
    def log_q(lg, y):
        return torch.log_softmax(lg, -1).gather(1, y[:, None])[:, 0]

    def logit(lg, y):
        return lg.gather(1, y[:, None])[:, 0]

    return {
        "returns f(y) alone, the naive estimate: its gradient averages to zero for the classifier. Add a score "
        "term: a detached weight times log q(y|x)":
            lambda lg, e, y: -e + log_q(lg, y),
        "is the naive estimate -ELBO(x, y) - H(q(y|x)) of the failure study: the classifier gets only the entropy's "
        "gradient. Add a score term: a detached weight times log q(y|x)":
            lambda lg, e, y: -e - Categorical(logits=lg, validate_args=False).entropy(),
        "counts the entropy twice: with -H(q(y|x)) written exactly in the loss, the score term's weight is "
        "-ELBO(x, y) alone (log q(y|x) in the weight is the entropy's own score term)":
            lambda lg, e, y: -e - Categorical(logits=lg, validate_args=False).entropy()
            + (-e + log_q(lg, y)).detach() * log_q(lg, y),
        "the score term is added, not subtracted: the gradient is grad f(y) + f(y) grad log q(y|x)":
            lambda lg, e, y: (-e + log_q(lg, y)) - (-e + log_q(lg, y)).detach() * log_q(lg, y),
        "the score term's weight is -ELBO(x, y) alone, so the gradient misses U's entropy term: weight log q(y|x) "
        "by the whole f(y) = -ELBO(x, y) + log q(y|x), or add the entropy's own term, -H(q(y|x))":
            lambda lg, e, y: (-e + log_q(lg, y)) + (-e).detach() * log_q(lg, y),
        "log q(y|x) is the log-softmax of the logits at the drawn label, not the logit itself":
            lambda lg, e, y: (-e + logit(lg, y)) + (-e + logit(lg, y)).detach() * logit(lg, y),
        "the score term multiplies its weight by log q(y|x), not by q(y|x)":
            lambda lg, e, y: (-e + log_q(lg, y)) + (-e + log_q(lg, y)).detach() * log_q(lg, y).exp(),
    }


def check_per_image(value, like: torch.Tensor) -> None:
    """Fail unless value has like's shape (B,), naming the usual slip of indexing log q(y|x) by every label."""
    if isinstance(value, torch.Tensor) and value.shape == (len(like), len(like)):
        raise Fail(f"returned shape {tuple(value.shape)}, expected ({len(like)},): log_q[:, y] takes every drawn "
                   f"label for every image. Take each image's own: log_q.gather(1, y[:, None])[:, 0], or "
                   f"log_q[torch.arange(len(y)), y]")
    check_shape(value, like, {B: "batch"})


def label_gradients(surrogate, logits: torch.Tensor, elbos: torch.Tensor):
    """For every label c of every image: the gradient of the image's surrogate, under label c, with respect to its
    logits and to its ELBO(x, c) (zeros where it does not reach one). C calls; in call s image i has label
    (s + i) mod C, so every call mixes labels (an answer that reads one image's label for all is caught) and every
    image meets every label once. Shapes: -> (C, B, C), (C, B)."""
    n_labels, rows = logits.shape[-1], torch.arange(len(logits))
    by_logits, by_elbo = torch.zeros(n_labels, *logits.shape, dtype=logits.dtype), torch.zeros_like(elbos)
    for shift in range(n_labels):
        y = (shift + rows) % n_labels
        lg, e = logits.clone().requires_grad_(), elbos[y, rows].clone().requires_grad_()
        value = call(surrogate, lg, e, y)
        check_per_image(value, e)
        if not value.requires_grad:
            raise Fail("it carries no gradient: a surrogate loss is there for its gradient. Do not use .item(), "
                       "numpy or torch.no_grad(), and detach only the score term's weight")
        grads = torch.autograd.grad(value.sum(), [lg, e], allow_unused=True)
        g_logits, g_elbo = (torch.zeros_like(t) if g is None else g for g, t in zip(grads, (lg, e)))
        by_logits[y, rows], by_elbo[y, rows] = g_logits.detach(), g_elbo.detach()
    return by_logits, by_elbo


def average_over_labels(logits: torch.Tensor, by_label: torch.Tensor) -> torch.Tensor:
    """E_{y ~ q(y|x)} of a per-label quantity, exactly: sum_c q(c|x) value(c). Shapes: (B, C), (C, B, ...) ->
    (B, ...)."""
    q = torch.softmax(logits, -1).T  # (C, B)
    return (q.reshape(*q.shape, *[1] * (by_label.dim() - 2)) * by_label).sum(0)


def expected_gradient(surrogate, logits: torch.Tensor, elbos: torch.Tensor) -> torch.Tensor:
    """E_{y ~ q(y|x)} of the surrogate's gradient with respect to the logits. Shapes: (B, C), (C, B) -> (B, C)."""
    return average_over_labels(logits, label_gradients(surrogate, logits, elbos)[0])


def exact_gradient(logits: torch.Tensor, elbos: torch.Tensor) -> torch.Tensor:
    """The gradient of U(x) = sum_y q(y|x) (-ELBO(x, y)) - H(q(y|x)) with respect to the logits, from the
    torch.distributions reference of exercise 1. Shapes: (B, C), (C, B) -> (B, C)."""
    lg = logits.clone().requires_grad_()
    return torch.autograd.grad(reference_unlabelled_loss(lg, elbos).sum(), lg)[0]


def _one_draw(fn) -> str:
    for seed in range(2):
        logits, elbos, y = draw_inputs(seed)
        check_per_image(call(fn, logits.clone(), elbos.T.gather(1, y[:, None])[:, 0], y.clone()), y.double())
        # (once with labels drawn from q, as the notebook calls it)
        by_logits, by_elbo = label_gradients(fn, logits, elbos)
        log_q = torch.log_softmax(logits, -1).T  # (C, B)
        nonfinite = "every input here is finite: take log q(y|x) from log_softmax, not from the log of the softmax"
        compare(by_elbo, -torch.ones_like(by_elbo), {B: "batch", C: "label"},
                {"the loss does not reach ELBO(x, y): its gradient with respect to it must be -1, through which the "
                 "encoder and decoder learn. Detach only the score term's weight": torch.zeros_like(by_elbo),
                 "its gradient with respect to ELBO(x, y) is +1: the loss is f(y) = -ELBO(x, y) + log q(y|x), "
                 "plus the score term (did it return the bound instead of the loss, or flip the ELBO's sign?)":
                     torch.ones_like(by_elbo),
                 "the score term's weight must not carry a gradient: detach it. weight.detach() * log q(y|x) has the "
                 "gradient weight * grad log q(y|x); weight * log q(y|x) adds log q(y|x) * grad weight too":
                     -1 - log_q},
                nonfinite, rtol=1e-5, atol=1e-6, what="its gradient with respect to ELBO(x, y), for each label")
        mistakes = {label: expected_gradient(wrong, logits, elbos) for label, wrong in one_draw_mistakes().items()}
        compare(average_over_labels(logits, by_logits), exact_gradient(logits, elbos), {B: "batch", C: "label"}, mistakes, nonfinite,
                rtol=1e-5, atol=1e-6, what="its gradient with respect to the logits, averaged over y ~ q(y|x)")
    return "its gradient, averaged over the drawn label, is the gradient of U(x): unbiased"


def check_one_draw_loss(fn) -> CheckResult:
    """fn(logits (B, C), elbo (B,), y (B,) integer labels) -> a surrogate loss (B,) for U(x) from one drawn label
    y ~ q(y|x) per image, f(y) = -ELBO(x, y) + log q(y|x). Passes when its gradient with respect to ELBO(x, y) is -1
    and its gradient with respect to the logits, averaged over y ~ q(y|x) exactly, is the gradient of U(x). Only
    gradients are checked: a surrogate loss may have any value."""
    return report(fn, _one_draw, reference_one_draw_loss)
