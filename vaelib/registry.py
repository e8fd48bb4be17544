"""The names a model's settings may take, each a table that a new module adds itself to: ModelConfig.arch
names an entry of NETWORKS, ModelConfig.kind one of KINDS, TrainConfig.objective one of OBJECTIVES. vaelib
adds its own on import (the MLP and the VAE in vaelib.model, the ELBO and the IWAE bound in vaelib.train);
everything that takes a model works with a new entry unchanged (tests/test_registry.py adds a toy network
and a toy labelled model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Network:
    """A pair of networks for the VAE, built from its ModelConfig in this order (the order draws the weights)."""
    encoder: Callable  # config -> (module mapping (B, D) images to (B, H) features, H)
    decoder: Callable  # config -> module mapping (..., L) codes to (..., D) logits


@dataclass(frozen=True)
class Kind:
    """A kind of model: how it is built, and what a training step reads."""
    build: Callable  # ModelConfig -> a model that follows vaelib.model.LatentVariableModel
    batches: Callable | None = None  # (data, TrainConfig, generator) -> batches; None: vaelib.train.Batches


NETWORKS: dict[str, Network] = {}
KINDS: dict[str, Kind] = {}
OBJECTIVES: dict[str, Callable] = {}  # (model, batch, generator, TrainConfig) -> loss, (-bound, KL) of the batch
