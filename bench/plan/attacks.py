"""An attack resolved for one model and budget: its config, its surrogate node, its record id.

Resolved once, at planning (`plan_attack`), and carried by the attack task to the runner, which
builds the adapter from it; nothing is prepared twice. Nothing here trains or loads a model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from bench.core.errors import BenchInputError
from bench.core.specs import AttackSpec, Budget, apply_overrides, config_to_dict
from bench.plan.nodes import TrainNode, plan_model
from bench.plugins.undefended import undefended_arch
from bench.plugins.datasets import dataset_info
from bench.plugins.registry import ATTACKS


def attack_code(attack_name: str, attack) -> dict:
    """The code an attack record depends on: the attack plugin's fingerprint and its library's version."""
    return {"attack": ATTACKS.get(attack_name).fingerprint,
            "libraries": {"torch": torch.__version__.split("+")[0], attack.library: attack.library_version}}


@dataclass(frozen=True)
class PreparedAttack:
    """What the runner needs to make one record: the adapter's name and parsed config, the config
    the record stores (with the surrogate's id and temperature), the surrogate node and the spec
    whose hash is the record id."""

    name: str
    config: Any  # the attack's Config dataclass, overrides applied
    recorded_config: Mapping[str, Any]
    surrogate: TrainNode | None
    surrogate_temperature: float | None
    spec: AttackSpec

    @property
    def record_id(self) -> str:
        return self.spec.record_id

    def instantiate(self):
        """A fresh adapter (it is given the surrogate model at execution)."""
        attack = ATTACKS.get(self.name).obj(self.config)
        if self.surrogate_temperature is not None:
            attack.surrogate_temperature = self.surrogate_temperature
        return attack


def _surrogate(attack_cls, cfg, node: TrainNode, epochs: int | None) -> tuple[TrainNode, float | None]:
    """The model a transfer attack crafts on: the attacked model's own teacher at its temperature
    (`source=teacher`), or the undefended model of the base architecture, trained as long as the
    attacked one, so that a wrapper's input transform or custom backward is not inherited."""
    if getattr(cfg, "source", "vanilla") == "teacher" and "teacher" in node.upstream:
        surrogate = node.upstream["teacher"]
        return surrogate, float(getattr(surrogate.config, "temperature", 1.0))
    epochs = epochs if epochs is not None else getattr(node.config, "epochs", None)
    default = dataset_info(node.dataset).default_arch
    try:
        arch = undefended_arch(node.arch, default)  # a plugin arch without `base`: the dataset's default
    except BenchInputError:  # an external model of no registered architecture
        arch = default
    return plan_model(attack_cls.surrogate, {}, arch=arch, dataset=node.dataset, seed=node.seed, epochs=epochs), None


def plan_attack(node: TrainNode, attack_name: str, overrides: Mapping[str, Any], budget: Budget, *,
                dataset: str, n: int, seed: int, batch_size: int, epochs: int | None) -> PreparedAttack:
    """Resolve `attack_name` with its `--set` overrides against `node`'s model at `budget` on the
    first `n` test examples of `dataset`; `epochs` is the run's --epochs (for the surrogate)."""
    attack_cls = ATTACKS.get(attack_name).obj
    cfg = apply_overrides(attack_cls.Config(), overrides, attack_name)
    recorded = config_to_dict(cfg)
    surrogate, temperature = None, None
    if getattr(attack_cls, "surrogate", None):  # e.g. transfer: crafted on another node
        surrogate, temperature = _surrogate(attack_cls, cfg, node, epochs)
        if temperature is not None:
            recorded["surrogate_temperature"] = temperature
        recorded["surrogate_model_id"] = surrogate.model_id
    attack = attack_cls(cfg)
    spec = AttackSpec(node.model_id, attack_name, recorded, budget, dataset, "test", n, seed, batch_size,
                      attack_code(attack_name, attack))
    return PreparedAttack(attack_name, cfg, recorded, surrogate, temperature, spec)
