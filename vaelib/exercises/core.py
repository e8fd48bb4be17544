"""What every checker shares: calling the student's function safely, comparing, reporting, falling back.

A checker runs the student's function on random inputs, compares it with a reference and prints one line:
a tick when it agrees, otherwise a cross and what is wrong: not implemented yet, an error, the shape (a
reduction over the wrong axis), or a known mistake recognised by comparing with a deliberately wrong
variant. A checker never raises, so a student notebook runs top to bottom. It returns a `CheckResult`,
true when the function passed; `result.use()` is the function the rest of the notebook should run: the
student's when it passed, else the reference, with one printed line that says so.
"""

from __future__ import annotations

from dataclasses import dataclass
import inspect
from typing import Callable

import torch

B, L, D, K = 5, 3, 6, 7  # distinct sizes, so that a wrong shape tells which axis was reduced


@dataclass
class CheckResult:
    passed: bool
    message: str
    answer: Callable | None = None  # the student's function
    reference: Callable | None = None  # what the notebook runs instead while the answer does not pass

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self):
        """The checker has printed the message already; a notebook shows nothing more."""

    def use(self) -> Callable:
        """The student's function when it passed; else the reference, saying so in one line."""
        if self.passed or self.reference is None:
            return self.answer
        name = f"{self.reference.__module__}.{self.reference.__qualname__}"
        print(f"→ until it passes, the rest of this notebook uses the reference implementation ({name})")
        return self.reference


class Fail(Exception):
    """What is wrong, as the sentence the student reads."""


def report(fn, run, reference: Callable | None = None) -> CheckResult:
    """Run the check `run(fn)`, print its one line and return the result (which never raises)."""
    name = getattr(fn, "__name__", repr(fn))
    try:
        result = CheckResult(True, f"✓ {name} is correct: {run(fn)}", fn, reference)
    except Fail as wrong:
        result = CheckResult(False, f"✗ {name}: {wrong}", fn, reference)
    except Exception as err:  # whatever the answer does, the notebook goes on
        result = CheckResult(False, f"✗ {name}: its result broke the check ({type(err).__name__}: {err})", fn,
                             reference)
    print(result.message)
    return result


def call(fn, *args):
    """fn(*args), with NotImplementedError and the student's own errors turned into a Fail; and a Fail when fn
    changed one of its tensor arguments in place (the notebook would pass its own tensors, which that corrupts)."""
    before = [(i, a.detach().clone(), a.shape, a.dtype) for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    try:
        result = fn(*args)
    except NotImplementedError as err:
        raise Fail(f"not implemented yet. {err}".strip()) from None
    except Exception as err:  # the student's bug, reported rather than raised
        if "in-place operation" in str(err) and "leaf Variable" in str(err):  # autograd refused it
            raise Fail(in_place_message(fn, written_leaf(fn, args))) from None
        raise Fail(f"raised {type(err).__name__}: {err}") from None
    for i, copy, shape, dtype in before:
        if not unchanged(args[i], copy, shape, dtype):
            raise Fail(in_place_message(fn, i))
    return result


def written_leaf(fn, args) -> int | None:
    """Which argument fn wrote into, where autograd refused the write into a leaf that requires grad: the one
    whose replacement by a plain copy lets the call through (None if no single one does)."""
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor) and a.requires_grad and a.is_leaf:
            try:
                fn(*args[:i], a.detach().clone(), *args[i + 1:])
            except Exception:
                continue
            return i
    return None


def unchanged(tensor: torch.Tensor, copy: torch.Tensor, shape, dtype) -> bool:
    """Whether tensor still has the shape, dtype and values (nan where nan) it had when copy was taken."""
    if tensor.shape != shape or tensor.dtype != dtype:
        return False
    now = tensor.detach()
    return bool(((now == copy) | (now.isnan() & copy.isnan())).all()) if now.is_floating_point() \
        else torch.equal(now, copy)


def argument_names(fn) -> list[str]:
    """The names of fn's positional parameters, as the student wrote them (none if they cannot be read)."""
    try:
        if isinstance(fn, torch.nn.Module):
            fn = fn.forward  # its __call__ takes *args
        return [p.name for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return []


def in_place_message(fn, index: int | None) -> str:
    """What to say when fn wrote into its argument number index (None: one of them, which is not known)."""
    names = argument_names(fn)
    if index is None:
        return ("changed one of its inputs in place (-=, *=, a method ending in _ such as .mul_(), or an assignment "
                "into [...]): the notebook goes on using the tensors it passes, and this would corrupt them. Build "
                "new tensors instead: x = x - ..., not x -= ... (or start from x.clone())")
    name = names[index] if index < len(names) else f"argument {index + 1}"
    return (f"changed its input {name} in place ({name} -= ..., {name}.mul_(...), {name}[...] = ... write into "
            f"the caller's tensor): the notebook goes on using the tensors it passes, often views of one tensor, "
            f"and this would corrupt them. Build a new tensor instead: {name} - ..., not {name} -= ... (or start "
            f"from {name}.clone())")


def answer(fn, *args):
    """fn's result on copies of args, without autograd: the reference computed from args stays as it is, and an
    answer that edits its inputs in place fails (call compares every tensor argument before and after)."""
    with torch.no_grad():
        return call(fn, *(a.clone() if isinstance(a, torch.Tensor) else a for a in args))


def shape_text(shape) -> str:
    return f"({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"


def axes_text(names: list[str]) -> str:
    return f"{', '.join(names[:-1])} and {names[-1]} axes" if len(names) > 1 else f"{names[0]} axis"


def check_shape(got, expected: torch.Tensor, axes: dict[int, str]) -> None:
    """Fail unless got is a tensor of expected's shape, naming the axes a wrong shape reduced or kept."""
    if not isinstance(got, torch.Tensor):
        raise Fail(f"returned a value of type {type(got).__name__}, expected a tensor of shape "
                   f"{shape_text(expected.shape)}")
    if got.shape != expected.shape:
        reduced = [axes[n] for n in axes if n not in got.shape]
        kept = [axes[n] for n in axes if n in got.shape and n not in expected.shape]
        why = [f"it {verb} over the {axes_text(dims)}"
               for verb, dims in (("reduced", reduced), ("did not reduce", kept)) if dims]
        raise Fail(f"returned shape {shape_text(got.shape)}, expected {shape_text(expected.shape)}"
                   + (": " + "; ".join(why) if why else ""))


def compare(got, expected: torch.Tensor, axes: dict[int, str], mistakes: dict[str, torch.Tensor],
            nonfinite: str, rtol: float = 1e-4, atol: float = 1e-4, what: str = "") -> None:
    """Raise Fail with the diagnosis unless got equals expected. axes names the input's dims; what, if given,
    names the output compared (as "logits: "), where the answer returns several."""
    check_shape(got, expected, axes)
    got = got.detach().to("cpu", torch.float64)  # on the CPU: Apple's MPS has no float64
    what = f"{what}: " if what else ""
    if not torch.isfinite(got).all():
        raise Fail(f"{what}returned {got.flatten()[~torch.isfinite(got.flatten())][0].item()} where the answer is "
                   f"finite: {nonfinite}")
    if torch.allclose(got, expected.to("cpu", torch.float64), rtol=rtol, atol=atol):
        return
    for label, wrong in mistakes.items():
        if torch.allclose(got, wrong.to("cpu", torch.float64), rtol=rtol, atol=atol):
            raise Fail(label)
    raise Fail(f"{what}wrong values, and not a mistake this check knows: {first_difference(got, expected)}")


def first_difference(got: torch.Tensor, expected: torch.Tensor) -> str:
    """Where got and expected differ most, as a sentence (no element index for a single number)."""
    diff = (got.double().cpu() - expected.double().cpu()).abs()
    if got.dim() == 0:
        return f"expected {expected.item():.4f}, got {got.item():.4f}"
    i = diff.argmax().item()
    return f"at element {i} expected {expected.flatten()[i].item():.4f}, got {got.flatten()[i].item():.4f}"


def normal_inputs(seed: int = 0):
    """mu (B, L), logvar (B, L) with negative values too (logvar is not a variance), eps (B, L)."""
    g = torch.Generator().manual_seed(seed)
    mu = 1.5 * torch.randn(B, L, generator=g)
    logvar = torch.empty(B, L).uniform_(-3, 2, generator=g)
    return mu, logvar, torch.randn(B, L, generator=g)
