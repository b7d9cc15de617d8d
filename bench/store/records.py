"""Typed records and the result set over a store: the only way code reads results.

A `Record` is one model × attack × budget × evaluation slice, parsed once from its `record.json`
(schema: docs/schema/record.schema.json). A `ResultSet` holds the records, probes and model specs
of a store (or of a subset), and loads per-example outcomes lazily and once. Everything downstream
(assessment, masking rules, every rendering) takes a ResultSet, never raw JSON.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from bench.core.errors import BenchInputError
from bench.core.specs import Budget, content_hash

ID_LENGTH = 16
_HEX = frozenset("0123456789abcdef")


def valid_id(text: str) -> bool:
    """A model or record id: 16 lowercase hex digits (a content hash). Ids become paths, so
    anything else is refused wherever an id enters."""
    return isinstance(text, str) and len(text) == ID_LENGTH and set(text) <= _HEX


def check_id(text: str, what: str) -> str:
    if not valid_id(text):
        raise BenchInputError(f"{what} {text!r} is not a valid id ({ID_LENGTH} lowercase hex digits)")
    return text


@dataclass(frozen=True)
class Metrics:
    """What the harness measured for one record (fractions in [0, 1])."""

    n: int
    clean_acc: float
    robust_acc: float
    success_rate: float
    unbounded_success_rate: float
    perturbation_median: float | None = None
    perturbation_mean: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> "Metrics":
        known = {"n", "clean_acc", "robust_acc", "success_rate", "unbounded_success_rate", "perturbation"}
        pert = m.get("perturbation") or {}
        return cls(int(m["n"]), float(m["clean_acc"]), float(m["robust_acc"]), float(m["success_rate"]),
                   float(m.get("unbounded_success_rate", math.nan)), pert.get("median"), pert.get("mean"),
                   {k: v for k, v in m.items() if k not in known})


@dataclass(frozen=True)
class AttackInfo:
    """The attack of a record: name, config, where it comes from, and what kind of attack it is."""

    name: str
    config: Mapping[str, Any]
    library: str
    library_version: str
    minimal_norm: bool
    role: str  # bench.plugins.attacks.base.ROLES
    loss: str  # bench.plugins.attacks.base.LOSSES
    single_step: bool

    @property
    def config_summary(self) -> str:
        """The config as `k=v, ...` (sorted), for listing several configs of one attack."""
        return ", ".join(f"{k}={v}" for k, v in sorted(self.config.items())) or "defaults"


def _attack_kind(name: str, config: Mapping[str, Any]) -> tuple[str, str, bool]:
    """Role, loss and single-step flag of an attack by its registered class: records written before
    roles were stored in them (schema 1 without `role`) are read through this."""
    try:
        from bench.plugins.registry import ATTACKS

        cls = ATTACKS.get(name).obj
        return cls.role, cls.loss_for(dict(config)), cls.single_step
    except Exception:  # an attack plugin no longer installed: it still counts in the worst case
        return "unknown", "unknown", False


@dataclass(frozen=True)
class Record:
    record_id: str
    model_id: str
    defense: str
    defense_label: str
    defense_config: Mapping[str, Any]
    upstream: tuple[tuple[str, str, str], ...]  # (role, model_id, defense)
    arch: str
    dataset: str
    split: str
    n: int
    seed: int
    attack: AttackInfo
    budget: Budget
    metrics: Metrics
    notes: tuple[str, ...]
    command: str
    started_at: str
    wall_seconds: float
    adaptive: tuple[str, ...] = ()  # the fired rules this record answers, when the adaptive stage ran it
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def threat(self) -> tuple[str, float]:
        return self.budget.norm, float(self.budget.eps)

    @classmethod
    def from_json(cls, rec: Mapping[str, Any]) -> "Record":
        s = rec["spec"]
        a = s["attack"]
        if "role" in a:
            role, loss, single = a["role"], a["loss"], bool(a.get("single_step", False))
        else:
            role, loss, single = _attack_kind(a["name"], a.get("config", {}))
        prov = rec.get("provenance", {})
        return cls(
            record_id=check_id(rec["record_id"], "record id"), model_id=check_id(rec["model_id"], "model id"),
            defense=s["defense"]["name"], defense_label=s["defense"].get("label", s["defense"]["name"]),
            defense_config=dict(s["defense"].get("config", {})),
            upstream=tuple((u["role"], u["model_id"], u["defense"]) for u in s.get("upstream", [])),
            arch=s["arch"], dataset=s["dataset"]["name"], split=s["dataset"].get("split", "test"),
            n=int(s["dataset"]["n"]), seed=int(s["seed"]),
            attack=AttackInfo(a["name"], dict(a.get("config", {})), a.get("library", ""), a.get("library_version", ""),
                              bool(a.get("minimal_norm", False)), role, loss, single),
            budget=Budget(s["budget"]["norm"], float(s["budget"]["eps"])),
            metrics=Metrics.from_json(rec["metrics"]),
            notes=tuple(rec.get("attack_notes", [])),
            command=prov.get("command", ""), started_at=prov.get("started_at", ""),
            wall_seconds=float(prov.get("wall_seconds", 0.0)),
            adaptive=tuple((rec.get("adaptive") or {}).get("rules", ())),
            raw=rec,
        )


@dataclass(frozen=True)
class NewRecord:
    """A record as the runner makes it, typed as `Record` is when read; `to_json` is the file's
    content (docs/schema/record.schema.json) before the store seals it."""

    schema_version: int
    record_id: str
    key: Mapping[str, Any]  # what the id is the hash of
    model_id: str
    model_sha256: str  # the weights it attacked: a retrained model makes it stale
    defense: Mapping[str, Any]  # name, label, config
    upstream: tuple[Mapping[str, str], ...]  # role, model_id, defense
    arch: str
    dataset: Mapping[str, Any]  # name, split, n, seed
    attack: Mapping[str, Any]  # name, config, library, library_version, minimal_norm, role, loss, single_step
    budget: Budget
    seed: int
    metrics: Mapping[str, Any]
    attack_notes: tuple[str, ...]
    provenance: Mapping[str, Any]
    adaptive_rules: tuple[str, ...] = ()  # the fired rules this record answers (the adaptive stage)

    def to_json(self) -> dict:
        record = {
            "schema_version": self.schema_version, "record_id": self.record_id, "key": dict(self.key),
            "model_id": self.model_id, "model_sha256": self.model_sha256,
            "spec": {"defense": dict(self.defense), "upstream": [dict(u) for u in self.upstream], "arch": self.arch,
                     "dataset": dict(self.dataset), "attack": dict(self.attack),
                     "budget": {"norm": self.budget.norm, "eps": self.budget.eps}, "seed": self.seed},
            "metrics": dict(self.metrics), "attack_notes": list(self.attack_notes), "per_example": "per_example.csv",
            "provenance": dict(self.provenance),
        }
        if self.adaptive_rules:
            record["adaptive"] = {"rules": list(self.adaptive_rules)}
        return record


@dataclass(frozen=True)
class Probes:
    """One model's probes on one evaluation slice (bench/execute/probes.py)."""

    model_id: str
    dataset: str
    n: int
    clean_acc: float
    zero_grad_share: float
    saturated_share: float
    logit_l1_median: float
    top2_gap_median: float
    sensitivity: float
    confidence_correct: float | None  # None: no test input classified right
    grad_unavailable_share: float = 0.0
    grad_nonfinite_share: float = 0.0
    randomized_share: float = 0.0
    zero_dlr_grad_share: float = 0.0
    grad_l1_per_example: tuple[float, ...] = field(repr=False, default=())
    loss_instability: float | None = None  # Pintor et al.'s unstable predictions (probes of version 4 on)
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, p: Mapping[str, Any]) -> "Probes":
        return cls(p["model_id"], p["dataset"], int(p["n"]), float(p["clean_acc"]), float(p["zero_grad_share"]),
                   float(p["saturated_share"]), float(p["logit_l1_median"]), float(p["top2_gap_median"]),
                   float(p["sensitivity"]),
                   None if p["confidence_correct"] is None else float(p["confidence_correct"]),
                   float(p.get("grad_unavailable_share", 0.0)), float(p.get("grad_nonfinite_share", 0.0)),
                   float(p.get("randomized_share", 0.0)), float(p.get("zero_dlr_grad_share", 0.0)),
                   tuple(float(v) for v in p.get("ce_grad_l1_per_example", ())),
                   None if p.get("loss_instability") is None else float(p["loss_instability"]), p)


@dataclass(frozen=True)
class Binarization:
    """The binarization test of one attack record's attack on its model (bench/execute/binarization.py):
    the share of counted examples where it found the adversarial point that exists by construction."""

    binarization_id: str
    record_id: str
    model_id: str
    attack: str
    norm: str
    eps: float
    samples: int
    counted: int
    success_rate: float | None
    pass_rate: float
    passed: bool | None

    @classmethod
    def from_json(cls, b: Mapping[str, Any]) -> "Binarization":
        rate = b.get("success_rate")
        return cls(b["binarization_id"], b["record_id"], b["model_id"], b["attack"], b["norm"], float(b["eps"]),
                   int(b["samples"]), int(b["counted"]), None if rate is None else float(rate), float(b["pass_rate"]),
                   b.get("passed"))

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class ModelInfo:
    """What made a model, from its spec.json (or, for a model whose spec is gone, its records)."""

    model_id: str
    defense: str
    config: Mapping[str, Any]
    arch: str
    dataset: str
    seed: int
    upstream: Mapping[str, str]  # role -> model_id
    # per fit: the validation curve the training loop measured (bench/plugins/training.py), from spec.json
    training_curves: tuple = field(default=(), compare=False)
    # a digest of the code that trained it (spec.json's `code`; "" when only its records are left):
    # models of one configuration and seed trained by different code are different models
    code_digest: str = field(default="", compare=False)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "ModelInfo":
        curves = spec.get("training_curves", ())
        return cls(check_id(spec["model_id"], "model id"), spec["defense"], dict(spec.get("config", {})), spec["arch"], spec["dataset"],
                   int(spec["seed"]), dict(spec.get("upstream", {})),
                   tuple(c for c in curves if isinstance(c, Mapping)) if isinstance(curves, list) else (),
                   content_hash(spec["code"]) if isinstance(spec.get("code"), Mapping) else "")

    @classmethod
    def from_record(cls, rec: Record) -> "ModelInfo":
        return cls(rec.model_id, rec.defense, dict(rec.defense_config), rec.arch, rec.dataset, rec.seed,
                   {role: mid for role, mid, _ in rec.upstream})


PerExampleLoader = Callable[[str], pd.DataFrame]


class ResultSet:
    """Records, probes and model specs, with per-example outcomes loaded once on demand."""

    def __init__(self, records: Iterable[Record], probes: Iterable[Probes] = (),
                 models: Mapping[str, ModelInfo] | None = None, load_per_example: PerExampleLoader | None = None,
                 binarizations: Iterable[Binarization] = ()):
        self.records = sorted(records, key=lambda r: r.record_id)
        self.probes = sorted(probes, key=lambda p: (p.model_id, p.dataset, p.n))
        # only tests of records in the set: a test of a deleted or edited record says nothing
        ids = {r.record_id for r in self.records}
        self.binarizations = sorted((b for b in binarizations if b.record_id in ids),
                                    key=lambda b: (b.record_id, b.samples))
        known = dict(models or {})
        for rec in self.records:  # a model whose spec.json is missing is still described by its records
            known.setdefault(rec.model_id, ModelInfo.from_record(rec))
        self.models = known
        self._load = functools.lru_cache(maxsize=None)(load_per_example) if load_per_example else None

    @classmethod
    def from_store(cls, store, dataset: str | None = None, model_ids: Iterable[str] | None = None) -> "ResultSet":
        wanted = set(model_ids) if model_ids is not None else None
        raw = store.records(dataset=dataset) if dataset else store.records()
        records = [Record.from_json(r) for r in raw if wanted is None or r["model_id"] in wanted]
        probes = [Probes.from_json(p) for p in store.all_probes() if not dataset or p["dataset"] == dataset]
        models = {s["model_id"]: ModelInfo.from_spec(s) for s in store.models()}
        binarizations = [Binarization.from_json(b) for b in store.all_binarizations()]
        return cls(records, probes, models, store.load_per_example, binarizations)

    def per_example(self, record: Record) -> pd.DataFrame:
        """The record's per-example outcomes indexed by example index (position in the split)."""
        if self._load is None:
            raise RuntimeError("this ResultSet has no per-example loader")
        return self._load(record.record_id)

    def subset(self, model_ids: Iterable[str]) -> "ResultSet":
        keep = set(model_ids)
        out = ResultSet([r for r in self.records if r.model_id in keep], self.probes, self.models,
                        binarizations=self.binarizations)
        out._load = self._load
        return out

    def by_model(self) -> dict[str, list[Record]]:
        out: dict[str, list[Record]] = {}
        for rec in self.records:
            out.setdefault(rec.model_id, []).append(rec)
        return out

    def binarizations_of(self, model_id: str) -> tuple[Binarization, ...]:
        """The model's binarization tests, the largest per record."""
        best: dict[str, Binarization] = {}
        for b in self.binarizations:
            if b.model_id == model_id and (b.record_id not in best or b.samples > best[b.record_id].samples):
                best[b.record_id] = b
        return tuple(best[k] for k in sorted(best))

    def probes_of(self, model_id: str, dataset: str) -> Probes | None:
        """The model's probes of the newest probe version, on the largest evaluation slice probed
        (an older version measured something else: bench/core/specs.py PROBE_VERSION)."""
        mine = [p for p in self.probes if p.model_id == model_id and p.dataset == dataset]
        return max(mine, key=lambda p: (int(p.raw.get("probe_version", 0)), p.n)) if mine else None
