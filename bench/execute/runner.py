"""Execute the plan's nodes against a store: train a model, make an attack record, probe a model.

The `Runner` computes each node once per store: it reuses what the store holds (verified on read),
takes the node's lock so that a concurrent run waits and reuses, and counts what it computed and
reused. What to compute was decided at planning (bench/plan/): the runner gets resolved nodes and
attacks, never raw options.
"""
from __future__ import annotations

import platform
import time
from datetime import datetime, timezone
from typing import Callable

import torch

from bench import __version__
from bench.core.specs import RECORD_SCHEMA_VERSION, binarization_id_of, config_to_dict, probe_id_of
from bench.execute.certify import run_certificate
from bench.execute.evaluate import run_attack
from bench.plan.attacks import PreparedAttack
from bench.plan.nodes import TrainNode
from bench.plugins.datasets import SPLIT_SEED, Dataset
from bench.plugins.registry import DEFENSES
from bench.store.artifacts import Store
from bench.store.integrity import CorruptArtifact
from bench.store.records import NewRecord
from defenses.base import TrainContext


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
        self.binarized: list[str] = []
        self._binarized_key, self._binarized = None, None  # the binarized models being tested (_binarized_examples)
        self._models: dict[str, torch.nn.Module] = {}
        # --force: "all", or defense / attack names whose artifacts are recomputed (once per run)
        self.force = frozenset(force or ())
        self._forced: set[str] = set()

    def adopt(self, model_id: str, model: torch.nn.Module) -> None:
        """Use this in-memory model for `model_id` (an audited model: bench/compose/audit.py)."""
        self._models[model_id] = model.eval()

    def computed(self) -> int:
        """How many nodes this runner has computed (not reused) so far."""
        return len(self.trained) + len(self.attacked) + len(self.probed) + len(self.binarized)

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
                "training_curves": [curve.to_json() for curve in ctx.curves],
            })
            self.trained.append(mid)
            self.log(f"        trained in {wall:.1f}s")
        return model

    # --- attacking ---------------------------------------------------------------------------
    def record(self, node: TrainNode, prepared: PreparedAttack, n_eval: int | None,
               adaptive: list[str] | None = None) -> dict:
        """The record of the planned attack on `node`'s model: cached or computed now.
        `adaptive`: the fired rules this attack answers (the adaptive stage, bench/assess/remedies.py)."""
        attack_name, attack_config, surrogate, spec = (prepared.name, dict(prepared.recorded_config),
                                                       prepared.surrogate, prepared.spec)
        budget, seed = spec.budget, spec.seed
        x, y = self.dataset.eval_slice(n_eval)
        rid = spec.record_id
        forced = self._forced_now(rid, attack_name, node.defense)
        cached = None if forced else self.store.current_record(rid)
        if cached is not None:
            self.reused_records.append(rid)
            return cached
        attack = prepared.instantiate()
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
        if attack.role == "certificate":  # a lower bound: certified examples, never adversarial ones
            outcome = run_certificate(model, attack, x, y, budget, device=self.device, batch_size=self.attack_batch_size)
        else:
            outcome = run_attack(model, attack, x, y, budget, num_classes=self.dataset.num_classes, seed=seed,
                                 device=self.device, batch_size=self.attack_batch_size, quiet=self.quiet,
                                 desc=f"{attack_name} {budget} on {node.label}",
                                 surrogate=getattr(attack, "surrogate_model", None))
        record = NewRecord(
            RECORD_SCHEMA_VERSION, rid, spec.key, node.model_id, self.store.weights_sha256(node.model_id),
            {"name": node.defense, "label": node.label, "config": config_to_dict(node.config)},
            tuple({"role": role, "model_id": up.model_id, "defense": up.defense}
                  for role, up in sorted(node.upstream.items())),
            node.arch, {"name": self.dataset.name, "split": "test", "n": len(y), "seed": SPLIT_SEED},
            {"name": attack_name, "config": attack_config, "library": attack.library,
             "library_version": attack.library_version, "minimal_norm": attack.minimal_norm, "role": attack.role,
             "loss": attack.loss_for(attack_config), "single_step": attack.single_step},
            budget, seed, outcome.metrics, tuple(outcome.notes), self._provenance(outcome.wall_seconds, started_at),
            tuple(adaptive or ()))
        saved = self.store.save_record(record.to_json(), outcome.per_example, replace=forced)
        self.attacked.append(rid)
        m = outcome.metrics
        self.log(f"attack  {node.label:<40} {attack_name:<6} {budget}: clean {m['clean_acc']:.1%} "
                 f"robust {m['robust_acc']:.1%} ({outcome.wall_seconds:.1f}s)")
        return saved

    def probes(self, node: TrainNode, n_eval: int | None) -> dict:
        """The model probes of `node` on the evaluation slice, cached like records."""
        from bench.execute.probes import probe_model  # imports the probes' numerics only when probing

        x, y = self.dataset.eval_slice(n_eval)
        probe_id = probe_id_of(node.model_id, self.dataset.name, len(y))
        cached = self.store.load_probes(probe_id)
        if cached is not None:
            return cached
        with self.store.lock(probe_id):  # a concurrent run probing the same model: wait, then reuse
            cached = self.store.load_probes(probe_id)
            if cached is not None:
                return cached
            probes = {"probe_id": probe_id, "model_id": node.model_id, "label": node.label, "arch": node.arch,
                      "dataset": self.dataset.name, **probe_model(self.model(node), x, y, self.device)}
            self.store.save_probes(probe_id, probes)
        self.probed.append(probe_id)
        return probes

    def binarization(self, node: TrainNode, prepared: PreparedAttack, n_eval: int | None, samples: int) -> dict:
        """The binarization test of the planned attack on `node`'s model, on the first `samples`
        examples of the evaluation slice it classifies correctly; cached like probes."""
        binarization_id = binarization_id_of(prepared.record_id, samples)
        cached = self.store.load_binarization(binarization_id)
        if cached is not None:
            return cached
        with self.store.lock(binarization_id):
            cached = self.store.load_binarization(binarization_id)
            return cached if cached is not None else self._binarize(node, prepared, n_eval, samples, binarization_id)

    def _binarized_examples(self, node, x, y, budget, seed, samples):
        """The binarized models of `node`'s examples at `budget`, built once and shared by every
        attack tested there (the last model and budget only: they are tested one after another)."""
        from bench.execute.binarization import binarized_examples

        key = (node.model_id, budget, seed, samples, len(y))
        if self._binarized_key != key:
            self._binarized_key, self._binarized = None, None  # free the previous ones first
            self._binarized = binarized_examples(self.model(node), x, y, budget,
                                                 num_classes=self.dataset.num_classes, seed=seed,
                                                 device=self.device, limit=samples)
            self._binarized_key = key
        return self._binarized

    def _binarize(self, node, prepared, n_eval, samples, binarization_id) -> dict:
        from bench.execute.binarization import binarization_test

        x, y = self.dataset.eval_slice(n_eval)
        budget = prepared.spec.budget
        started = time.perf_counter()
        result = binarization_test(self.model(node), prepared.instantiate(), x, y, budget,
                                   num_classes=self.dataset.num_classes, seed=prepared.spec.seed, device=self.device,
                                   limit=samples,
                                   binarized=self._binarized_examples(node, x, y, budget, prepared.spec.seed, samples))
        out = {"binarization_id": binarization_id, "record_id": prepared.record_id, "model_id": node.model_id,
               **result.to_json(), "samples": samples, "examples": [s.index for s in result.samples],
               "wall_seconds": round(time.perf_counter() - started, 3)}
        self.store.save_binarization(binarization_id, out)
        self.binarized.append(binarization_id)
        rate = "—" if result.success_rate is None else f"{result.success_rate:.0%}"
        self.log(f"binarize {node.label:<39} {prepared.name:<6} {budget}: found {rate} of {len(result.counted)} "
                 f"({'pass' if result.passed else 'fail' if result.passed is False else 'no counted example'})")
        return out

    def _provenance(self, wall: float, started_at: str) -> dict:
        return {"distill_bench_version": __version__, "torch_version": torch.__version__,
                "device": _device_name(self.device), "wall_seconds": round(wall, 3), "started_at": started_at,
                "command": self.command}
