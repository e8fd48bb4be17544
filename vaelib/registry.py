"""The names a model's settings may take, each a table that a new module adds itself to: ModelConfig.arch
names an entry of NETWORKS, ModelConfig.kind one of KINDS, TrainConfig.objective one of OBJECTIVES. vaelib
adds its own on import (the MLP and the VAE in vaelib.model, the ELBO and the IWAE bound in vaelib.train, the
semi-supervised M2 in vaelib.m2); everything that takes a model works with a new entry unchanged
(tests/test_registry.py adds a toy network and a toy labelled model).

A Kind whose model follows vaelib.model.LatentVariableModel needs only `build`. A kind whose model does not (M2's
q(z|x, y) and p(x|y, z) take a label) gives what training and the command line would otherwise take from that
protocol; each hook it leaves at None is the VAE's:
  batches  what a step reads (M2: an unlabelled and a labelled batch; an epoch is a pass over `.images`);
  loss     the step's loss, in place of OBJECTIVES[TrainConfig.objective];
  terms    the per-image bound that the test set is scored with after every epoch and by `evaluate`;
  record   numbers after every epoch, kept in History.metrics (M2: validation accuracy);
  final    numbers at the end of a run, in metrics.json, in place of the IWAE estimate of log p(x) (test accuracy);
  figures  the run's figures;
  refuse   ModelConfig's check of the settings the kind would ignore (M2: a prior, a flow, a network other than
           the MLP), refused with what to do so that no checkpoint names what its model does not have.
And a flag: `evaluates`, whether `python -m vaelib evaluate` scores the kind's models. It computes the IWAE
estimate of log p(x) and the exact log p(x) by quadrature, which take a LatentVariableModel's q(z|x), p(x|z) and
p(z); M2's q(z|x, y) and p(x|y, z) need a label, so M2 says False (its numbers are in its run's metrics.json).
The bounds, the quadrature, the gap fits and the plots still take only LatentVariableModels.
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
    """A kind of model: how it is built, and what a training step reads (see the module docstring for the hooks)."""
    build: Callable  # ModelConfig -> a model that follows vaelib.model.LatentVariableModel, or gives the hooks below
    batches: Callable | None = None  # (data, TrainConfig, generator) -> batches; None: vaelib.train.Batches
    loss: Callable | None = None  # (model, batch, generator, TrainConfig) -> as an OBJECTIVES entry returns
    terms: Callable | None = None  # (model, x, generator) -> vaelib.elbo.ELBO of each image; None: elbo_terms
    record: Callable | None = None  # (model, data, TrainConfig) -> {name: number}, after every epoch
    final: Callable | None = None  # (model, data, TrainConfig) -> {name: number}, at the end of a run
    figures: Callable | None = None  # (model, data, History) -> {name: matplotlib figure}
    evaluates: bool = True  # False: `evaluate` refuses its models, which are not LatentVariableModels
    refuse: Callable | None = None  # (ModelConfig) -> None, raising ValueError for settings the kind would ignore


NETWORKS: dict[str, Network] = {}
KINDS: dict[str, Kind] = {}
OBJECTIVES: dict[str, Callable] = {}  # (model, batch, generator, TrainConfig) -> loss, (-bound, KL) of the batch
