"""`bench run --dry-run`: the plan as text, each node cached or to run, with an estimate of its cost.

Estimates come first from the wall times the store recorded for similar nodes ("history"):
training as seconds per epoch of the same defense, architecture and dataset; attacks as seconds
per example of the same attack, norm, architecture and dataset on a model of the same kind —
trained against a budget or not, since an attack that stops on broken examples (AutoAttack, Square)
costs 3.0 s per example on adversarial training where it costs 0.2 s on vanilla papernot-mnist;
binarization tests as seconds per sampled example of earlier binarization tests. A node with no similar node is
estimated by the cost model ("model": its passes of the model × seconds per pass measured here,
bench/plan/costs.py); each line says which, and a node neither knows is shown as "?".
"""
from __future__ import annotations

import statistics
from collections import defaultdict

from bench.execute.executors import topological
from bench.plan.costs import model_estimate, trained_against_a_budget


def _history(store) -> tuple[dict, dict, dict]:
    per_epoch: dict[tuple, list[float]] = defaultdict(list)
    robust: dict[str, bool] = {}
    for spec in store.models():
        robust[spec["model_id"]] = trained_against_a_budget(spec.get("config") or {})
        wall = (spec.get("provenance") or {}).get("wall_seconds")
        epochs = (spec.get("config") or {}).get("epochs")
        if wall and epochs:
            per_epoch[(spec["defense"], spec["arch"], spec["dataset"])].append(wall / epochs)
    arch = {}
    per_example: dict[tuple, list[float]] = defaultdict(list)
    for rec in store.records():
        wall = rec["provenance"].get("wall_seconds")
        n = rec["metrics"].get("n")
        s = rec["spec"]
        arch[rec["model_id"]] = (s["arch"], s["dataset"]["name"])
        if wall and n:
            per_example[(s["attack"]["name"], s["budget"]["norm"], s["arch"], s["dataset"]["name"],
                         robust.get(rec["model_id"], False))].append(wall / n)
    # a binarization test runs its attack once per sampled example, with the readout's points: its
    # cost per sample is its own (measured: 2.8-3.2 s per sample of AutoAttack and FMN on vanilla
    # papernot-mnist, where the attack's own record costs 0.03-0.2 s per example)
    per_sample: dict[tuple, list[float]] = defaultdict(list)
    for b in store.all_binarizations():
        wall, samples = b.get("wall_seconds"), b.get("samples")
        where = arch.get(b.get("model_id"))
        if wall and samples and where:
            per_sample[(b["attack"], b["norm"], *where, robust.get(b["model_id"], False))].append(wall / samples)
    return per_epoch, per_example, per_sample


def estimate(task, runner, history) -> tuple[float | None, str]:
    """(seconds, "history" | "model" | "")."""
    seconds = _from_history(task, runner, history)
    if seconds is not None:
        return seconds, "history"
    seconds = model_estimate(task, runner)
    return (seconds, "model") if seconds is not None else (None, "")


def _from_history(task, runner, history) -> float | None:
    per_epoch, per_example, per_sample = history
    node = task.node
    if task.kind == "train":
        epochs = getattr(node.config, "epochs", None)
        times = per_epoch.get((node.defense, node.arch, node.dataset))
        return statistics.median(times) * epochs if times and epochs else None
    if task.kind in ("attack", "binarize"):
        spec = task.attack.spec
        key = (task.attack.name, spec.budget.norm, node.arch, node.dataset, trained_against_a_budget(node.config))
        if task.kind == "attack":
            times = per_example.get(key)
            return statistics.median(times) * spec.n if times else None
        times = per_sample.get(key)  # a binarization test: one attack per example, `samples` of them
        return statistics.median(times) * task.samples if times else None
    return None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def plan_text(tasks, runner, *, adaptive: bool) -> str:
    history = _history(runner.store)
    lines = [f"{'status':<7} {'node':<8} {'id':<16}  {'estimate':>9}  {'from':<7}  what"]
    total, unknown, to_run = 0.0, 0, 0
    sources: dict[str, int] = defaultdict(int)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for task in topological(tasks):
        cached = task.cached(runner)
        counts[task.kind][0 if cached else 1] += 1
        est, source = (None, "") if cached else estimate(task, runner, history)
        if not cached:
            to_run += 1
            if est is None:
                unknown += 1
            else:
                sources[source] += 1
            total += est or 0.0
        shown = "—" if cached else ("?" if est is None else _duration(est))
        lines.append(f"{'cached' if cached else 'run':<7} {task.kind:<8} {task.id}  {shown:>9}  {source:<7}  {task.label}")
    parts = [f"{k}: {c[1]} to run, {c[0]} cached" for k, c in sorted(counts.items())]
    lines.append("")
    lines.append(f"plan: {len(tasks)} node(s) ({'; '.join(parts)})")
    said = [f"{sources['history']} from similar nodes in the store", f"{sources['model']} from the cost model"]
    note = f"; {unknown} node(s) not estimated" if unknown else ""
    lines.append(f"estimated cost of the {to_run} node(s) to run: {_duration(total)} ({', '.join(said)}{note}; "
                 "bench/plan/costs.py)")
    if adaptive:
        lines.append("then: the adaptive stage, planned after the assessment (the attacks each masking flag calls "
                     "for; docs/masking.md)")
    return "\n".join(lines)
