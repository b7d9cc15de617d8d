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

    report = run(tasks)
    if plan is not None and plan.adaptive and not report.failed:
        report.merge(run(declared_round(plan, runner, nodes)))
        model_ids = {node.model_id for node in nodes}
        for _ in range(ADAPTIVE_ROUNDS):
            sync()
            assessments = assess(ResultSet.from_store(runner.store, plan.dataset), model_ids)
            batch = [t for t in adaptive_round(plan, runner, assessments, nodes) if t.id not in report.failed]
            if not batch:
                break
            report.merge(run(batch))
    sync()
    return report
