"""Shared fixtures: the offline sample is loaded once per test session."""

import pytest

from vaelib.data import load_mnist


@pytest.fixture(scope="session")
def sample_data():
    return load_mnist("sample", verbose=False)
