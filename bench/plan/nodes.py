"""Defenses → a DAG of training nodes, each addressed by its content hash.

`plan_model` resolves a defense and its `requires` into `TrainNode`s; a node needed by several
defenses (the vanilla teacher, say) has one id, so it is trained once per store and reused, and a
killed run resumes where it stopped. The id hashes the code too (`model_code`): edited code never
reuses an old model.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from bench.core.errors import BenchInputError
from bench.core.specs import ModelSpec, apply_overrides, config_to_dict
from bench.plugins.archs import arch_info, larger_arch
from bench.plugins.registry import DEFENSES, code_fingerprint

MAX_REQUIREMENT_DEPTH = 32  # deeper `requires` chains are a cycle, not a design


@dataclass
class TrainNode:
    """One model to train: a defense with its config, and the upstream nodes it needs by role."""

    defense: str
    config: Any  # the defense's Config dataclass, overrides applied
    arch: str
    dataset: str
    seed: int
    upstream: dict[str, "TrainNode"] = field(default_factory=dict)
    # set for a model known only by its id in the store (`bench eval --model-id`): never retrained
    stored_id: str | None = None

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.defense, config_to_dict(self.config), self.arch, self.dataset, self.seed,
                         {role: node.model_id for role, node in sorted(self.upstream.items())},
                         model_code(self.defense, self.arch))

    @property
    def model_id(self) -> str:
        return self.stored_id or self.spec.model_id

    @property
    def label(self) -> str:
        return DEFENSES.get(self.defense).obj().label(self.config)

    def walk(self):
        """Every node of the DAG under this one, upstream first, each once."""
        seen: set[str] = set()

        def visit(node):
            for up in node.upstream.values():
                yield from visit(up)
            if node.model_id not in seen:
                seen.add(node.model_id)
                yield node

        yield from visit(self)


def model_code(defense: str, arch: str) -> dict:
    """The code a model depends on: the defense plugin's and the architecture's fingerprints and the
    version of torch (part of the model id: bench.plugins.registry.code_fingerprint)."""
    info = arch_info(arch)
    from bench.plugins import training, validation

    return {"defense": DEFENSES.get(defense).fingerprint,
            "arch": code_fingerprint(info.build, getattr(info, "source", "built-in")),
            # the training loop, its validation attack and early stopping change the weights too
            "training": code_fingerprint(training.fit, "built-in") | {"validation": code_fingerprint(
                validation.ValidationAttack, "built-in")["modules"]},
            "libraries": {"torch": torch.__version__.split("+")[0]}}


def plan_model(defense: str, overrides: Mapping[str, Any], *, arch: str, dataset: str, seed: int,
               epochs: int | None = None, _depth: int = 0) -> TrainNode:
    """Resolve a defense and its `requires` into a DAG of TrainNodes. `overrides` maps config
    fields to values (strings from the CLI are parsed against the field types); `epochs`, when
    given, overrides the training length of every node that has an `epochs` field."""
    if _depth > MAX_REQUIREMENT_DEPTH:
        raise BenchInputError(f"defense {defense!r}: requirements nest deeper than {MAX_REQUIREMENT_DEPTH} (a cycle?)")
    cls = DEFENSES.get(defense).obj
    cfg = apply_overrides(cls.Config(), overrides, defense)
    if epochs is not None and any(f.name == "epochs" for f in dataclasses.fields(cfg)):
        cfg = dataclasses.replace(cfg, epochs=epochs)
    instance = cls()
    arch = instance.arch(cfg, arch)
    arch_info(arch)  # an unknown architecture fails here, before anything trains
    upstream = {}
    for req in instance.requires(cfg):
        req_arch = req.arch or (larger_arch(arch) if req.larger else arch)
        upstream[req.role] = plan_model(req.defense, dict(req.config), arch=req_arch, dataset=dataset,
                                        seed=seed, epochs=epochs, _depth=_depth + 1)
    return TrainNode(defense, cfg, arch, dataset, seed, upstream)


def stored_node(store, model_id: str, _depth: int = 0) -> TrainNode:
    """A model known only by its id in the store (`bench eval --model-id`), with its stored upstream
    models (a teacher, for transfer from it). Never retrained."""
    spec = store.rebuildable_spec(model_id)
    cls = DEFENSES.get(spec["defense"]).obj
    upstream = {role: stored_node(store, up, _depth + 1) for role, up in spec.get("upstream", {}).items()
                if _depth < MAX_REQUIREMENT_DEPTH and store.has_model(up)}
    return TrainNode(spec["defense"], apply_overrides(cls.Config(), spec["config"], spec["defense"]),
                     spec["arch"], spec["dataset"], spec["seed"], upstream, stored_id=model_id)
