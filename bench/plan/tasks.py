"""The plan of a run: what it evaluates (`EvalPlan`) and the DAG of typed tasks that make it.

`EvalPlan` is the evaluation half of a request (bench/compose/requests.py), its budgets resolved
and validated once. It becomes tasks, each with the content id of the artifact it makes and the
ids it needs first: `TrainTask` (a model), `AttackTask` (a record; its attack resolved once, here),
`ProbeTask` (a model's probes). An executor (bench/execute/executors.py) runs them through a
`Runner` (bench/execute/runner.py). After an assessment, `adaptive_round` plans the attacks each
fired rule prescribes (bench/assess/remedies.py); bench/compose/rounds.py runs the rounds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Mapping, Sequence, Union

from bench.assess import remedies
from bench.assess.assessment import ModelAssessment
from bench.core.errors import BenchInputError
from bench.assess.suite import MINIMUM_SUITE
from bench.core.specs import Budget, binarization_id_of, probe_id_of
from bench.plan.attacks import PreparedAttack, plan_attack
from bench.plan.nodes import TrainNode, plan_model
from bench.plugins.datasets import dataset_info
from bench.plugins.undefended import undefended_arch
from bench.plugins.registry import ATTACKS, DEFENSES
from bench.store.records import AttackInfo


@dataclass(frozen=True)
class EvalPlan:
    """What to evaluate: attacks at budgets on the first `n_eval` test examples (None: all)."""

    dataset: str
    budgets: tuple[tuple[str, Budget], ...]  # (attack, budget) pairs, validated (bench/plan/budgets.py)
    per_attack: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # --set overrides
    n_eval: int | None = None
    seed: int = 0
    adaptive: bool = True
    binarization: int = 0  # examples per binarization test of each suite attack (0: none; docs/masking.md)

    @property
    def attacks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for name, _ in self.budgets))

    def threats(self) -> list[tuple[str, float]]:
        return sorted({(b.norm, b.eps) for _, b in self.budgets})


# --- the tasks -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainTask:
    kind: ClassVar[str] = "train"
    node: TrainNode

    @property
    def id(self) -> str:
        return self.node.model_id

    @property
    def label(self) -> str:
        return f"{self.node.label} ({self.node.arch})"

    @property
    def deps(self) -> tuple[str, ...]:
        return tuple(up.model_id for up in self.node.upstream.values())

    def run(self, runner) -> None:
        runner.model(self.node)

    def cached(self, runner) -> bool:
        """Is its artifact in the store already (and not forced)?"""
        return self.node.stored_id is not None or (runner.store.has_model(self.id) and not runner.would_force(
            self.id, self.node.defense))


@dataclass(frozen=True)
class AttackTask:
    kind: ClassVar[str] = "attack"
    node: TrainNode
    attack: PreparedAttack
    n_eval: int | None
    adaptive: tuple[str, ...] | None = None  # the fired rules (or declaration) this attack answers

    @property
    def id(self) -> str:
        return self.attack.record_id

    @property
    def label(self) -> str:
        return f"{self.attack.name} {self.attack.spec.budget} on {self.node.label}"

    @property
    def deps(self) -> tuple[str, ...]:
        surrogate = self.attack.surrogate
        return (self.node.model_id,) + ((surrogate.model_id,) if surrogate is not None else ())

    def run(self, runner) -> None:
        runner.record(self.node, self.attack, self.n_eval, adaptive=list(self.adaptive) if self.adaptive else None)

    def cached(self, runner) -> bool:
        return runner.store.has_record(self.id) and not runner.would_force(self.id, self.attack.name, self.node.defense)


@dataclass(frozen=True)
class ProbeTask:
    kind: ClassVar[str] = "probe"
    node: TrainNode
    n_eval: int | None
    probe_id: str

    @property
    def id(self) -> str:
        return self.probe_id

    @property
    def label(self) -> str:
        return f"probes of {self.node.label}"

    @property
    def deps(self) -> tuple[str, ...]:
        return (self.node.model_id,)

    def run(self, runner) -> None:
        runner.probes(self.node, self.n_eval)

    def cached(self, runner) -> bool:
        return runner.store.load_probes(self.id) is not None


@dataclass(frozen=True)
class BinarizationTask:
    kind: ClassVar[str] = "binarize"
    node: TrainNode
    attack: PreparedAttack
    n_eval: int | None
    samples: int

    @property
    def id(self) -> str:
        return binarization_id_of(self.attack.record_id, self.samples)

    @property
    def label(self) -> str:
        return f"binarization test of {self.attack.name} {self.attack.spec.budget} on {self.node.label}"

    @property
    def deps(self) -> tuple[str, ...]:
        return (self.node.model_id,)

    def run(self, runner) -> None:
        runner.binarization(self.node, self.attack, self.n_eval, self.samples)

    def cached(self, runner) -> bool:
        return runner.store.load_binarization(self.id) is not None


Task = Union[TrainTask, AttackTask, ProbeTask, BinarizationTask]


def binarization_tasks(tasks: list[Task], samples: int) -> list[BinarizationTask]:
    """A binarization test for each attack task whose attack takes part in its threat model's minimum
    suite (bench/assess/suite.py) at L∞ or L2, where the test is defined; transfer attacks craft on
    another model and cannot see the binarized head, so they are not tested."""
    out = []
    for task in tasks:
        if not isinstance(task, AttackTask) or task.attack.spec.budget.norm not in ("linf", "l2"):
            continue
        cls = ATTACKS.get(task.attack.name).obj
        if cls.role in ("transfer", "certificate"):
            continue
        info = AttackInfo(task.attack.name, dict(task.attack.recorded_config), cls.library, "", cls.minimal_norm,
                          cls.role, cls.loss_for(dict(task.attack.recorded_config)), cls.single_step)
        if any(req.matches(info) for req in MINIMUM_SUITE.get(task.attack.spec.budget.norm, ())):
            out.append(BinarizationTask(task.node, task.attack, task.n_eval, samples))
    return out


def train_tasks(nodes) -> list[TrainTask]:
    """A task per model of the DAG under `nodes` (upstream first, each once)."""
    seen: dict[str, TrainTask] = {}
    for root in nodes:
        for node in root.walk():
            seen.setdefault(node.model_id, TrainTask(node))
    return list(seen.values())


def attack_task(runner, node: TrainNode, attack: str, overrides: Mapping[str, str], budget: Budget,
                n_eval: int | None, seed: int, adaptive: Sequence[str] | None = None) -> list[Task]:
    """The attack's task, after the train tasks of the surrogate it needs (transfer); ids only."""
    prepared = plan_attack(node, attack, overrides, budget, dataset=runner.dataset.name,
                           n=len(runner.dataset.eval_slice(n_eval)[1]), seed=seed,
                           batch_size=runner.attack_batch_size, epochs=runner.epochs)
    extra: list[Task] = list(train_tasks([prepared.surrogate])) if prepared.surrogate is not None else []
    return extra + [AttackTask(node, prepared, n_eval, tuple(adaptive) if adaptive else None)]


def probe_task(runner, node: TrainNode, n_eval: int | None) -> ProbeTask:
    n = len(runner.dataset.eval_slice(n_eval)[1])
    return ProbeTask(node, n_eval, probe_id_of(node.model_id, runner.dataset.name, n))


def _unique(tasks: list[Task]) -> list[Task]:
    seen: dict[str, Task] = {}
    for task in tasks:
        seen.setdefault(task.id, task)
    return list(seen.values())


# --- the rounds ----------------------------------------------------------------------------------
def reference_node(store, node: TrainNode, epochs: int | None = None) -> TrainNode | None:
    """The vanilla model trained like `node` (dataset, base architecture, seed, training length),
    when it is already trained: the reference of rule R7, probed with the run's models. Never
    trained just for that. (The assessment finds the same model among the store's by its spec:
    bench/assess/reference.py find_reference.)"""
    try:
        arch = undefended_arch(node.arch, dataset_info(node.dataset).default_arch)
    except BenchInputError:  # an external model of no registered architecture
        return None
    epochs = epochs if epochs is not None else getattr(node.config, "epochs", None)
    ref = plan_model("vanilla", {}, arch=arch, dataset=node.dataset, seed=node.seed, epochs=epochs)
    if ref.model_id == node.model_id or not store.has_model(ref.model_id):
        return None
    return ref


def references(store, nodes, epochs: int | None = None) -> list[TrainNode]:
    """The trained R7 references of `nodes` that are not among them."""
    ids = {n.model_id for n in nodes}
    refs: dict[str, TrainNode] = {}
    for node in nodes:
        ref = reference_node(store, node, epochs)
        if ref is not None and ref.model_id not in ids:
            refs[ref.model_id] = ref
    return list(refs.values())


def first_round(plan: EvalPlan | None, runner, nodes) -> list[Task]:
    """Every task before the assessment: models (upstream first), the suite, the probes of the
    models and of their R7 references. `plan` None: the models alone (`bench train`)."""
    tasks: list[Task] = list(train_tasks(nodes))
    if plan is None:
        return tasks
    for node in nodes:
        for name, budget in plan.budgets:
            tasks += attack_task(runner, node, name, plan.per_attack.get(name, {}), budget, plan.n_eval, plan.seed)
    refs = references(runner.store, nodes, runner.epochs)
    tasks += [probe_task(runner, node, plan.n_eval) for node in [*nodes, *refs]]
    if plan.binarization:
        tasks += binarization_tasks(tasks, plan.binarization)
    return _unique(tasks)


def declared_round(plan: EvalPlan, runner, nodes) -> list[Task]:
    """The attacks each defense declares for its own models (Tramèr et al. 2020)."""
    tasks: list[Task] = []
    if not plan.adaptive:
        return tasks
    for node in nodes:
        for name, config in DEFENSES.get(node.defense).obj().adaptive_attacks(node.config):
            for threat in plan.threats():
                if threat[0] in remedies.attack_norms(name):
                    tasks += attack_task(runner, node, name, dict(config), Budget(*threat), plan.n_eval, plan.seed,
                                         [f"declared by {node.defense}"])
    return _unique(tasks + _binarized(plan, tasks))


def _binarized(plan: EvalPlan, tasks: list[Task]) -> list[Task]:
    """With `--binarization N`, the test of each suite-role attack a later round adds, as of the
    first round's: a declared or adaptive attack counts toward the minimum suite only if it passes."""
    return list(binarization_tasks(tasks, plan.binarization)) if plan.binarization else []


def adaptive_round(plan: EvalPlan, runner, assessments: Mapping[str, ModelAssessment], nodes) -> list[Task]:
    """After an assessment: the attacks each flagged model's fired rules call for, not yet run."""
    if not plan.adaptive:
        return []
    by_id = {node.model_id: node for node in nodes}
    tasks: list[Task] = []
    for model_id, m in sorted(assessments.items()):
        if model_id not in by_id:
            continue
        for threat in plan.threats():
            t = m.threats.get(threat)
            if t is None:
                continue
            # masking rules (the model's verdict) and attack-strength findings at this budget
            calls = m.fired_at(threat) + m.weak_at(threat)
            for p in remedies.missing(calls, threat[0], t.records, m.has_teacher):
                tasks += attack_task(runner, by_id[model_id], p.attack, dict(p.config), Budget(*threat),
                                     plan.n_eval, plan.seed, calls)
    return _unique(tasks + _binarized(plan, tasks))
