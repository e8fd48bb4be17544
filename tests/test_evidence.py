"""vaelib.evidence.holds: a claim is printed when true and stops the notebook when false."""

import pytest

from vaelib.evidence import holds


def test_a_true_claim_is_printed_with_a_tick(capsys):
    assert holds(1 + 1 == 2, "one and one make two") is None
    assert capsys.readouterr().out == "✓ one and one make two\n"


def test_a_false_claim_stops_the_notebook_and_names_itself():
    with pytest.raises(AssertionError, match="one and one make three"):
        holds(1 + 1 == 3, "one and one make three")


def test_a_full_only_claim_is_not_checked_in_the_smoke_setting(monkeypatch, capsys):
    monkeypatch.setenv("VAELIB_SMOKE", "1")
    holds(False, "the model learned", full_only=True)
    assert "not checked" in capsys.readouterr().out
    monkeypatch.setenv("VAELIB_SMOKE", "0")
    with pytest.raises(AssertionError):
        holds(False, "the model learned", full_only=True)


def test_a_one_element_tensor_is_a_condition():
    import torch

    holds(torch.tensor(2.0) > 1, "two is more than one")
    with pytest.raises(AssertionError):
        holds(torch.tensor(0.0) > 1, "nothing is more than one")
