"""The composers of `bench run`, `bench train` and `bench eval` (and of `distill_bench.run`): a
typed request → session → plan → execution with its adaptive rounds → board. The CLI verbs parse
their arguments into a request and call these; nothing here parses a user's text."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.compose.boards import store_board, write_board
from bench.compose.requests import EvalRequest, Evaluation, RunRequest, TrainRequest
from bench.compose.rounds import execute
from bench.compose.session import OpenSession
from bench.core.errors import BenchInputError
from bench.core.paths import check_leaderboard_path
from bench.execute.executors import Report
from bench.plan.budgets import budget_plan
from bench.plan.nodes import TrainNode, plan_model, stored_node
from bench.plan.overrides import sweep_variants
from bench.plan.tasks import EvalPlan, first_round
from bench.report.board import Board
from bench.report.markdown import board_markdown
from bench.report.plan_text import plan_text
from bench.store.records import check_id


@dataclass(frozen=True)
class RunResult:
    """What a run did: its models, the executor's report, the board (None for a dry run or
    `train`), the plan's text for a dry run, the leaderboard file written."""

    models: tuple[TrainNode, ...]
    report: Report | None
    board: Board | None
    summary: str
    plan: str | None = None  # the dry run's plan
    leaderboard: Path | None = None
    command: str = ""

    @property
    def model_ids(self) -> tuple[str, ...]:
        return tuple(node.model_id for node in self.models)

    @property
    def failed(self) -> bool:
        return self.report is not None and bool(self.report.failed or self.report.skipped)

    def markdown(self) -> str:
        return board_markdown(self.board, command=self.command or None) if self.board is not None else ""


def _quiet(msg: str) -> None:
    return None


def eval_plan(session: OpenSession, evaluation: Evaluation) -> EvalPlan:
    """The evaluation half of a request, its budgets validated before any work."""
    budgets = budget_plan(evaluation.attacks, evaluation.norms, evaluation.eps, session.family,
                          tuple(session.dataset.shape), attacks_named=evaluation.attacks_named)
    split = len(session.dataset.y_test)
    if evaluation.n_eval is not None and evaluation.n_eval > split:  # never clamped without a word
        raise BenchInputError(f"--n-eval {evaluation.n_eval:,} is larger than the test split of "
                              f"{session.request.dataset} ({split:,} examples); omit it to evaluate on all of them")
    return EvalPlan(session.request.dataset, budgets, evaluation.per_attack, evaluation.n_eval,
                    session.request.seed, evaluation.adaptive, evaluation.binarization)


def plan_nodes(session: OpenSession, defenses, per_defense, sweep: str | None) -> list[TrainNode]:
    s = session.request
    nodes = [plan_model(d, overrides, arch=session.arch, dataset=s.dataset, seed=s.seed, epochs=s.epochs)
             for d, overrides in sweep_variants(sweep, defenses, per_defense)]
    check_batch_sizes(nodes, math.prod(session.dataset.shape))
    return nodes


def check_batch_sizes(nodes, features: int, memory: int | None = None) -> None:
    """A batch whose inputs alone (float32) need more memory than this machine has is a typo that
    would fail only after the teachers trained: refused before any work, for every node of the DAG.
    (A batch larger than a small training split is fine: it is the whole split.)"""
    memory = physical_memory() if memory is None else memory
    for node in nodes:
        size = getattr(node.config, "batch_size", None)
        if isinstance(size, int) and memory and size * features * 4 > memory:
            raise BenchInputError(f"{node.defense}.batch_size={size:,}: its inputs alone need "
                                  f"{size * features * 4 / 2**30:,.0f} GiB, more than this machine's "
                                  f"{memory / 2**30:,.0f} GiB")
        check_batch_sizes(list(node.upstream.values()), features, memory)


def physical_memory() -> int | None:
    """Bytes of physical memory (POSIX), or None where unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def summary(runner, report: Report | None = None) -> str:
    if report is not None and report.executor != "local":  # remote workers ran them
        kinds = [t.kind for t, _ in report.done]
        return (f"executed {len(kinds)} node(s) on workers: trained {kinds.count('train')} model(s), "
                f"ran {kinds.count('attack')} attack(s), {kinds.count('probe')} probe(s)")
    return (f"trained {len(runner.trained)} model(s), reused {len(runner.reused_models)}; "
            f"ran {len(runner.attacked)} attack(s), reused {len(runner.reused_records)}")


def _execute(session: OpenSession, nodes, plan: EvalPlan | None):
    """(report, None) after executing, or (None, the plan's text) for a dry run."""
    tasks = first_round(plan, session.runner, nodes)
    if session.request.dry_run:
        return None, plan_text(tasks, session.runner, adaptive=plan is not None and plan.adaptive)
    return execute(plan, session.runner, nodes, tasks, session.executor()), None


def run(request: RunRequest, log: Callable[[str], None] | None = None) -> RunResult:
    """Train each defense (reusing cached models), run each attack at each budget (reusing cached
    records), the adaptive stage, and write the leaderboard (markdown, JSON, curves)."""
    log = log or _quiet
    out = check_leaderboard_path(request.leaderboard, request.session.store)
    session = OpenSession(request.session, log)
    nodes = plan_nodes(session, request.defenses, request.per_defense, request.sweep)
    plan = eval_plan(session, request.evaluation)  # budgets checked before any training
    report, text = _execute(session, nodes, plan)
    if report is None:
        return RunResult(tuple(nodes), None, None, "dry run: nothing executed", text)
    board = store_board(session.store, request.session.dataset, {node.model_id for node in nodes})
    write_board(board, out, log)
    return RunResult(tuple(nodes), report, board, summary(session.runner, report), None, out,
                     request.session.command)


def train(request: TrainRequest, log: Callable[[str], None] | None = None) -> RunResult:
    """Train each defense and its upstream models into the store."""
    log = log or _quiet
    session = OpenSession(request.session, log)
    nodes = plan_nodes(session, request.defenses, request.per_defense, request.sweep)
    report, text = _execute(session, nodes, None)
    if report is None:
        return RunResult(tuple(nodes), None, None, "dry run: nothing executed", text)
    return RunResult(tuple(nodes), report, None, summary(session.runner, report))


def evaluate(request: EvalRequest, log: Callable[[str], None] | None = None) -> RunResult:
    """Attack models already in the store, named by id or by the specs that trained them."""
    log = log or _quiet
    session = OpenSession(request.session, log, create_store=False)
    session.store.trusted_factories = frozenset(request.factories)
    dataset = request.session.dataset
    if request.model_ids:
        nodes = []
        for mid in request.model_ids:
            spec = session.store.model_spec(check_id(mid, "--model-id"))
            if spec["dataset"] != dataset:
                raise BenchInputError(f"model {mid} was trained on {spec['dataset']!r}; pass --dataset {spec['dataset']}")
            nodes.append(stored_node(session.store, mid))
    else:
        nodes = plan_nodes(session, request.defenses, request.per_defense, request.sweep)
        for node in nodes:
            if not session.store.has_model(node.model_id):
                problem = session.store.problems.get(f"model:{node.model_id}")
                if problem is not None:
                    raise problem
                raise BenchInputError(f"{node.label} ({node.arch}, {node.dataset}, seed {node.seed}) is not trained "
                                      f"in {request.session.store} (model {node.model_id}); run `bench train` first")
    report, text = _execute(session, nodes, eval_plan(session, request.evaluation))
    if report is None:
        return RunResult(tuple(nodes), None, None, "dry run: nothing executed", text)
    board = store_board(session.store, dataset, {node.model_id for node in nodes})
    return RunResult(tuple(nodes), report, board, summary(session.runner, report), None, None,
                     request.session.command)
