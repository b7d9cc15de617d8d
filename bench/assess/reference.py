"""The undefended reference of a model (rule R7 compares a model's probes with it) and a model's
config as changes from its defense's defaults.

The reference is chosen by spec, never by label: `vanilla` with its default config but for the
training length, on the base architecture of the model's dataset (bench/plugins/undefended.py), with
the same dataset, seed and epochs. The undefended model of a spec is its own reference.
"""

from __future__ import annotations

from typing import Mapping

from bench.core.specs import config_to_dict
from bench.plugins.datasets import dataset_info
from bench.plugins.registry import DEFENSES
from bench.plugins.undefended import undefended_arch
from bench.store.records import ModelInfo


def default_config(defense: str) -> dict | None:
    try:
        return config_to_dict(DEFENSES.get(defense).obj.Config())
    except Exception:  # a defense plugin no longer installed: every field is shown
        return None


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def config_changes(defense: str, config: Mapping) -> dict[str, str]:
    """Config fields that differ from the defense's defaults, as display strings."""
    default = default_config(defense) or {}
    return {k: _fmt(v) for k, v in sorted(config.items()) if k not in default or default[k] != v}


def _base(arch: str, dataset: str) -> str:
    """The undefended architecture of `arch` on `dataset` (bench/plugins/undefended.py)."""
    try:
        return undefended_arch(arch, dataset_info(dataset).default_arch)
    except Exception:
        return arch


def is_own_reference(info: ModelInfo) -> bool:
    """`info` is the undefended model of its spec: `vanilla` with default config but for the
    training length, on the base architecture of its dataset."""
    return (info.defense == "vanilla" and info.arch == _base(info.arch, info.dataset)
            and not config_changes("vanilla", {k: v for k, v in info.config.items() if k != "epochs"}))


def find_reference(info: ModelInfo, models: Mapping[str, ModelInfo]) -> ModelInfo | None:
    """The undefended model trained like `info`: `vanilla` with default config but for the
    training length, same dataset, base architecture and seed. Chosen by spec, never by label."""
    if is_own_reference(info):
        return None
    default = default_config("vanilla") or {}
    arch = _base(info.arch, info.dataset)
    for other in sorted(models.values(), key=lambda m: m.model_id):
        if (other.defense == "vanilla" and other.dataset == info.dataset and other.arch == arch
                and other.seed == info.seed and other.config.get("epochs") == info.config.get("epochs")
                and all(other.config.get(k, v) == v for k, v in default.items() if k != "epochs")):
            return other
    return None
