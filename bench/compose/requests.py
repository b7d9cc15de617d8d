"""Typed requests: what `bench run|train|eval|audit` and `distill_bench.run|audit` are asked to do.

Every user value is parsed and validated once, here, where it enters (the CLI builds a request
from its arguments; the Python API from keyword arguments), into the type the rest of the code
uses: names resolved against the registries, `--set` split per defense and attack, norms and
budgets checked (`bench/plan/budgets.py`). Nothing downstream parses a user's text again, except a
config override's value, which is parsed against its field's type when the node is planned.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from bench.core.errors import BenchInputError
from bench.plan.budgets import parse_norms
from bench.plan.overrides import split_overrides
from bench.plugins.datasets import dataset_info
from bench.plugins.registry import ATTACKS, DEFENSES

EXECUTORS = ("local", "ray")


def _names(value: str | Sequence[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def force_names(text: str | None) -> frozenset[str]:
    """`--force` → {} (nothing), {"all"}, or the defense/attack names it lists (validated)."""
    if text is None:
        return frozenset()
    names = {n.strip() for n in text.split(",") if n.strip()}
    if not names:
        raise BenchInputError(f"--force {text!r} names nothing; use --force alone for everything")
    if "all" in names:
        return frozenset({"all"})
    for name in names:
        if name not in DEFENSES and name not in ATTACKS:
            DEFENSES.get(name)  # unknown: the registry's "did you mean" message
    return frozenset(names)


@dataclass(frozen=True)
class Session:
    """Where and how any request runs: data, device, store, executor, caching."""

    dataset: str = "mnist-5k"
    arch: str | None = None  # None: the dataset's default architecture
    seed: int = 0
    device: str = "auto"
    store: str = "runs"
    data_root: str | None = None
    download: bool = False
    quiet: bool = True
    epochs: int | None = None  # overrides every node's training length
    attack_batch_size: int | str = 500  # or "auto"
    executor: str = "local"
    ray_address: str | None = None
    retries: int = 2
    gpus_per_task: float = 1.0
    force: frozenset[str] = frozenset()
    dry_run: bool = False
    command: str = ""  # recorded in provenance: what to retype to reproduce a record

    def __post_init__(self):
        dataset_info(self.dataset)  # an unknown dataset fails here, with the list
        if self.arch is not None and not self.arch.strip():
            raise BenchInputError("--arch '' names no architecture; omit it for the dataset's default "
                                  "(`bench list archs`)")
        if self.executor not in EXECUTORS:
            raise BenchInputError(f"unknown executor {self.executor!r}; allowed: {', '.join(EXECUTORS)}")
        if self.ray_address is not None and self.executor != "ray":
            raise BenchInputError("--ray-address needs --executor ray")
        if not (self.attack_batch_size == "auto" or (isinstance(self.attack_batch_size, int)
                                                     and self.attack_batch_size > 0)):
            raise BenchInputError(f"attack batch size must be a positive integer or 'auto', got "
                                  f"{self.attack_batch_size!r}")


@dataclass(frozen=True)
class Evaluation:
    """What to attack with: attacks at norms and budgets, on the first `n_eval` test examples."""

    attacks: tuple[str, ...]
    attacks_named: bool = False  # named explicitly: an attack without the chosen norm is an error
    norms: tuple[str, ...] = ("linf", "l2", "l0")
    eps: tuple[float, ...] | None = None
    per_attack: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    n_eval: int | None = None
    adaptive: bool = True
    binarization: int = 0  # examples per binarization test (0: none)

    @classmethod
    def build(cls, attacks: str | Sequence[str] = "all", *, norm: str = "all",
              eps: float | Sequence[float] | None = None, per_attack: Mapping[str, Mapping[str, str]] | None = None,
              n_eval: int | None = None, adaptive: bool = True, binarization: int = 0) -> "Evaluation":
        text = _names(attacks)
        names = tuple(ATTACKS.resolve(text))
        if n_eval is not None and (isinstance(n_eval, bool) or not isinstance(n_eval, int) or n_eval <= 0):
            raise BenchInputError(f"n_eval must be a positive integer or None, got {n_eval!r}")
        eps_t = None if eps is None else tuple(float(e) for e in ([eps] if isinstance(eps, (int, float)) else eps))
        given = {k: {f: str(v) for f, v in cfg.items()} for k, cfg in (per_attack or {}).items()}
        for owner in given:
            if owner not in names:
                raise BenchInputError(f"attack config names {owner!r}, not an attack of this run ({', '.join(names)})")
        if isinstance(binarization, bool) or not isinstance(binarization, int) or binarization < 0:
            raise BenchInputError(f"binarization must be a number of examples >= 0, got {binarization!r}")
        return cls(names, text.strip() != "all", parse_norms(norm), eps_t, given, n_eval, adaptive, binarization)


@dataclass(frozen=True)
class TrainRequest:
    """`bench train`: defenses (each with its `--set` overrides) and an optional `--sweep`."""

    defenses: tuple[str, ...]
    per_defense: Mapping[str, Mapping[str, str]]
    sweep: str | None = None
    session: Session = Session()


@dataclass(frozen=True)
class RunRequest:
    """`bench run`: train the defenses, attack them, write the leaderboard."""

    defenses: tuple[str, ...]
    per_defense: Mapping[str, Mapping[str, str]]
    evaluation: Evaluation
    sweep: str | None = None
    session: Session = Session()
    leaderboard: str | None = None  # None: <store>/leaderboard.md

    @classmethod
    def build(cls, defense: str | Sequence[str], attacks: str | Sequence[str] = "all", *,
              sets: Sequence[str] = (), sweep: str | None = None, norm: str = "all",
              eps: float | Sequence[float] | None = None, n_eval: int | None = None, adaptive: bool = True,
              leaderboard: str | None = None, session: Session | None = None, binarization: int = 0,
              **session_fields) -> "RunRequest":
        """From the values a user types: `defense="ta-chain", attacks="all", sets=["temperature=20"]`."""
        session = session or Session(**session_fields)
        defenses = tuple(DEFENSES.resolve(_names(defense)))
        attack_names = ATTACKS.resolve(_names(attacks))
        per_defense, per_attack = split_overrides(list(sets), defenses, attack_names)
        evaluation = Evaluation.build(attacks, norm=norm, eps=eps, per_attack=per_attack, n_eval=n_eval,
                                      adaptive=adaptive, binarization=binarization)
        return cls(defenses, per_defense, evaluation, sweep, session, leaderboard)


@dataclass(frozen=True)
class EvalRequest:
    """`bench eval`: attack models already in the store, by id or by the specs that trained them."""

    evaluation: Evaluation
    model_ids: tuple[str, ...] = ()
    defenses: tuple[str, ...] = ()
    per_defense: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    sweep: str | None = None
    session: Session = Session()
    factories: tuple[str, ...] = ()  # factories the user trusts to rebuild audited models (a store names none)


@dataclass(frozen=True)
class AuditRequest:
    """`bench audit` / `distill_bench.audit`: a model no plugin trained, with its provenance."""

    evaluation: Evaluation
    session: Session = Session()
    name: str | None = None  # the row label
    source: str = "module"  # checkpoint | factory | robustbench | module
    origin: str | None = None
    arch: str = "external"  # a registered architecture for a checkpoint
    provenance: Mapping[str, str] = field(default_factory=dict)
