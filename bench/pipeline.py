"""Plan and execute: defenses → a DAG of training nodes → models → attack records.

Each training node is addressed by its content hash (ModelSpec.model_id), so a node needed by
several defenses (the vanilla teacher, say) is trained once per store and reused, and a run that
was killed resumes where it stopped. Attack records are cached the same way.
"""
from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import torch

from bench import __version__
from bench.data import Dataset
from bench.errors import BenchInputError
from bench.evaluate import run_attack
from bench.registry import ATTACKS, DEFENSES
from bench.specs import RECORD_SCHEMA_VERSION, AttackSpec, Budget, ModelSpec, apply_overrides, config_to_dict
from bench.store import Store
from defenses.base import TrainContext


@dataclass
class TrainNode:
    """One model to train: a defense with its config, and the upstream nodes it needs by role."""

    defense: str
    config: Any
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
    version of torch (part of the model id: bench.registry.code_fingerprint)."""
    from bench.archs import arch_info
    from bench.registry import code_fingerprint

    info = arch_info(arch)
    return {"defense": DEFENSES.get(defense).fingerprint,
            "arch": code_fingerprint(info.build, getattr(info, "source", "built-in")),
            "libraries": {"torch": torch.__version__.split("+")[0]}}


def attack_code(attack_name: str, attack) -> dict:
    """The code an attack record depends on: the attack plugin's fingerprint and its library's version."""
    return {"attack": ATTACKS.get(attack_name).fingerprint,
            "libraries": {"torch": torch.__version__.split("+")[0], attack.library: attack.library_version}}


def plan_model(defense: str, overrides: Mapping[str, Any], *, arch: str, dataset: str, seed: int,
               epochs: int | None = None, _depth: int = 0) -> TrainNode:
    """Resolve a defense and its `requires` into a DAG of TrainNodes. `overrides` maps config
    fields to values (strings from the CLI are parsed against the field types); `epochs`, when
    given, overrides the training length of every node that has an `epochs` field."""
    if _depth > 32:
        raise BenchInputError(f"defense {defense!r}: requirements nest deeper than 32 (a cycle?)")
    cls = DEFENSES.get(defense).obj
    cfg = apply_overrides(cls.Config(), overrides, defense)
    if epochs is not None and any(f.name == "epochs" for f in dataclasses.fields(cfg)):
        cfg = dataclasses.replace(cfg, epochs=epochs)
    instance = cls()
    arch = instance.arch(cfg, arch)
    from bench.archs import arch_info

    arch_info(arch)  # an unknown architecture fails here, before anything trains
    upstream = {}
    for req in instance.requires(cfg):
        upstream[req.role] = plan_model(req.defense, dict(req.config), arch=req.arch or arch, dataset=dataset,
                                        seed=seed, epochs=epochs, _depth=_depth + 1)
    return TrainNode(defense, cfg, arch, dataset, seed, upstream)


@dataclass
class PreparedAttack:
    attack: Any
    config: dict
    surrogate: TrainNode | None
    spec: AttackSpec


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()}"


class Runner:
    """Executes plans against a store. Counts what it trained/attacked and what it reused."""

    def __init__(self, store: Store, dataset: Dataset, device: torch.device, *, quiet: bool = False,
                 log: Callable[[str], None] = print, attack_batch_size: int = 500, epochs: int | None = None,
                 command: str = "", force: frozenset[str] | None = None):
        self.store, self.dataset, self.device = store, dataset, device
        self.epochs = epochs  # the run's --epochs, for nodes an attack needs (the transfer surrogate)
        self.command = command  # recorded in provenance: what to re-run to reproduce a record
        self.quiet, self.log = quiet, log
        self.attack_batch_size = attack_batch_size
        self.trained: list[str] = []
        self.reused_models: list[str] = []
        self.attacked: list[str] = []
        self.reused_records: list[str] = []
        self.probed: list[str] = []
        self._models: dict[str, torch.nn.Module] = {}
        # --force: "all", or defense / attack names whose artifacts are recomputed (once per run)
        self.force = frozenset(force or ())
        self._forced: set[str] = set()

    def adopt(self, model_id: str, model: torch.nn.Module) -> None:
        """Use this in-memory model for `model_id` (an audited model: bench/audit.py)."""
        self._models[model_id] = model.eval()

    def computed(self) -> int:
        """How many nodes this runner has computed (not reused) so far."""
        return len(self.trained) + len(self.attacked) + len(self.probed)

    def would_force(self, node_id: str, *names: str) -> bool:
        """Would `--force` recompute this node (not yet recomputed in this run)?"""
        return node_id not in self._forced and bool("all" in self.force or self.force & set(names))

    def _forced_now(self, node_id: str, *names: str) -> bool:
        """Recompute this node though it is cached? Each forced node is recomputed once per run."""
        if not self.would_force(node_id, *names):
            return False
        self._forced.add(node_id)
        return True

    def _cached_model(self, mid: str):
        """The stored model, or None when absent or corrupt (reported, then recomputed)."""
        from bench.store import CorruptArtifact

        if not self.store.has_model(mid):
            problem = self.store.problems.get(f"model:{mid}")
            if problem is not None:
                self.log(f"bench: warning: {problem}")
            return None
        try:
            return self.store.load_model(mid, self.dataset, self.device)
        except CorruptArtifact as exc:
            self.log(f"bench: warning: {exc}")
            return None

    # --- training ----------------------------------------------------------------------------
    def model(self, node: TrainNode) -> torch.nn.Module:
        """The trained model of `node`: from memory, from the store, or trained now (upstream first)."""
        mid = node.model_id
        if mid in self._models:
            return self._models[mid]
        upstream = {role: self.model(up) for role, up in node.upstream.items()} if node.stored_id is None else {}
        with self.store.lock(mid):  # a concurrent run computing the same node: wait for it, then reuse
            model = self._train_or_reuse(node, upstream)
        self._models[mid] = model
        return model

    def _train_or_reuse(self, node: TrainNode, upstream: dict) -> torch.nn.Module:
        mid = node.model_id
        if node.stored_id is not None:  # known only by its id (`bench eval --model-id`): used as stored or not at all
            model = self.store.load_model(mid, self.dataset, self.device)
            self.reused_models.append(mid)
            return model
        forced = self._forced_now(mid, node.defense)
        model = None if forced else self._cached_model(mid)
        if model is not None:
            self.reused_models.append(mid)
            self.log(f"reuse   {node.label:<40} {node.arch:<15} model {mid}")
        else:
            self.log(f"train   {node.label:<40} {node.arch:<15} model {mid}")
            ctx = TrainContext(self.dataset, node.arch, self.device, node.seed, quiet=self.quiet,
                               desc=f"train {node.label}", log=self.log)
            started_at, t0 = _now(), time.perf_counter()
            model = DEFENSES.get(node.defense).obj().train(node.config, ctx, upstream)
            wall = time.perf_counter() - t0
            model.eval()
            self.store.save_model(model, replace=forced, spec={
                **node.spec.to_json(),
                "label": node.label,
                "upstream_detail": {role: {"model_id": up.model_id, "defense": up.defense, "label": up.label}
                                    for role, up in node.upstream.items()},
                "provenance": self._provenance(wall, started_at),
                "created_at": started_at,
            })
            self.trained.append(mid)
            self.log(f"        trained in {wall:.1f}s")
        return model

    # --- attacking ---------------------------------------------------------------------------
    def prepare_attack(self, node: TrainNode, attack_name: str, attack_overrides: Mapping[str, Any], budget: Budget,
                       n_eval: int | None, seed: int) -> "PreparedAttack":
        """The attack instance, its recorded config, its surrogate node (transfer) and its spec, all
        without training or loading anything: what planning needs to know the record id."""
        attack_cls = ATTACKS.get(attack_name).obj
        attack = attack_cls(apply_overrides(attack_cls.Config(), attack_overrides, attack_name))
        attack_config = config_to_dict(attack.cfg)
        surrogate = None
        if getattr(attack_cls, "surrogate", None):  # e.g. transfer: crafted on the vanilla node
            from bench.archs import base_arch

            if getattr(attack.cfg, "source", "vanilla") == "teacher" and "teacher" in node.upstream:
                surrogate = node.upstream["teacher"]
                attack.surrogate_temperature = float(getattr(surrogate.config, "temperature", 1.0))
                attack_config["surrogate_temperature"] = attack.surrogate_temperature
            else:
                # trained on the undefended base architecture: a wrapper's input transform or custom
                # backward must not be inherited by the surrogate
                # trained as long as the attacked model (`bench eval --model-id` has no --epochs of its own)
                epochs = self.epochs if self.epochs is not None else getattr(node.config, "epochs", None)
                try:
                    arch = base_arch(node.arch)
                except BenchInputError:  # an external model of no registered architecture
                    from bench.data import dataset_info

                    arch = dataset_info(node.dataset).default_arch
                surrogate = plan_model(attack_cls.surrogate, {}, arch=arch, dataset=node.dataset,
                                       seed=node.seed, epochs=epochs)
            attack_config["surrogate_model_id"] = surrogate.model_id
        n = len(self.dataset.eval_slice(n_eval)[1])
        spec = AttackSpec(node.model_id, attack_name, attack_config, budget, self.dataset.name, "test", n, seed,
                          self.attack_batch_size, attack_code(attack_name, attack))
        return PreparedAttack(attack, attack_config, surrogate, spec)

    def record(self, node: TrainNode, attack_name: str, attack_overrides: Mapping[str, Any], budget: Budget,
               n_eval: int | None, seed: int, adaptive: list[str] | None = None) -> dict:
        """The record of `attack_name` at `budget` on `node`'s model: cached or computed now.
        `adaptive`: the fired rules this attack answers (the adaptive stage, bench/adaptive.py)."""
        prepared = self.prepare_attack(node, attack_name, attack_overrides, budget, n_eval, seed)
        attack, attack_config, surrogate, spec = prepared.attack, prepared.config, prepared.surrogate, prepared.spec
        x, y = self.dataset.eval_slice(n_eval)
        rid = spec.record_id
        forced = self._forced_now(rid, attack_name, node.defense)
        cached = None if forced else self.store.current_record(rid)
        if cached is not None:
            self.reused_records.append(rid)
            return cached
        if surrogate is not None:
            attack.surrogate_model = self.model(surrogate)
        model = self.model(node)
        with self.store.lock(rid):
            cached = None if forced else self.store.current_record(rid)
            if cached is not None:  # made by a concurrent run while we waited
                self.reused_records.append(rid)
                return cached
            problem = self.store.problems.get(f"record:{rid}")
            if problem is not None:
                self.log(f"bench: warning: {problem}")
            return self._attack(node, model, attack, attack_name, attack_config, budget, spec, x, y, seed,
                                adaptive, forced)

    def _attack(self, node, model, attack, attack_name, attack_config, budget, spec, x, y, seed, adaptive, forced):
        rid = spec.record_id
        started_at = _now()
        outcome = run_attack(model, attack, x, y, budget, num_classes=self.dataset.num_classes, seed=seed,
                             device=self.device, batch_size=self.attack_batch_size, quiet=self.quiet,
                             desc=f"{attack_name} {budget} on {node.label}")
        from bench.data import SPLIT_SEED

        record = {
            "schema_version": RECORD_SCHEMA_VERSION,
            "record_id": rid,
            "key": spec.key,
            "model_id": node.model_id,
            "model_sha256": self.store.weights_sha256(node.model_id),
            "spec": {
                "defense": {"name": node.defense, "label": node.label, "config": config_to_dict(node.config)},
                "upstream": [{"role": role, "model_id": up.model_id, "defense": up.defense}
                             for role, up in sorted(node.upstream.items())],
                "arch": node.arch,
                "dataset": {"name": self.dataset.name, "split": "test", "n": len(y), "seed": SPLIT_SEED},
                "attack": {"name": attack_name, "config": attack_config, "library": attack.library,
                           "library_version": attack.library_version, "minimal_norm": attack.minimal_norm,
                           "role": attack.role, "loss": attack.loss_for(attack_config),
                           "single_step": attack.single_step},
                "budget": {"norm": budget.norm, "eps": budget.eps},
                "seed": seed,
            },
            "metrics": outcome.metrics,
            "attack_notes": outcome.notes,
            "per_example": "per_example.csv",
            "provenance": self._provenance(outcome.wall_seconds, started_at),
        }
        if adaptive:
            record["adaptive"] = {"rules": list(adaptive)}
        record = self.store.save_record(record, outcome.per_example, replace=forced)
        self.attacked.append(rid)
        m = outcome.metrics
        self.log(f"attack  {node.label:<40} {attack_name:<6} {budget}: clean {m['clean_acc']:.1%} "
                 f"robust {m['robust_acc']:.1%} ({outcome.wall_seconds:.1f}s)")
        return record

    def probe_id(self, node: TrainNode, n_eval: int | None) -> str:
        from bench.probes import PROBE_VERSION
        from bench.specs import content_hash

        return content_hash({"kind": "probes", "version": PROBE_VERSION, "model_id": node.model_id,
                             "dataset": self.dataset.name, "n": len(self.dataset.eval_slice(n_eval)[1])})

    def probes(self, node: TrainNode, n_eval: int | None) -> dict:
        """The model probes of `node` on the evaluation slice, cached like records."""
        from bench.probes import probe_model

        x, y = self.dataset.eval_slice(n_eval)
        probe_id = self.probe_id(node, n_eval)
        cached = self.store.load_probes(probe_id)
        if cached is not None:
            return cached
        probes = {"probe_id": probe_id, "model_id": node.model_id, "label": node.label, "arch": node.arch,
                  "dataset": self.dataset.name, **probe_model(self.model(node), x, y, self.device)}
        self.store.save_probes(probe_id, probes)
        self.probed.append(probe_id)
        return probes

    def _provenance(self, wall: float, started_at: str) -> dict:
        return {"distill_bench_version": __version__, "torch_version": torch.__version__,
                "device": _device_name(self.device), "wall_seconds": round(wall, 3), "started_at": started_at,
                "command": self.command}
