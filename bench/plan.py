"""What a run evaluates, and its stages: attacks at budgets, probes, the adaptive stage.

`EvalPlan` is the evaluation half of a run, built once from the command line (`bench run`,
`bench eval`, `bench audit`) or from `distill_bench.audit(...)`'s arguments and validated before any
work. It becomes `Task`s (train, attack, probe; each with its content id and dependencies) that an
executor (bench/executors.py) runs through a `Runner` (bench/pipeline.py); `execute` adds the
adaptive rounds, each planned after an assessment. `bench run`/`eval`/`train` and the audit share it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from bench.errors import BenchInputError
from bench.specs import Budget


@dataclass(frozen=True)
class EvalPlan:
    dataset: str
    family: str  # the dataset's family: its default budgets
    shape: tuple[int, ...]
    attacks: tuple[str, ...]
    per_attack: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # --set overrides
    norm: str = "all"  # "all" or comma-separated norms
    eps: tuple[float, ...] | None = None
    attacks_named: bool = False  # named explicitly (an attack without the norm is then an error)
    n_eval: int | None = None
    seed: int = 0
    adaptive: bool = True

    def budgets(self) -> list[tuple[str, Budget]]:
        """(attack, Budget) pairs: each attack at each selected norm it supports, at `eps` or the
        dataset's default budget (bench.options.budget_plan checks them)."""
        from types import SimpleNamespace

        from bench.options import budget_plan

        args = SimpleNamespace(norm=self.norm, eps=list(self.eps) if self.eps else None,
                               attacks=",".join(self.attacks) if self.attacks_named else "all")
        return budget_plan(args, list(self.attacks), self.family, self.shape)

    def threats(self) -> list[tuple[str, float]]:
        return sorted({(b.norm, b.eps) for _, b in self.budgets()})


def reference_node(store, node, epochs: int | None = None):
    """The vanilla model trained like `node` (dataset, base architecture, seed, training length),
    when it is already trained: the reference of rule R7. Never trained just for that."""
    from bench.archs import base_arch
    from bench.pipeline import plan_model

    try:
        arch = base_arch(node.arch)
    except BenchInputError:  # an external model of no registered architecture
        return None
    epochs = epochs if epochs is not None else getattr(node.config, "epochs", None)
    ref = plan_model("vanilla", {}, arch=arch, dataset=node.dataset, seed=node.seed, epochs=epochs)
    if ref.model_id == node.model_id or not store.has_model(ref.model_id):
        return None
    return ref


# --- the plan as a DAG of tasks ------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One node of the DAG: train a model, attack it at a budget, or probe it. `id` is the content
    id of the artifact it makes (model, record or probe id); `deps` the ids it needs first."""

    kind: str  # "train" | "attack" | "probe"
    id: str
    label: str
    deps: tuple[str, ...]
    node: object  # bench.pipeline.TrainNode
    attack: str | None = None
    config: Mapping[str, str] | None = None
    budget: Budget | None = None
    n_eval: int | None = None
    seed: int = 0
    adaptive: tuple[str, ...] | None = None

    def run(self, runner) -> None:
        if self.kind == "train":
            runner.model(self.node)
        elif self.kind == "attack":
            runner.record(self.node, self.attack, dict(self.config or {}), self.budget, self.n_eval, self.seed,
                          adaptive=list(self.adaptive) if self.adaptive else None)
        else:
            runner.probes(self.node, self.n_eval)

    def cached(self, runner) -> bool:
        """Is its artifact in the store already (and not forced)?"""
        store = runner.store
        if self.kind == "train":
            return self.node.stored_id is not None or (store.has_model(self.id) and not runner.would_force(
                self.id, self.node.defense))
        if self.kind == "attack":
            return store.has_record(self.id) and not runner.would_force(self.id, self.attack, self.node.defense)
        return store.load_probes(self.id) is not None


def train_tasks(nodes) -> list[Task]:
    """A task per model of the DAG under `nodes` (upstream first, each once)."""
    seen: dict[str, Task] = {}
    for root in nodes:
        for node in root.walk():
            if node.model_id not in seen:
                deps = tuple(up.model_id for up in node.upstream.values())
                seen[node.model_id] = Task("train", node.model_id, f"{node.label} ({node.arch})", deps, node)
    return list(seen.values())


def attack_task(runner, node, attack: str, overrides: Mapping[str, str], budget: Budget, n_eval, seed,
                adaptive: Sequence[str] | None = None) -> tuple[Task, list[Task]]:
    """The attack's task and the train tasks of the surrogate it needs (transfer), ids only."""
    prepared = runner.prepare_attack(node, attack, overrides, budget, n_eval, seed)
    extra = train_tasks([prepared.surrogate]) if prepared.surrogate is not None else []
    deps = (node.model_id,) + ((prepared.surrogate.model_id,) if prepared.surrogate is not None else ())
    label = f"{attack} {budget} on {node.label}"
    return Task("attack", prepared.spec.record_id, label, deps, node, attack, dict(overrides), budget, n_eval, seed,
                tuple(adaptive) if adaptive else None), extra


def probe_task(runner, node, n_eval) -> Task:
    return Task("probe", runner.probe_id(node, n_eval), f"probes of {node.label}", (node.model_id,), node,
                n_eval=n_eval)


def first_round(plan: EvalPlan, runner, nodes, references=()) -> list[Task]:
    """Every task before the assessment: models (upstream first), the suite, the probes."""
    tasks = train_tasks(nodes)
    for node in nodes:
        for name, budget in plan.budgets():
            task, extra = attack_task(runner, node, name, plan.per_attack.get(name, {}), budget, plan.n_eval, plan.seed)
            tasks += extra + [task]
    tasks += [probe_task(runner, node, plan.n_eval) for node in [*nodes, *references]]
    return _unique(tasks)


def declared_round(plan: EvalPlan, runner, nodes) -> list[Task]:
    """The attacks each defense declares for its own models (Tramèr et al. 2020)."""
    from bench import adaptive
    from bench.registry import DEFENSES

    tasks: list[Task] = []
    if not plan.adaptive:
        return tasks
    for node in nodes:
        for name, config in DEFENSES.get(node.defense).obj().adaptive_attacks(node.config):
            for threat in plan.threats():
                if threat[0] in adaptive.attack_norms(name):
                    task, extra = attack_task(runner, node, name, dict(config),
                                              Budget(*threat), plan.n_eval, plan.seed, [f"declared by {node.defense}"])
                    tasks += extra + [task]
    return _unique(tasks)


def adaptive_round(plan: EvalPlan, runner, store, nodes) -> list[Task]:
    """After an assessment: the attacks each flagged model's fired rules call for, not yet run."""
    from bench import adaptive
    from bench.assess import assess
    from bench.records import ResultSet

    if not plan.adaptive:
        return []
    by_id = {node.model_id: node for node in nodes}
    tasks: list[Task] = []
    for model_id, m in sorted(assess(ResultSet.from_store(store, plan.dataset), set(by_id)).items()):
        if not m.diagnosis.suspected:
            continue
        for threat in plan.threats():
            t = m.threats.get(threat)
            if t is None:
                continue
            for p in adaptive.missing(m.diagnosis.fired, threat[0], t.records, m.has_teacher):
                task, extra = attack_task(runner, by_id[model_id], p.attack, dict(p.config),
                                          Budget(*threat), plan.n_eval, plan.seed, m.diagnosis.fired)
                tasks += extra + [task]
    return _unique(tasks)


def _unique(tasks: list[Task]) -> list[Task]:
    seen: dict[str, Task] = {}
    for task in tasks:
        seen.setdefault(task.id, task)
    return list(seen.values())


def references(store, nodes, epochs: int | None = None) -> list:
    """The trained R7 references of `nodes` that are not among them (probed with them)."""
    ids = {n.model_id for n in nodes}
    refs: dict[str, object] = {}
    for node in nodes:
        ref = reference_node(store, node, epochs)
        if ref is not None and ref.model_id not in ids:
            refs[ref.model_id] = ref
    return list(refs.values())


def plan_tasks(plan: EvalPlan | None, runner, nodes) -> list[Task]:
    """The first round: the models alone (`plan` None: `bench train`), or with the suite and probes."""
    if plan is None:
        return train_tasks(nodes)
    return first_round(plan, runner, nodes, references(runner.store, nodes, runner.epochs))


def execute(plan: EvalPlan | None, runner, nodes, tasks: Sequence[Task], executor):
    """Execute the first round, then the declared attacks and the adaptive rounds, each planned after
    an assessment. An executor other than the local one gets only the tasks not cached, and the
    index is refreshed from the files its workers wrote before each assessment."""
    local = executor.name == "local"

    def run(batch):
        return executor.run(batch if local else [t for t in batch if not t.cached(runner)])

    def sync():
        if not local:
            runner.store.refresh_index()

    report = run(tasks)
    if plan is not None and plan.adaptive and not report.failed:
        report.merge(run(declared_round(plan, runner, nodes)))
        for _ in range(2):  # a second round answers rules the first round's records made fire
            sync()
            batch = [t for t in adaptive_round(plan, runner, runner.store, nodes) if t.id not in report.failed]
            if not batch:
                break
            report.merge(run(batch))
    sync()
    return report
