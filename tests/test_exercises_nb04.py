"""Notebook 4's exercises, the VAE a student writes and then trains: its forward pass, its loss per image, its
training step and its learning-rate schedule. Correct answers pass (in more than one form), each usual mistake gets
the message that names it, a stub says it is not implemented, .use() falls back to the reference.

The wrong answers are written the way a student would write them, not taken from the checker.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vaelib.exercises import (
    check_elbo_per_image,
    check_lr_factor,
    check_train_step,
    check_vae_forward,
    nb04,
)
from vaelib.model import VAE
from vaelib.train import lr_factor

# --- the forward pass -------------------------------------------------------------------------------------------

class Page(nn.Module):
    """The page's CourseVAE: __init__ as given; subclasses write forward."""

    def __init__(self, D=784, H1=256, H2=128, L=2):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(D, H1), nn.ReLU(), nn.Linear(H1, H2), nn.ReLU())
        self.mu_head = nn.Linear(H2, L)
        self.logvar_head = nn.Linear(H2, L)
        self.decoder = nn.Sequential(nn.Linear(L, H2), nn.ReLU(), nn.Linear(H2, H1), nn.ReLU(), nn.Linear(H1, D))

    def encode(self, x):
        h = self.encoder(x)
        return self.mu_head(h), self.logvar_head(h)


def forward_class(draw):
    """A CourseVAE whose forward computes z = draw(mu, logvar, generator) and returns the decoder's logits."""
    class CourseVAE(Page):
        def forward(self, x, generator=None):
            mu, logvar = self.encode(x)
            return self.decoder(draw(mu, logvar, generator)), mu, logvar
    return CourseVAE


def eps_of(mu, generator):
    return torch.randn(mu.shape, generator=generator, device=mu.device)


RIGHT = forward_class(lambda mu, lv, g: mu + torch.exp(0.5 * lv) * eps_of(mu, g))
ALSO_RIGHT = [
    RIGHT,
    forward_class(lambda mu, lv, g: mu + lv.exp().sqrt() * torch.randn(*mu.shape, generator=g, device=mu.device)),
    forward_class(lambda mu, lv, g: mu + torch.exp(0.5 * lv) * torch.empty_like(mu).normal_(generator=g)),
    forward_class(lambda mu, lv, g: torch.addcmul(mu, (lv / 2).exp(), eps_of(mu, g))),
    forward_class(lambda mu, lv, g: mu + torch.exp(0.5 * lv) * torch.randn_like(mu, generator=g)),
]


@pytest.mark.parametrize("cls", ALSO_RIGHT)
def test_a_correct_forward_passes(cls, capsys):
    cls.__name__ = "CourseVAE"
    result = check_vae_forward(cls)
    assert result, result.message
    assert capsys.readouterr().out.startswith("✓ CourseVAE is correct")


def test_the_reference_forward_is_vaelibs_with_the_same_weights_and_generator():
    page = nb04.CourseVAE()
    library = VAE()
    library.load_state_dict(page.state_dict())
    x = torch.bernoulli(torch.full((4, 784), 0.3), generator=torch.Generator().manual_seed(0))
    for ours, theirs in zip(page(x, torch.Generator().manual_seed(1)), library(x, torch.Generator().manual_seed(1))):
        torch.testing.assert_close(ours, theirs)


class Sigmoid(Page):
    def forward(self, x, generator=None):
        mu, logvar = self.encode(x)
        return torch.sigmoid(self.decoder(mu + torch.exp(0.5 * logvar) * eps_of(mu, generator))), mu, logvar


class Swapped(Page):
    def forward(self, x, generator=None):
        h = self.encoder(x)
        mu, logvar = self.logvar_head(h), self.mu_head(h)
        return self.decoder(mu + torch.exp(0.5 * logvar) * eps_of(mu, generator)), mu, logvar


class Detached(Page):
    def forward(self, x, generator=None):
        mu, logvar = self.encode(x)
        z = (mu + torch.exp(0.5 * logvar) * eps_of(mu, generator)).detach()
        return self.decoder(z), mu, logvar


class ReturnsZ(Page):
    def forward(self, x, generator=None):
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps_of(mu, generator)
        return z, mu, logvar


class OtherOrder(Page):
    def forward(self, x, generator=None):
        mu, logvar = self.encode(x)
        return mu, logvar, self.decoder(mu + torch.exp(0.5 * logvar) * eps_of(mu, generator))


class ReluMu(Page):
    def forward(self, x, generator=None):
        mu, logvar = self.encode(x)
        mu = torch.relu(mu)
        return self.decoder(mu + torch.exp(0.5 * logvar) * eps_of(mu, generator)), mu, logvar


class ScaledMu(Page):
    def forward(self, x, generator=None):
        mu, logvar = self.encode(x)
        mu = 2 * mu
        return self.decoder(mu + torch.exp(0.5 * logvar) * eps_of(mu, generator)), mu, logvar


class ScaledLogvar(Page):
    def forward(self, x, generator=None):
        mu, logvar = self.encode(x)
        logvar = 2 * logvar
        return self.decoder(mu + torch.exp(0.5 * logvar) * eps_of(mu, generator)), mu, logvar


class InPlace(Page):
    """Centres the pixels in place: the notebook's batch is changed by each call."""
    def forward(self, x, generator=None):
        x -= 0.5
        mu, logvar = self.encode(x + 0.5)
        return self.decoder(mu + torch.exp(0.5 * logvar) * eps_of(mu, generator)), mu, logvar


class OtherLayers(nn.Module):
    def __init__(self, D=784, H1=256, H2=128, L=2):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(D, H1), nn.Linear(H1, L), nn.Linear(H1, L)


FORWARD_MISTAKES = [
    (forward_class(lambda mu, lv, g: mu + torch.exp(lv) * eps_of(mu, g)), "multiplies eps by the variance"),
    (forward_class(lambda mu, lv, g: mu + lv * eps_of(mu, g)), "uses logvar as the standard deviation"),
    (forward_class(lambda mu, lv, g: mu + torch.exp(-0.5 * lv) * eps_of(mu, g)), "1 / sigma"),
    (forward_class(lambda mu, lv, g: mu), "decodes mu itself"),
    (forward_class(lambda mu, lv, g: mu + eps_of(mu, g)), "leaves out sigma"),
    (forward_class(lambda mu, lv, g: mu + torch.exp(0.5 * lv) * torch.randn_like(mu)), "global generator"),
    (forward_class(lambda mu, lv, g: torch.distributions.Normal(mu, torch.exp(0.5 * lv)).rsample()),
     "global generator"),
    (forward_class(lambda mu, lv, g: mu + torch.exp(0.5 * lv) * torch.randn(mu.shape[0], 2, generator=g)),
     "raised RuntimeError"),
    (Sigmoid, "a sigmoid at the end"),
    # eps without device=: right on the CPU, but on a GPU a CUDA generator meets a CPU randn
    (forward_class(lambda mu, lv, g: mu + lv.exp().sqrt() * torch.randn(*mu.shape, generator=g)),
     "eps is drawn on the CPU whatever the device of mu"),
    (forward_class(lambda mu, lv, g: mu + torch.exp(0.5 * lv) * torch.randn(mu.shape, generator=g)),
     "device=mu.device"),
    (forward_class(lambda mu, lv, g: mu + torch.exp(0.5 * lv) * torch.rand(mu.shape, generator=g, device=mu.device)),
     "draws eps from a uniform distribution"),
    (forward_class(lambda mu, lv, g: mu + torch.exp(0.5 * lv) * torch.randn(mu.shape[1], generator=g,
                                                                            device=mu.device)),
     "draws one eps for the whole batch"),
    (forward_class(lambda mu, lv, g: mu + torch.exp(0.5 * lv) * torch.randn(1, mu.shape[1], generator=g,
                                                                            device=mu.device)),
     "draws one eps for the whole batch"),
    (forward_class(lambda mu, lv, g: mu + F.softplus(lv) * eps_of(mu, g)), "uses softplus(logvar) as the standard"),
    (forward_class(lambda mu, lv, g: mu + torch.exp(0.5 * lv) * eps_of(mu, g) + 0.1),
     "logits (mu and logvar are right): wrong values, and not a mistake this check knows"),
    (ReluMu, "mu passes through a ReLU"),
    (ScaledMu, "mu: wrong values, and not a mistake this check knows"),
    (ScaledLogvar, "logvar: wrong values, and not a mistake this check knows"),
    (InPlace, "changed its input x in place"),
    (Swapped, "swap the heads"),
    (Detached, "the gradient of"),
    (ReturnsZ, "logits: returned shape (5, 3), expected (5, 6)"),
    (OtherOrder, "in that order"),
    (OtherLayers, "could not take the reference's weights"),
]


@pytest.mark.parametrize("cls, words", FORWARD_MISTAKES, ids=[w[:40] for _, w in FORWARD_MISTAKES])
def test_a_forward_mistake_gets_the_message_that_names_it(cls, words, capsys):
    result = check_vae_forward(cls)
    assert not result
    assert words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_a_stubbed_forward_says_not_implemented_and_use_gives_the_reference(capsys):
    class CourseVAE(Page):
        def forward(self, x, generator=None):
            raise NotImplementedError("Hint: encoder, heads, z, decoder.")

    result = check_vae_forward(CourseVAE)
    assert result.message == "✗ CourseVAE: not implemented yet. Hint: encoder, heads, z, decoder."
    assert result.use() is nb04.CourseVAE
    assert capsys.readouterr().out.splitlines()[-1].endswith("(vaelib.exercises.nb04.CourseVAE)")
    assert check_vae_forward(RIGHT).use() is RIGHT


# --- the loss per image -----------------------------------------------------------------------------------------

def elbo(logits, x, mu, logvar):
    log_px_z = (x * logits - F.softplus(logits)).sum(-1)
    kl = 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(-1)
    return log_px_z - kl, log_px_z, kl


def elbo_library_style(logits, x, mu, logvar):
    log_px_z = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    return log_px_z - kl, log_px_z, kl


def elbo_distributions(logits, x, mu, logvar):
    log_px_z = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    return log_px_z - kl, log_px_z, kl


@pytest.mark.parametrize("answer", [elbo, elbo_library_style, elbo_distributions])
def test_a_correct_elbo_passes(answer, capsys):
    result = check_elbo_per_image(answer)
    assert result, result.message
    assert capsys.readouterr().out.startswith("✓ ")


def with_log_px_z(log_px_z_of):
    def fn(logits, x, mu, logvar):
        log_px_z = log_px_z_of(logits, x)
        kl = 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(-1)
        return log_px_z - kl, log_px_z, kl
    return fn


def with_kl(kl_of):
    def fn(logits, x, mu, logvar):
        log_px_z = (x * logits - F.softplus(logits)).sum(-1)
        kl = kl_of(mu, logvar)
        return log_px_z - kl, log_px_z, kl
    return fn


def probabilities(logits, x):
    p = torch.sigmoid(logits)
    return (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(-1)


def clamped_probabilities(logits, x):
    p = torch.sigmoid(logits).clamp(1e-6, 1 - 1e-6)
    return (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(-1)


def probabilities_plus_epsilon(logits, x):
    p = torch.sigmoid(logits)
    return (x * torch.log(p + 1e-7) + (1 - x) * torch.log(1 - p + 1e-7)).sum(-1)


ELBO_MISTAKES = [
    (with_log_px_z(lambda l, x: (x * l - F.softplus(l)).mean(-1)), "averages over the pixels"),
    (with_log_px_z(lambda l, x: -F.binary_cross_entropy_with_logits(l, x, reduction="none").mean(-1)),
     "averages over the pixels"),
    (with_log_px_z(lambda l, x: F.binary_cross_entropy_with_logits(l, x, reduction="none").sum(-1)), "wrong sign"),
    (with_log_px_z(lambda l, x: -F.binary_cross_entropy(torch.sigmoid(l), x, reduction="none").sum(-1)),
     "stops at -100"),
    (with_log_px_z(probabilities), "a sigmoid followed by a log"),
    (with_log_px_z(lambda l, x: (x * l + F.softplus(l)).sum(-1)), "the sign of softplus"),
    (with_kl(lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv).mean(-1)), "averages over the latent dimensions"),
    (with_kl(lambda mu, lv: (lv.exp() + mu**2 - 1 - lv).sum(-1)), "misses its factor 1/2"),
    (with_kl(lambda mu, lv: -0.5 * (1 - lv - mu**2 - lv.exp()).sum(-1)), "the KL adds logvar"),
    (with_kl(lambda mu, lv: 0.5 * (torch.exp(0.5 * lv) + mu**2 - 1 - lv).sum(-1)), "the standard deviation"),
    (with_kl(lambda mu, lv: 0.5 * (1 + lv - mu**2 - lv.exp()).sum(-1)), "a KL divergence is >= 0"),
    (lambda l, x, mu, lv: (elbo(l, x, mu, lv)[0], x * l - F.softplus(l), elbo(l, x, mu, lv)[2]),
     "log_px_z: returned shape (5, 6), expected (5,): it did not sum over the pixel axis"),
    (with_kl(lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv).sum()),
     "kl: returned shape (), expected (5,): it reduced over the batch axis"),
    (lambda l, x, mu, lv: (elbo(l, x, mu, lv)[1] + elbo(l, x, mu, lv)[2], *elbo(l, x, mu, lv)[1:]),
     "elbo adds the KL"),
    (lambda l, x, mu, lv: (-elbo(l, x, mu, lv)[0], *elbo(l, x, mu, lv)[1:]), "that is the loss"),
    (lambda l, x, mu, lv: tuple(t.mean() for t in elbo(l, x, mu, lv)),
     "elbo: returned shape (), expected (5,): it reduced over the batch axis"),
    (lambda l, x, mu, lv: elbo(l, x, mu, lv)[0], "it returns three: elbo, log_px_z, kl"),
    (lambda l, x, mu, lv: (*elbo(l, x, mu, lv)[1:], elbo(l, x, mu, lv)[0]), "another order"),
    (lambda l, x, mu, lv: tuple(t.detach() for t in elbo(l, x, mu, lv)), "carry no gradient"),
    (lambda l, x, mu, lv: elbo(l.clamp(-10, 10), x, mu, lv), "caps the log-probability of a pixel"),
    (with_kl(lambda mu, lv: 0.5 * (lv.exp() + mu**2 - lv).sum(-1)), "the KL misses its - 1"),
    (with_kl(lambda mu, lv: 0.5 * (lv.exp() + mu - 1 - lv).sum(-1)), "the KL uses mu where mu^2 belongs"),
    (with_log_px_z(clamped_probabilities), "caps the log-probability of a pixel the decoder is confidently wrong"),
    (with_log_px_z(probabilities_plus_epsilon), "at -16.1 nats where it is -40"),
    (with_log_px_z(lambda l, x: (x * l - F.softplus(l)).sum(-1) + 0.1),
     "log_px_z: wrong values, and not a mistake this check knows"),
    (with_kl(lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv).sum(-1) + 0.1),
     "kl: wrong values, and not a mistake this check knows"),
    (lambda l, x, mu, lv: (elbo(l, x, mu, lv)[0] + 0.1, *elbo(l, x, mu, lv)[1:]),
     "elbo (log_px_z and kl are right): wrong values"),
    (lambda logits, x, mu, logvar: elbo(logits, x, mu, logvar.exp_().log()), "changed its input logvar in place"),
    (lambda logits, x, mu, logvar: elbo(logits.clamp_(-100, 100), x, mu, logvar), "changed its input logits in place"),
]


@pytest.mark.parametrize("answer, words", ELBO_MISTAKES, ids=[w[:40] for _, w in ELBO_MISTAKES])
def test_an_elbo_mistake_gets_the_message_that_names_it(answer, words, capsys):
    result = check_elbo_per_image(answer)
    assert not result
    assert words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_a_stubbed_elbo_says_not_implemented_and_use_gives_the_reference(capsys):
    def my_elbo_per_image(logits, x, mu, logvar):
        raise NotImplementedError("Hint: notebooks 1 and 2.")

    result = check_elbo_per_image(my_elbo_per_image)
    assert result.message == "✗ my_elbo_per_image: not implemented yet. Hint: notebooks 1 and 2."
    assert result.use() is nb04.elbo_per_image
    assert check_elbo_per_image(elbo).use() is elbo


# --- the training step ------------------------------------------------------------------------------------------

def step(model, optimizer, x, generator):
    logits, mu, logvar = model(x, generator)
    loss = -elbo(logits, x, mu, logvar)[0].mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


def step_zeroing_last(model, optimizer, x, generator):
    logits, mu, logvar = model(x, generator)
    loss = -torch.mean(elbo(logits, x, mu, logvar)[0])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)
    return loss.detach().clone()


@pytest.mark.parametrize("answer", [step, step_zeroing_last])
def test_a_correct_step_passes(answer, capsys):
    result = check_train_step(answer)
    assert result, result.message
    assert capsys.readouterr().out.startswith("✓ ")


def step_with(order=("zero", "loss", "backward", "step"), reduce=lambda e: -e.mean(), term=0, returns="detach",
              use_generator=True):
    def fn(model, optimizer, x, generator):
        loss = None
        for action in order:
            if action == "zero":
                optimizer.zero_grad()
            elif action == "loss":
                logits, mu, logvar = model(x, generator) if use_generator else model(x)
                loss = reduce(elbo(logits, x, mu, logvar)[term])
            elif action == "backward":
                loss.backward()
            elif action == "step":
                optimizer.step()
        return {"detach": loss.detach(), "item": loss.item(), "graph": loss, "none": None,
                "elbo": -loss.detach()}[returns]
    return fn


def mean_over_pixels(model, optimizer, x, generator):
    logits, mu, logvar = model(x, generator)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)
    loss = F.binary_cross_entropy_with_logits(logits, x) + kl.mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


STEP_MISTAKES = [
    (step_with(order=("loss", "backward", "step")), "forgets optimizer.zero_grad()"),
    (step_with(reduce=lambda e: -e.sum()), "sums the loss over the batch"),
    (step_with(reduce=lambda e: e.mean()), "minimises the ELBO"),
    (step_with(term=1), "leaves out the KL term"),
    (mean_over_pixels, "averages over the pixels"),
    (step_with(order=("loss", "backward", "zero", "step")), "left the weights as they were"),
    (step_with(order=("zero", "loss", "backward")), "left the weights as they were"),
    (step_with(order=("zero", "step", "loss", "backward")), "left the weights as they were"),
    (step_with(returns="item"), "loss.item()"),
    (step_with(returns="graph"), "still attached to its graph"),
    (step_with(returns="none"), "returned NoneType"),
    (step_with(returns="elbo"), "it returns the ELBO"),
    (step_with(use_generator=False), "pass it to the model"),
]


@pytest.mark.parametrize("answer, words", STEP_MISTAKES, ids=[w[:40] for _, w in STEP_MISTAKES])
def test_a_step_mistake_gets_the_message_that_names_it(answer, words, capsys):
    result = check_train_step(answer)
    assert not result
    assert words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_a_stubbed_step_says_not_implemented_and_use_gives_the_reference():
    def my_train_step(model, optimizer, x, generator):
        raise NotImplementedError("Hint: four lines.")

    result = check_train_step(my_train_step)
    assert result.message == "✗ my_train_step: not implemented yet. Hint: four lines."
    assert result.use() is nb04.train_step
    assert check_train_step(step).use() is step


# --- the learning-rate schedule ---------------------------------------------------------------------------------

def factor(step, total):
    return min(1.0, (total - step) / (0.25 * total))


def factor_by_cases(step, total):
    start = 0.75 * total
    return 1.0 if step < start else 1 - (step - start) / (total - start)


@pytest.mark.parametrize("answer", [factor, factor_by_cases, lambda s, t: lr_factor(s, t, "decay"),
                                    lambda s, t: torch.tensor(min(1.0, 4 * (t - s) / t))])
def test_a_correct_schedule_passes(answer, capsys):
    result = check_lr_factor(answer)
    assert result, result.message
    assert capsys.readouterr().out.startswith("✓ ")


SCHEDULE_MISTAKES = [
    (lambda s, t: min(1.0, (t - s - 1) / (0.25 * t)), "the last step (step = total - 1) gets 0"),
    (lambda s, t: min(1.0, (t - (s + 1) + 2) / (t / 4)), "0 for the first"),
    (lambda s, t: 1 - s / t, "decays from the first step"),
    (lambda s, t: (t - s) / (0.25 * t), "cap it at 1"),
    (lambda s, t: min(1.0, (t - s) / (0.5 * t)), "decays over the last half"),
    (lambda s, t: 1e-3 * min(1.0, (t - s) / (0.25 * t)), "returns the learning rate"),
    (lambda s, t: min(1, (t - s) // (t // 4)), "integer division"),
    (lambda s, t: 1.0, "wrong values, and not a mistake this check knows"),
    (lambda s, t: [1.0], "return one number"),
]


@pytest.mark.parametrize("answer, words", SCHEDULE_MISTAKES, ids=[w[:40] for _, w in SCHEDULE_MISTAKES])
def test_a_schedule_mistake_gets_the_message_that_names_it(answer, words, capsys):
    result = check_lr_factor(answer)
    assert not result
    assert words in result.message, result.message
    assert capsys.readouterr().out.strip() == result.message


def test_a_stubbed_schedule_says_not_implemented_and_the_reference_is_vaelibs():
    def my_lr_factor(step, total):
        raise NotImplementedError("Hint: a quarter.")

    result = check_lr_factor(my_lr_factor)
    assert result.message == "✗ my_lr_factor: not implemented yet. Hint: a quarter."
    assert result.use() is nb04.lr_factor
    assert [nb04.lr_factor(s, 600) for s in range(601)] == [lr_factor(s, 600, "decay") for s in range(601)]
