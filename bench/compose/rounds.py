"""Execute a plan's rounds: the first (models, suite, probes), then the attacks the defenses
declare, then the adaptive rounds, each planned after an assessment of what the store holds."""
from __future__ import annotations

from typing import Sequence

from bench.assess.assessment import assess
from bench.plan.tasks import EvalPlan, Task, adaptive_round, declared_round
from bench.store.records import ResultSet

ADAPTIVE_ROUNDS = 2  # a second round answers rules that the first round's records made fire


def execute(plan: EvalPlan | None, runner, nodes, tasks: Sequence[Task], executor):
    """Run `tasks`, then (with an evaluation plan that is adaptive) the declared and adaptive
    rounds. An executor other than the local one gets only the tasks not cached, and the index is
    refreshed from the files its workers wrote before each assessment. Returns the executor's Report."""
    local = executor.name == "local"

    def run(batch):
        return executor.run(batch if local else [t for t in batch if not t.cached(runner)])

    def sync():
        if not local:
            runner.store.refresh_index()

    def local_to_failures(batch):
        """A failure stays local: tasks that failed, or need something that failed, are left out;
        every other model's declared and adaptive rounds still run (the exit code says what failed)."""
        broken = set(report.failed) | set(report.skipped)
        return [t for t in batch if t.id not in broken and not set(t.deps) & broken]

    report = run(tasks)
    if plan is not None and plan.adaptive:
        broken = set(report.failed) | set(report.skipped)
        healthy = [node for node in nodes if node.model_id not in broken]
        report.merge(run(local_to_failures(declared_round(plan, runner, healthy))))
        model_ids = {node.model_id for node in healthy}
        for _ in range(ADAPTIVE_ROUNDS):
            sync()
            assessments = assess(ResultSet.from_store(runner.store, plan.dataset), model_ids)
            batch = local_to_failures(adaptive_round(plan, runner, assessments, healthy))
            if not batch:
                break
            report.merge(run(batch))
    sync()
    return report
