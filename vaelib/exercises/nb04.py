"""Checkers for Notebook 4, training the VAE: its forward pass, its loss per image, its training step, the
learning-rate schedule and (as an open-ended extra) the KL warm-up.

Each reference below is the page's own code, so that `.use()` hands the notebook the very function (or class) a
student who skipped the exercise needs. The checkers build small models (D = 6 pixels, hidden widths 10 and 8,
L = 3) whose sizes differ from each other and from the batch, so that a wrong shape says which axis it came from.
"""

from __future__ import annotations

import copy
import itertools

import torch
import torch.nn.functional as F
from torch import nn

from .core import (
    B,
    CheckResult,
    D,
    Fail,
    L,
    answer,
    call,
    compare,
    normal_inputs,
    report,
    shape_text,
)

H1, H2 = 10, 8  # the checkers' hidden widths (B = 5, D = 6, L = 3 from .core)


class CourseVAE(nn.Module):
    """The reference: encoder D-H1-H2 (ReLU), heads for mu and logvar, decoder L-H2-H1-D returning logits.

    forward(x, generator): z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) drawn from `generator` on mu's device.
    Shapes: (B, D) -> logits (B, D), mu (B, L), logvar (B, L). The layers and their names are vaelib.model.VAE's.
    """

    def __init__(self, D=784, H1=256, H2=128, L=2):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(D, H1), nn.ReLU(), nn.Linear(H1, H2), nn.ReLU())
        self.mu_head = nn.Linear(H2, L)
        self.logvar_head = nn.Linear(H2, L)
        self.decoder = nn.Sequential(nn.Linear(L, H2), nn.ReLU(), nn.Linear(H2, H1), nn.ReLU(), nn.Linear(H1, D))

    def forward(self, x, generator=None):
        h = self.encoder(x)
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decoder(z), mu, logvar


def elbo_per_image(logits, x, mu, logvar):
    """The reference: the one-sample ELBO per image and its two terms, in nats.
    log p(x|z) = sum_d x_d l_d - softplus(l_d); KL = 0.5 sum_j (exp(logvar_j) + mu_j^2 - 1 - logvar_j).
    Shapes: (B, D), (B, D), (B, L), (B, L) -> elbo, log_px_z, kl, each (B,)."""
    log_px_z = (x * logits - F.softplus(logits)).sum(-1)
    kl = 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(-1)
    return log_px_z - kl, log_px_z, kl


def train_step(model, optimizer, x, generator):
    """The reference: one optimiser step on the loss -mean_b ELBO_b; returns that loss, detached. (B, D) -> ()."""
    logits, mu, logvar = model(x, generator)
    loss = -elbo_per_image(logits, x, mu, logvar)[0].mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


def lr_factor(step, total):
    """The reference: the learning rate's multiplier before step `step` (0 for the first) of `total`: 1, then
    linear to 0 over the last quarter, (total - step) / (total / 4). As vaelib.train.lr_factor(..., "decay")."""
    return min(1.0, (total - step) / (0.25 * total))


# --- the forward pass -------------------------------------------------------------------------------------------

def _small_reference() -> CourseVAE:
    """A small reference model with fixed weights; logvar's head is biased so that logvar spans -2.5 to 1.5
    (sigma from 0.29 to 2.1), where sigma, the variance and logvar itself all differ."""
    with torch.random.fork_rng():
        torch.manual_seed(4)
        model = CourseVAE(D, H1, H2, L)
    with torch.no_grad():
        model.mu_head.bias.copy_(torch.tensor([1.0, -2.0, 0.5]))
        model.logvar_head.bias.copy_(torch.tensor([-2.5, 1.5, -1.0]))
    return model


def _forward_variants(ref: CourseVAE, x: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """What the usual wrong forward passes return as logits (mu and logvar right), as a student would write them."""
    with torch.no_grad():
        h = ref.encoder(x)
        mu, logvar = ref.mu_head(h), ref.logvar_head(h)
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed))
        uniform = torch.rand(mu.shape, generator=torch.Generator().manual_seed(seed))
        shared = torch.randn(mu.shape[-1], generator=torch.Generator().manual_seed(seed))
        std = torch.exp(0.5 * logvar)
        return {
            "draws eps from a uniform distribution (torch.rand): eps ~ N(0, I) comes from torch.randn":
                ref.decoder(mu + std * uniform),
            "draws one eps for the whole batch (shape (L,)): every image needs its own noise, eps of mu's shape "
            "(B, L)": ref.decoder(mu + std * shared),
            "uses softplus(logvar) as the standard deviation: logvar is log sigma^2, so sigma = exp(logvar / 2)":
                ref.decoder(mu + F.softplus(logvar) * eps),
            "multiplies eps by the variance exp(logvar); the standard deviation is exp(logvar / 2)":
                ref.decoder(mu + logvar.exp() * eps),
            "uses logvar as the standard deviation: logvar is log sigma^2, so sigma = exp(logvar / 2)":
                ref.decoder(mu + logvar * eps),
            "multiplies eps by 1 / sigma = exp(-logvar / 2): sigma = exp(+logvar / 2)":
                ref.decoder(mu + torch.exp(-0.5 * logvar) * eps),
            "decodes mu itself: z must be a draw, z = mu + sigma * eps": ref.decoder(mu),
            "leaves out sigma: eps ~ N(0, I) must be scaled by sigma = exp(logvar / 2)": ref.decoder(mu + eps),
            "returns probabilities: a sigmoid at the end. The decoder returns logits, and the loss takes them as they "
            "are (notebook 1)": torch.sigmoid(ref.decoder(mu + std * eps)),
            "swaps the heads: mu comes from mu_head and logvar from logvar_head":
                ref.decoder(ref.logvar_head(h) + torch.exp(0.5 * ref.mu_head(h)) * eps),
        }


def _outputs(got, what: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(got, (tuple, list)) or len(got) != 3 or not all(isinstance(t, torch.Tensor) for t in got):
        kind = type(got).__name__ if not isinstance(got, (tuple, list)) else f"{len(got)} values"
        raise Fail(f"{what} returned {kind}; it returns three tensors: logits, mu, logvar")
    return tuple(got)


def check_vae_forward(cls) -> CheckResult:
    """cls: the page's CourseVAE class. Its forward(x, generator) -> logits (B, D), mu (B, L), logvar (B, L): the
    encoder, the two heads, z = mu + exp(logvar / 2) * eps with eps ~ N(0, I) drawn from `generator`, and the
    decoder's logits. Checked on a small CourseVAE(D=6, H1=10, H2=8, L=3) loaded with the reference's weights,
    against the reference with the same generator, gradients included."""
    def run(cls):
        ref, what = _small_reference(), f"{getattr(cls, '__name__', 'the class')}(D={D}, H1={H1}, H2={H2}, L={L})"
        try:
            model = cls(D=D, H1=H1, H2=H2, L=L)
        except Exception as err:
            raise Fail(f"{what} could not be built ({type(err).__name__}: {err}): keep __init__ as the page gives "
                       f"it") from None
        try:
            model.load_state_dict(ref.state_dict())
        except Exception:
            raise Fail(f"{what} could not take the reference's weights: its layers are not the page's (encoder, "
                       f"mu_head, logvar_head, decoder, of these sizes). Keep __init__ as the page gives it") from None
        x = torch.bernoulli(torch.full((B, D), 0.5), generator=torch.Generator().manual_seed(5))
        runs = []
        for global_seed in (100, 200):  # PyTorch's global generator differs between the two calls; `generator` not
            with torch.random.fork_rng():
                torch.manual_seed(global_seed)
                with torch.no_grad():
                    runs.append(_outputs(call(model, x, torch.Generator().manual_seed(6)), f"forward on {what}"))
        (logits, mu, logvar), again = runs
        expected = [t.detach() for t in ref(x, torch.Generator().manual_seed(6))]
        axes = {B: "batch", D: "pixel", L: "latent"}
        for name, got, want in zip(("logits", "mu", "logvar"), (logits, mu, logvar), expected):
            if got.shape != want.shape:
                raise Fail(f"{name}: returned shape {shape_text(got.shape)}, expected {shape_text(want.shape)}. "
                           f"forward returns logits (B, D), mu (B, L), logvar (B, L), in that order")
        if not all(torch.equal(a, b) for a, b in zip(runs[0], again)):
            raise Fail("gives a different result for the same generator: it draws eps from PyTorch's global "
                       "generator (torch.randn_like(mu), torch.randn without generator=, .rsample()). Draw it "
                       "with torch.randn(mu.shape, generator=generator, device=mu.device)")
        compare(mu, expected[1], axes, {
            "mu comes from logvar_head: swap the heads": expected[2],
            "mu passes through a ReLU (or another activation): the heads are linear, and mu may be negative":
                expected[1].relu(),
        }, "mu is finite", what="mu")
        compare(logvar, expected[2], axes, {
            "logvar comes from mu_head: swap the heads": expected[1],
            "logvar passes through a ReLU (or another activation): the heads are linear, and logvar may be "
            "negative (it is log sigma^2)": expected[2].relu(),
        }, "logvar is finite", what="logvar")
        compare(logits, expected[0], axes, _forward_variants(ref, x, 6),
                "the answer is finite here: sigma = exp(logvar / 2)", what="logits (mu and logvar are right)")
        _check_forward_gradients(model, ref, x)
        _check_eps_device(model, x)
        return (f"on {what} with the reference's weights, logits, mu and logvar equal the reference's for the same "
                f"generator, and so do the gradients")
    return report(cls, run, CourseVAE)


def _check_forward_gradients(model: nn.Module, ref: CourseVAE, x: torch.Tensor) -> None:
    """The gradient of a weighted sum of the three outputs reaches every weight as it does in the reference."""
    weights = [torch.randn(t, generator=torch.Generator().manual_seed(7)) for t in ((B, D), (B, L), (B, L))]
    grads = []
    for m in (model, ref):
        m.zero_grad()
        outputs = call(m, x, torch.Generator().manual_seed(6))
        sum((o * w).sum() for o, w in zip(outputs, weights)).backward()
        grads.append({name: p.grad for name, p in m.named_parameters()})
    for name, expected in grads[1].items():
        got = grads[0].get(name)
        if got is None or not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            raise Fail(f"the outputs are right but the gradient of {name} is not: z must stay in the graph (no "
                       f".detach(), .item(), torch.no_grad() or .sample() inside forward)")


def _check_eps_device(model: nn.Module, x: torch.Tensor) -> None:
    """Fail if forward draws eps on the CPU whatever the device of mu. On a GPU the notebook passes a generator made
    for the GPU, and torch.randn(shape, generator=generator) without device= then fails; on the CPU it works. So run
    forward once more on PyTorch's 'meta' device (shapes only, no numbers, on any machine): mu is there, the generator
    on the CPU, and an eps drawn without device= lands on the CPU and cannot be added to mu."""
    try:
        meta = copy.deepcopy(model).to("meta")
    except Exception:
        return  # a model that cannot be copied: nothing to say about eps
    try:
        with torch.no_grad():
            meta(x.to("meta"), torch.Generator().manual_seed(6))
    except Exception as err:
        if "device" in str(err) and ("cpu" in str(err).lower() or "meta" in str(err)):
            raise Fail("the values are right, but eps is drawn on the CPU whatever the device of mu: on a GPU the "
                       "generator is the GPU's, and torch.randn(shape, generator=generator) without device= then "
                       "fails. Draw it where mu is: torch.randn(mu.shape, generator=generator, device=mu.device) "
                       f"(with mu on PyTorch's 'meta' device, forward raised: {err})") from None


# --- the loss per image -----------------------------------------------------------------------------------------

def _elbo_inputs():
    """logits, x, mu, logvar: moderate logits, and one pixel per image the decoder is confidently wrong about
    (|logit| = 40, where float32 sigmoid is exactly 0 or 1); logvar negative and positive."""
    g = torch.Generator().manual_seed(13)
    logits = torch.empty(B, D).uniform_(-5, 5, generator=g)
    x = torch.bernoulli(torch.full((B, D), 0.5), generator=g)
    logits[:, 0], x[:, 0] = 40 * torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0]), torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0])
    mu, logvar, _ = normal_inputs(14)
    return logits, x, mu, logvar


def _log_px_z_mistakes(logits, x) -> dict[str, torch.Tensor]:
    ref = (x * logits - F.softplus(logits)).sum(-1)
    return {
        "log p(x|z) averages over the pixels: the pixels are independent given z, so their log-probabilities add "
        "up (.sum(-1); a mean over pixels trains a VAE with its KL weighted 784 times)": ref / D,
        "log p(x|z) has the wrong sign: that is the binary cross-entropy (a loss); a log-probability is <= 0": -ref,
        "log p(x|z) stops at -100 per pixel: binary_cross_entropy on sigmoid(logits) clamps its logs there, and "
        "the pixels the decoder is confidently wrong about are scored wrong. Work from the logits: x * logits - "
        "softplus(logits)": -F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").sum(-1),
        "log p(x|z): the sign of softplus; log sigmoid(l) = l - softplus(l), so log p = x * l - softplus(l)":
            (x * logits + F.softplus(logits)).sum(-1),
    }


def _kl_mistakes(mu, logvar) -> dict[str, torch.Tensor]:
    ref = 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(-1)
    return {
        "the KL averages over the latent dimensions: it is a sum over them (.sum(-1))": ref / L,
        "the KL misses its factor 1/2: KL = 0.5 * sum(exp(logvar) + mu^2 - 1 - logvar)": 2 * ref,
        "the KL adds logvar: it is - logvar, KL = 0.5 * sum(exp(logvar) + mu^2 - 1 - logvar)":
            0.5 * (logvar.exp() + mu**2 - 1 + logvar).sum(-1),
        "the KL uses logvar as the variance: the variance is exp(logvar)": 0.5 * (logvar + mu**2 - 1 - logvar).sum(-1),
        "the KL uses the standard deviation exp(logvar / 2) where the variance exp(logvar) belongs":
            0.5 * ((0.5 * logvar).exp() + mu**2 - 1 - logvar).sum(-1),
        "the KL has the wrong sign: a KL divergence is >= 0": -ref,
        "the KL misses its - 1: without it a q equal to the prior (mu = 0, logvar = 0) costs 0.5 nats per "
        "dimension instead of 0": 0.5 * (logvar.exp() + mu**2 - logvar).sum(-1),
        "the KL uses mu where mu^2 belongs": 0.5 * (logvar.exp() + mu - 1 - logvar).sum(-1),
        "the KL uses |mu| where mu^2 belongs": 0.5 * (logvar.exp() + mu.abs() - 1 - logvar).sum(-1),
    }


def check_elbo_per_image(fn) -> CheckResult:
    """fn(logits, x, mu, logvar) -> (elbo, log_px_z, kl), each (B,) in nats: log p(x|z) from the logits summed
    over the D pixels, KL(N(mu, exp(logvar)) || N(0, I)) summed over the L latent dimensions, elbo = log_px_z - kl.
    Finite where a sigmoid saturates, with autograd's gradient. Shapes: (B, D), (B, D), (B, L), (B, L) -> 3 x (B,)."""
    def run(fn):
        logits, x, mu, logvar = _elbo_inputs()
        elbo, log_px_z, kl = (t.detach() for t in elbo_per_image(logits, x, mu, logvar))
        got = answer(fn, logits, x, mu, logvar)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise Fail(f"returned {type(got).__name__ if not isinstance(got, (tuple, list)) else f'{len(got)} values'}"
                       f"; it returns three: elbo, log_px_z, kl")
        axes = {B: "batch", D: "pixel", L: "latent"}
        for name, value in zip(("elbo", "log_px_z", "kl"), got):
            _check_per_image(name, value)
        got = [t.detach().double() for t in got]
        terms = (elbo, log_px_z, kl)
        for order in list(itertools.permutations(range(3)))[1:]:  # every order but the right one
            if all(torch.allclose(a, terms[i].double(), rtol=1e-4, atol=1e-4) for a, i in zip(got, order)):
                raise Fail("returns the three in another order: (elbo, log_px_z, kl)")
        _check_capped(got[1], logits, x)
        compare(got[1], log_px_z, axes, _log_px_z_mistakes(logits, x),
                "log p(x|z) is -inf or nan where a sigmoid saturates (logit +-40 on a pixel the decoder gets wrong): "
                "a sigmoid followed by a log gives log 0. Work from the logits: x * logits - softplus(logits)",
                what="log_px_z")
        compare(got[2], kl, axes, _kl_mistakes(mu, logvar),
                "logvar is negative here (it is log sigma^2, any real number): the variance is exp(logvar)", what="kl")
        compare(got[0], elbo, axes, {
            "elbo adds the KL: elbo = log_px_z - kl": log_px_z + kl,
            "elbo has the wrong sign: that is the loss, -elbo; the ELBO is log_px_z - kl": -elbo,
        }, "both terms are finite", what="elbo (log_px_z and kl are right)")
        _check_elbo_gradient(fn, logits, x, mu, logvar)
        return ("elbo, log_px_z and kl equal the reference's (sums over pixels and latent dimensions, from the logits, "
                "|logit| = 40 included), gradients too")
    return report(fn, run, elbo_per_image)


def _check_capped(got: torch.Tensor, logits: torch.Tensor, x: torch.Tensor) -> None:
    """Fail if log_px_z is right on the moderate pixels but caps pixel 0 (|logit| = 40, where the decoder is
    confidently wrong and the log-probability is -40) somewhere between -40 and 0: a clamp of the probabilities,
    sigmoid(l).clamp(1e-6, 1 - 1e-6), or a small constant inside a log, log(p + 1e-7). Whatever the constant, the
    cap is the same for every image; the gradient there is 0, so such pixels stop being learnt."""
    if not isinstance(got, torch.Tensor) or got.shape != (B,):
        return
    rest = (x * logits - F.softplus(logits))[:, 1:].sum(-1).double()  # every pixel but the saturated one
    pixel0 = got.detach().double().cpu() - rest  # what the answer gave the confidently wrong pixel
    true = (x[:, 0] * logits[:, 0] - F.softplus(logits[:, 0])).double()  # -40
    if torch.isfinite(pixel0).all() and (pixel0 > true + 1).all() and (pixel0 < -1).all() \
            and pixel0.max() - pixel0.min() < 0.1:
        raise Fail(f"log_px_z caps the log-probability of a pixel the decoder is confidently wrong about (logit "
                   f"+-40) at {pixel0.mean().item():.1f} nats where it is {true[0].item():.0f}: a clamp of the "
                   f"probabilities or the logits, or a small constant inside a log (log(p + 1e-7)), does that, and gives such "
                   f"pixels no gradient. Work from the logits: log sigmoid(l) and log(1 - sigmoid(l)) with softplus")


def _check_per_image(name: str, value) -> None:
    """Fail unless value is a (B,) tensor, saying which reduction went wrong."""
    if not isinstance(value, torch.Tensor):
        raise Fail(f"{name} is a {type(value).__name__}; each of the three is a (B,) tensor, one value per image")
    if value.shape == (B,):
        return
    why = {(): "it reduced over the batch axis too: one value per image, no mean or sum over the batch",
           (B, D): "it did not sum over the pixel axis (.sum(-1))",
           (B, L): "it did not sum over the latent axis (.sum(-1))"}
    raise Fail(f"{name}: returned shape {shape_text(value.shape)}, expected {shape_text((B,))}: "
               f"{why.get(tuple(value.shape), 'one value per image')}")


def _check_elbo_gradient(fn, logits, x, mu, logvar) -> None:
    inputs = [t.clone().requires_grad_() for t in (logits, mu, logvar)]
    value = call(fn, inputs[0], x, inputs[1], inputs[2])[0]
    if not value.requires_grad:
        raise Fail("the values are right but carry no gradient: no .detach(), .item(), numpy or torch.no_grad() "
                   "inside")
    weights = torch.randn(B, generator=torch.Generator().manual_seed(15))
    (value * weights).sum().backward()
    reference = [t.clone().requires_grad_() for t in (logits, mu, logvar)]
    (elbo_per_image(reference[0], x, reference[1], reference[2])[0] * weights).sum().backward()
    for name, got, want in zip(("logits", "mu", "logvar"), inputs, reference):
        if got.grad is None or not torch.allclose(got.grad, want.grad, rtol=1e-4, atol=1e-5):
            raise Fail(f"the values are right but the gradient with respect to {name} is not (a clamp or a where() "
                       f"leaves 0 there): build log p(x|z) from softplus and the KL from exp(logvar)")


# --- the training step ------------------------------------------------------------------------------------------

def _wrong_steps() -> dict[str, callable]:
    """The usual wrong steps, each as a student would write it, with the message that names it."""
    def loss_of(model, x, generator, reduce=lambda e: -e.mean(), term=0):
        logits, mu, logvar = model(x, generator)
        return reduce(elbo_per_image(logits, x, mu, logvar)[term])

    def step(zero=True, **loss_options):
        def fn(model, optimizer, x, generator):
            loss = loss_of(model, x, generator, **loss_options)
            if zero:
                optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss.detach()
        return fn

    def mean_over_pixels(model, optimizer, x, generator):
        logits, mu, logvar = model(x, generator)
        kl = 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(-1)
        loss = F.binary_cross_entropy_with_logits(logits, x) + kl.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()

    return {
        "forgets optimizer.zero_grad(): the second step added its gradient to the first's. PyTorch accumulates "
        "gradients in .grad; clear them before loss.backward()": step(zero=False),
        "sums the loss over the batch: the loss is minus the batch *mean* of the ELBO, so that the step size does "
        "not grow with B": step(reduce=lambda e: -e.sum()),
        "minimises the ELBO: the loss is minus the ELBO (loss = -elbo.mean())": step(reduce=lambda e: e.mean()),
        "the loss leaves out the KL term: elbo_per_image returns (elbo, log_px_z, kl), and the loss is -elbo":
            step(reduce=lambda e: -e.mean(), term=1),
        "the loss averages over the pixels (binary_cross_entropy_with_logits' default reduction='mean'): that "
        "trains a VAE with its KL weighted D times; use -elbo_per_image(...)[0].mean()": mean_over_pixels,
    }


def _step_inputs():
    g = torch.Generator().manual_seed(16)
    return [torch.bernoulli(torch.full((B, D), 0.5), generator=g) for _ in range(2)]


def _two_steps(fn, global_seed: int):
    """Two steps of fn with plain SGD (lr 0.1) from the small reference's weights, the noise from one generator:
    what fn returned each time, and the weights after each step."""
    batches = _step_inputs()
    with torch.random.fork_rng():
        torch.manual_seed(global_seed)
        model = CourseVAE(D, H1, H2, L)
        model.load_state_dict(_small_reference().state_dict())
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        generator, returned, weights = torch.Generator().manual_seed(17), [], []
        for x in batches:
            returned.append(call(fn, model, optimizer, x, generator))
            weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    return returned, weights


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-6)


def check_train_step(fn) -> CheckResult:
    """fn(model, optimizer, x, generator) -> one optimiser step on the batch x (B, D): zero the gradients, the loss
    -mean_b ELBO_b (elbo_per_image, noise from `generator`), backward, step; returns the loss, detached. Checked over
    two steps with SGD against the reference, from the same weights and generator."""
    def run(fn):
        got, got_weights = _two_steps(fn, 300)
        for value in got:
            if isinstance(value, float):
                raise Fail("returned a Python number (loss.item()?): return loss.detach(), a tensor that stays on "
                           "the device, so that the step need not wait for the GPU")
            if not isinstance(value, torch.Tensor):
                raise Fail(f"returned {type(value).__name__}: return the loss, loss.detach()")
            if value.numel() != 1:
                raise Fail(f"returned a tensor of shape {tuple(value.shape)}: the loss is one number, the batch mean")
            if value.requires_grad:
                raise Fail("returned the loss still attached to its graph: return loss.detach(), or the losses kept "
                           "over an epoch hold every step's graph in memory")
        again, again_weights = _two_steps(fn, 400)
        if not all(_close(a, b) for a, b in zip(got + got_weights, again + again_weights)):
            raise Fail("gives different results for the same generator: pass it to the model, model(x, generator), "
                       "so that the noise comes from it")
        start = torch.cat([p.detach().flatten() for p in _small_reference().parameters()])
        if _close(got_weights[0], start):
            raise Fail("the first step left the weights as they were: the order is optimizer.zero_grad(), "
                       "loss.backward(), optimizer.step()")
        expected, expected_weights = _two_steps(train_step, 300)
        if all(_close(a.reshape(()), b) for a, b in zip(got, expected)) and all(
                _close(a, b) for a, b in zip(got_weights, expected_weights)):
            return ("two steps from the same weights and generator give the reference's losses and weights (loss = "
                    "-batch mean of the ELBO, gradients cleared each step, the loss returned detached)")
        for message, wrong in _wrong_steps().items():
            _, weights = _two_steps(wrong, 300)
            if all(_close(a, b) for a, b in zip(got_weights, weights)):
                raise Fail(message)
        if all(_close(a, b) for a, b in zip(got_weights, expected_weights)):
            if all(_close(a.reshape(()), -b) for a, b in zip(got, expected)):
                raise Fail("the step is right, but it returns the ELBO: return the loss it minimised, -ELBO")
            raise Fail(f"the step is right but what it returns is not the loss: expected "
                       f"{expected[0].item():.4f}, got {got[0].reshape(()).item():.4f}")
        raise Fail("the weights after the step differ from the reference's, and not by a mistake this check knows: "
                   "loss = -elbo_per_image(logits, x, mu, logvar)[0].mean(), with model(x, generator)")
    return report(fn, run, train_step)


# --- the learning-rate schedule ---------------------------------------------------------------------------------

def check_lr_factor(fn) -> CheckResult:
    """fn(step, total) -> the learning rate's multiplier before step `step` (0 for the first) of `total`: 1 for
    the first three quarters, then linear to 0 over the last quarter, (total - step) / (total / 4); the last step,
    step = total - 1, still moves the weights. Checked at every step for totals 8, 100 and 12,000."""
    def run(fn):
        for total in (12_000, 100, 8):
            steps = torch.arange(total, dtype=torch.float64)
            values = [call(fn, step, total) for step in range(total)]
            if not all(isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1)
                       for v in values):
                raise Fail(f"returned {type(values[0]).__name__} for step 0 of {total}: return one number")
            got = torch.tensor([float(v) for v in values], dtype=torch.float64)
            ref = torch.tensor([lr_factor(s, total) for s in range(total)], dtype=torch.float64)
            quarter = 0.25 * total
            compare(got, ref, {}, {
                "off by one step: the last step (step = total - 1) gets 0 and is wasted. step counts the steps "
                "taken before this one, and the factor is (total - step) / (total / 4)":
                    ((total - steps - 1) / quarter).clamp(max=1),
                "off by one step: step counts the steps taken before this one (0 for the first), so the factor "
                "before the last step is 1 / (total / 4)": ((total - steps + 1) / quarter).clamp(max=1),
                "decays from the first step: hold 1 for the first three quarters, then go linearly to 0":
                    (total - steps) / total,
                "is above 1 before the last quarter: cap it at 1, min(1, ...)": (total - steps) / quarter,
                "decays over the last half: the course decays over the last quarter": ((total - steps) / (0.5 * total))
                .clamp(max=1),
                "returns the learning rate: LambdaLR multiplies the optimiser's rate (1e-3) by what you return, a "
                "factor from 1 down to 0": 1e-3 * ref,
                "integer division: (total - step) // (total // 4) jumps from 1 to 0; divide with /":
                    ((total - steps) // (total // 4)).clamp(max=1),
            }, "every factor is finite", rtol=1e-6, atol=1e-9)
        return ("1, then linear to 0 over the last quarter, at every step of 8, 100 and 12,000 "
                "(as vaelib.train.lr_factor)")
    return report(fn, run, lr_factor)


# --- the KL warm-up (an exercise at the end of the notebook) ----------------------------------------------------

def warmup_loss(log_px_z: torch.Tensor, kl: torch.Tensor, step: int, warmup_steps: int) -> torch.Tensor:
    """The reference: -mean_b(log_px_z - beta kl), beta = min(1, step / warmup_steps). Shapes: (B,), (B,) -> ()."""
    return -(log_px_z - min(1.0, step / warmup_steps) * kl).mean()


def check_warmup_loss(fn) -> CheckResult:
    """fn(log_px_z, kl, step, warmup_steps) -> the loss with the KL term warmed up: beta = min(1, step /
    warmup_steps), loss = -mean_b(log_px_z - beta * kl). Shapes: (B,), (B,), int, int -> ()."""
    def run(fn):
        g = torch.Generator().manual_seed(10)
        log_px_z, kl = -100 - 50 * torch.rand(B, generator=g), 10 * torch.rand(B, generator=g)
        for step, warmup in ((0, 100), (25, 100), (100, 100), (450, 100)):
            beta = min(1.0, step / warmup)
            ref = -(log_px_z - beta * kl).mean()
            got = answer(fn, log_px_z, kl, step, warmup)
            _compare_at_step(got, ref, step, warmup, {
                "the weight is not capped at 1: after warm-up the loss is -ELBO": -(log_px_z - step / warmup * kl).mean(),
                "weights the reconstruction term instead of the KL": -(beta * log_px_z - kl).mean(),
                "the sign: the loss is minus the (weighted) ELBO": (log_px_z - beta * kl).mean(),
                "sums over the batch; the loss is a mean over the images": -(log_px_z - beta * kl).sum(),
                "the weight falls instead of rising: it goes from 0 at step 0 to 1 at warmup_steps":
                    -(log_px_z - (1 - beta) * kl).mean(),
            }, "every input is finite")
        return "beta = min(1, step / warmup_steps) on the KL term, checked at steps 0, 25, 100 and 450 with warmup_steps = 100"
    return report(fn, run, warmup_loss)


def _compare_at_step(got, ref, step: int, warmup: int, mistakes: dict, nonfinite: str) -> None:
    """compare, saying at which step a wrong answer went wrong."""
    try:
        compare(got, ref, {B: "batch"}, mistakes, nonfinite)
    except Fail as err:
        raise Fail(f"{err} (at step = {step}, warmup_steps = {warmup})") from None
