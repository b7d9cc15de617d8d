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
from bench.plugins.training import LossFn, Optim, TrainingCurve, Validation, auto_every, fit
from bench.plugins.validation import ValidationAttack


@dataclass(frozen=True)
class Requirement:
    """An upstream model: `role` is the key under which `train` receives it ("teacher"),
    `defense` the registered name that trains it, `config` its config overrides (typed values),
    `arch` its architecture (None: the run's architecture, or with `larger` its larger twin,
    bench.plugins.archs.larger_arch: a robust teacher bigger than its student, as ARD distils)."""

    role: str
    defense: str
    config: Mapping[str, Any] = field(default_factory=dict)
    arch: str | None = None
    larger: bool = False


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
    curves: list[TrainingCurve] = field(default_factory=list)  # one per fit, stored with the model

    def create_model(self, arch: str | None = None, logit_scale: float = 1.0) -> Classifier:
        """A freshly initialized model (seeded by the run's seed) on the context's device."""
        torch.manual_seed(self.seed)
        return create_model(arch or self.arch, self.dataset, logit_scale).to(self.device)

    def fit(self, model: nn.Module, loss_fn: LossFn, optim: Optim, extra: torch.Tensor | None = None, *,
            robust: tuple[str, float] | None = None, early_stopping: bool = True, select_from: int = 1,
            stop_drop: float | None = None, val_every: int = 0, replays: int = 1) -> nn.Module:
        """Train on the training split; the curve is measured on the validation split. `robust`
        (norm, eps): the threat model the defense trains for — validation robust accuracy is then
        measured (APGD-CE + APGD-T, bench/plugins/validation.py) every `val_every` epochs (0: about
        20 times) and, with `early_stopping`, the best epoch from `select_from` on is returned;
        `stop_drop` ends training when it collapses that far below its best."""
        attack = ValidationAttack(*robust) if robust is not None else None
        validation = Validation(self.dataset.x_val, self.dataset.y_val, self.dataset.num_classes, attack,
                                every=val_every or auto_every(optim.epochs), select=early_stopping,
                                select_from=select_from, stop_drop=stop_drop)
        curve = TrainingCurve(len(self.dataset.y_val), attack.describe() if attack else None)
        self.curves.append(curve)
        if len(self.dataset.y_val) == 0:
            validation = None
        return fit(model, self.dataset.x_train, self.dataset.y_train, loss_fn, optim, device=self.device,
                   seed=self.seed, desc=self.desc, quiet=self.quiet, extra=extra, validation=validation, curve=curve, replays=replays)


@dataclass(frozen=True)
class PaperCard:
    """What a defense's name promises (docs/model-cards.md): the paper, its recipe, the numbers it
    reports, and every place where this project's default recipe departs from it, with why. The
    model pages print it beside the model's own numbers; leaderboard.json carries it."""

    paper: str
    recipe: str
    reported: tuple[tuple[str, str], ...] = ()  # (setting, number), e.g. ("MNIST ε 0.3, AutoAttack", "88%")
    departures: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"paper": self.paper, "recipe": self.recipe,
                "reported": [{"setting": k, "value": v} for k, v in self.reported],
                "departures": list(self.departures)}


# Departures every mnist-5k recipe shares (docs/model-cards.md).
MNIST_5K_DATA = ("data: mnist-5k's 3,600 training images (400 held out for validation), not MNIST's 60,000: the "
                 "data that ships with the package; robust generalisation needs more data (Schmidt et al. 2018)")
ADAM_50 = ("optimiser: Adam 1e-3, 50 epochs, batch 128, lr ×0.1 at 50% and 75% — a few thousand steps on 2 CPU "
           "cores, where the papers train for 100k steps (Madry) or 100-300 epochs of SGD on CIFAR")
ROBUST_MNIST_5K = ("inner attack: 10 PGD steps of 0.04 at ε 0.3 after a linear ε warm-up over the first 20% of "
                   "epochs, where the papers use 40 steps of 0.01 from the start (4x the cost; the warm-up keeps "
                   "the small network from collapsing at ε 0.3)")
SELECTION = ("model selection: the epoch of highest validation robust accuracy under APGD-CE + APGD-T (early "
             "stopping, Rice et al. 2020); the papers report the last epoch")
NO_DROPOUT = ("architecture: papernot-mnist without dropout (the C&W and Mandal & Guo reference code has "
              "Dropout(0.5) after the first dense layer; `--arch papernot-mnist-dropout`)")


class Defense:
    """Base class for defenses. Subclasses set `name`, `description`, a frozen `Config`
    dataclass whose every field has its paper's default, and implement `train`.

    `train` must return a model built by `ctx.create_model(...)` (a `Classifier`), so that the
    store can rebuild it from its architecture name and saved weights."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    card: ClassVar[PaperCard | None] = None  # the paper's recipe and numbers beside ours (model pages)

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
    schedule: str = "constant"

    def __post_init__(self):
        self.optim()  # validates optimizer, epochs, lr, batch size with clear messages
        parent = getattr(super(), "__post_init__", None)  # cooperative: mixins validate their own fields
        if parent:
            parent()

    def optim(self, **changes) -> Optim:
        fields = dict(epochs=self.epochs, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                      batch_size=self.batch_size, optimizer=self.optimizer, schedule=self.schedule)
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
