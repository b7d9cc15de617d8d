"""Frozen specs, their canonical JSON, and the content hashes that address every artifact.

A model is addressed by the hash of what determines it (defense, config, architecture, dataset,
seed, the ids of its upstream models, the training code's cache version); an attack record by
the hash of its model id, attack, config, budget and evaluation slice. Same spec, same id: that
is what makes runs resumable and results shareable.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from bench.core.errors import BenchInputError

# Bump when a change to training or evaluation code changes what a spec produces, so that cached
# artifacts made by older code are not silently reused.
TRAIN_CACHE_VERSION = 1
EVAL_CACHE_VERSION = 2  # 2: records carry trace summaries and count silent successes (bench/execute/observer.py)
RECORD_SCHEMA_VERSION = 1
PROBE_VERSION = 5  # bump when the probes (bench/execute/probes.py) measure something else
BINARIZATION_VERSION = 2  # bump when the binarization test (bench/execute/binarization.py) changes

NORMS = ("linf", "l2", "l0")  # l0: eps is the fraction of input features that may change


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal specs give equal strings."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def content_hash(obj: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite float {obj!r} in a spec")
    return obj


@dataclass(frozen=True)
class Budget:
    """A threat model: the norm of the perturbation and its radius."""

    norm: str
    eps: float

    def __post_init__(self):
        if self.norm not in NORMS:
            raise BenchInputError(f"unknown norm {self.norm!r}; allowed: {', '.join(NORMS)}")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps > 0):
            raise BenchInputError(f"budget eps must be a positive number, got {self.eps!r}")
        if self.norm == "linf" and self.eps > 1:
            raise BenchInputError(f"an linf budget is at most 1 (inputs are in [0, 1]); got {self.eps!r}")
        if self.norm == "l0" and self.eps > 1:
            raise BenchInputError(f"an l0 budget is a fraction of the features, in (0, 1]; got {self.eps!r}")

    def __str__(self) -> str:
        return f"{self.norm} eps={self.eps:g}"


@dataclass(frozen=True)
class ModelSpec:
    """Everything that determines a trained model."""

    defense: str
    config: Mapping[str, Any]
    arch: str
    dataset: str
    seed: int
    upstream: Mapping[str, str] = field(default_factory=dict)  # role -> model_id
    # the code that trains it: the defense's package, version and source hashes, the architecture's,
    # and the library versions (bench.plugins.registry.code_fingerprint): edited code never reuses old models
    code: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> dict:
        """What the id is the hash of; stored in spec.json so the id can be verified."""
        return {"kind": "model", "cache_version": TRAIN_CACHE_VERSION, **_plain(self)}

    @property
    def model_id(self) -> str:
        return content_hash(self.key)

    def to_json(self) -> dict:
        return {"model_id": self.model_id, "key": self.key, **_plain(self)}


@dataclass(frozen=True)
class AttackSpec:
    """Everything that determines one attack record on one model."""

    model_id: str
    attack: str
    config: Mapping[str, Any]
    budget: Budget
    dataset: str
    split: str
    n: int
    seed: int
    # examples per attack call: random restarts and library RNG streams are drawn per batch, so the
    # batch size changes results (measured: noise 40% -> 44% robust between 500 and 7)
    batch_size: int = 500
    code: Mapping[str, Any] = field(default_factory=dict)  # the attack's code and library versions

    @property
    def key(self) -> dict:
        return {"kind": "record", "cache_version": EVAL_CACHE_VERSION, **_plain(self)}

    @property
    def record_id(self) -> str:
        return content_hash(self.key)


def probe_id_of(model_id: str, dataset: str, n: int) -> str:
    """The id of a model's probes on the first `n` test examples of `dataset`."""
    return content_hash({"kind": "probes", "version": PROBE_VERSION, "model_id": model_id, "dataset": dataset, "n": n})


def binarization_id_of(record_id: str, samples: int) -> str:
    """The id of the binarization test of the attack of record `record_id` (same model, attack
    config, budget, dataset and seed) on its first `samples` correctly classified examples."""
    return content_hash({"kind": "binarization", "version": BINARIZATION_VERSION, "record_id": record_id,
                         "samples": samples})


def config_to_dict(cfg: Any) -> dict:
    return _plain(cfg)


def parse_value(text: str, annotation: Any, field_name: str) -> Any:
    """Parse a `--set key=value` string into the type of the config field. For optional fields
    (`float | None`), `none` or `auto` gives None, which means "the paper's value for this dataset"."""
    names = {"int": int, "float": float, "bool": bool, "str": str}
    spelled = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    parts = [p.strip() for p in spelled.replace("Optional[", "").rstrip("]").split("|")]
    optional = "None" in parts
    kind = next((names[p] for p in parts if p in names), str)
    if optional and text.lower() in ("none", "auto"):
        return None
    try:
        if kind in (int, float) and (not text.isascii() or "_" in text):
            raise ValueError  # '20_0' or '٢٠' would parse as 200 or 20: a typo, not a number
        if kind is bool:
            low = text.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return low in ("true", "1", "yes")
        if kind is int:
            return int(text)
        if kind is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
        return text
    except ValueError:
        allowed = f"a valid {'finite ' if kind is float else ''}{kind.__name__}" + (" or 'auto'" if optional else "")
        raise BenchInputError(f"{field_name}={text!r} is not {allowed}") from None


def apply_overrides(cfg: Any, overrides: Mapping[str, str], owner: str) -> Any:
    """Return `cfg` with string overrides parsed against its dataclass fields.

    An unknown key is a BenchInputError naming the key and the allowed ones."""
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    values = {}
    for key, text in overrides.items():
        if key not in fields:
            raise BenchInputError(
                f"{owner} has no config field {key!r}; allowed: {', '.join(sorted(fields)) or '(none)'}"
            )
        values[key] = parse_value(text, fields[key].type, f"{owner}.{key}") if isinstance(text, str) else text
    try:
        return dataclasses.replace(cfg, **values)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, BenchInputError):
            raise
        raise BenchInputError(f"{owner}: {exc}") from None
