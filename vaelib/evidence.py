"""The evidence behind the notebooks' sentences: each claim checked where it is made, in one quiet form.

A notebook states its conclusion in plain words, then a check cell calls `holds(condition, claim)` with
the same claim: it prints "✓ claim" when the run bears it out and stops the notebook when it does not,
so a sentence can never outlive the numbers behind it. Claims that only the full budgets can bear out
(a trained model's properties) pass `full_only=True`: in the smoke setting of `make check`, whose
models are trained for seconds, they are printed as not checked instead.
"""

from __future__ import annotations

from .config import smoke


def holds(condition, claim: str, full_only: bool = False) -> None:
    """Print "✓ claim" when `condition` is true; otherwise raise AssertionError naming the claim, except for a
    `full_only` claim in the smoke setting, which is printed as not checked. Returns nothing, so that a cell
    ending in holds(...) shows only the printed line."""
    if bool(condition):
        print(f"✓ {claim}")
    elif full_only and smoke():
        print(f"– not checked at the smoke setting's budgets: {claim}")
    else:
        raise AssertionError(f"✗ this run does not bear out: {claim}")
