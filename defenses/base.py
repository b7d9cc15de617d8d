"""The Defense contract (docs/architecture.md) and the context the harness hands to `train`.

A defense declares the upstream models it needs (`requires`) and never trains them inline:
the harness resolves requirements into a DAG, trains each node once (cached by content hash),
and passes the trained upstream models to `train`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch
from torch import nn

from bench.plugins.archs import Classifier, create_model
from bench.plugins.datasets import Dataset
from bench.plugins.training import LossFn, Optim, fit


@dataclass(frozen=True)
class Requirement:
    """An upstream model: `role` is the key under which `train` receives it ("teacher"),
    `defense` the registered name that trains it, `config` its config overrides (typed values),
    `arch` its architecture (None: the run's architecture)."""

    role: str
    defense: str
    config: Mapping[str, Any] = field(default_factory=dict)
    arch: str | None = None


@dataclass
class TrainContext:
    """What the harness gives a defense to train with."""

    dataset: Dataset
    arch: str
    device: torch.device
    seed: int
    quiet: bool = False
    desc: str = "train"
    log: Callable[[str], None] = print

    def create_model(self, arch: str | None = None, logit_scale: float = 1.0) -> Classifier:
        """A freshly initialized model (seeded by the run's seed) on the context's device."""
        torch.manual_seed(self.seed)
        return create_model(arch or self.arch, self.dataset, logit_scale).to(self.device)

    def fit(self, model: nn.Module, loss_fn: LossFn, optim: Optim, extra: torch.Tensor | None = None) -> nn.Module:
        return fit(model, self.dataset.x_train, self.dataset.y_train, loss_fn, optim, device=self.device,
                   seed=self.seed, desc=self.desc, quiet=self.quiet, extra=extra)


class Defense:
    """Base class for defenses. Subclasses set `name`, `description`, a frozen `Config`
    dataclass whose every field has its paper's default, and implement `train`.

    `train` must return a model built by `ctx.create_model(...)` (a `Classifier`), so that the
    store can rebuild it from its architecture name and saved weights."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @dataclass(frozen=True)
    class Config:
        pass

    def requires(self, cfg) -> Sequence[Requirement]:
        return ()

    def arch(self, cfg, run_arch: str) -> str:
        """The architecture this defense trains; by default the run's (`--arch`)."""
        return run_arch

    def train(self, cfg, ctx: TrainContext, upstream: Mapping[str, nn.Module]) -> nn.Module:
        raise NotImplementedError

    def adaptive_attacks(self, cfg) -> Sequence[tuple[str, Mapping[str, Any]]]:
        """Attacks adapted to this defense (Tramèr et al. 2020), as (attack name, config overrides):
        the adaptive stage of `bench run` runs them on every model of this defense, at every budget
        whose norm the attack supports, besides what the masking rules call for. A non-differentiable
        part of the forward declares its BPDA approximation on its architecture (bench/plugins/archs.py)."""
        return ()

    def label(self, cfg) -> str:
        """A short row label for the leaderboard: the name plus the config fields that differ
        from their defaults (training length excluded)."""
        default = type(cfg)()
        diffs = [
            f"{f.name}={getattr(cfg, f.name):g}" if isinstance(getattr(cfg, f.name), float) else f"{f.name}={getattr(cfg, f.name)}"
            for f in dataclasses.fields(cfg)
            if f.name != "epochs" and getattr(cfg, f.name) != getattr(default, f.name)
        ]
        return f"{self.name} ({', '.join(diffs)})" if diffs else self.name


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation fields shared by the defenses that train with the standard loop.

    Paper: Papernot et al. 2016, Table 2 (MNIST): SGD, lr 0.1, momentum 0.5, batch 128, 50 epochs.
    Default here: Adam (Kingma & Ba 2015, lr 1e-3), same batch and epochs. Why: at T = 100 the
    gradient of CE(z/T) is 100x smaller, and on the 4,000 training images of mnist-5k the paper's
    SGD stays at chance (measured: 10.0% test accuracy after 10, 20 and 30 epochs) where it had
    60,000 images x 50 epochs; Adam is invariant to that scale and reaches 91.5% in 5 epochs at
    T = 100. `--set optimizer=sgd --set lr=0.1` restores the paper's optimiser exactly."""

    epochs: int = 50
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.5
    weight_decay: float = 0.0

    def __post_init__(self):
        self.optim()  # validates optimizer, epochs, lr, batch size with clear messages
        parent = getattr(super(), "__post_init__", None)  # cooperative: mixins validate their own fields
        if parent:
            parent()

    def optim(self, **changes) -> Optim:
        fields = dict(epochs=self.epochs, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                      batch_size=self.batch_size, optimizer=self.optimizer)
        return Optim(**{**fields, **changes})

    def training_fields(self) -> dict:
        """The optimisation fields, to hand to an upstream node that must train the same way."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainingConfig)}


def positive(value: float, what: str) -> None:
    """Validate a config value in __post_init__; the message names the value and what is allowed."""
    from bench.core.errors import BenchInputError

    if not value > 0:
        raise BenchInputError(f"{what} must be positive, got {value!r}")


def unit_interval(value: float, what: str) -> None:
    """Validate a weight in [0, 1] (a mixing coefficient such as α) in __post_init__."""
    from bench.core.errors import BenchInputError

    if not 0 <= value <= 1:
        raise BenchInputError(f"{what} must be in [0, 1], got {value!r}")
