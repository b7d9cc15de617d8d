"""Audit any model: a checkpoint, a factory, an `nn.Module` in memory, a model-zoo entry.

The model enters the store as a model of the `external` defense (defenses/external.py), keyed by
the hash of its weights and of its class's code, and is evaluated exactly as `bench run` evaluates
a trained defense: the same suite, probes, masking rules and adaptive stage (bench/plan/, bench/compose/rounds.py), the
same per-example worst case and ranking (bench/assess/, bench/report/board.py).

Loading and the checks of what the harness expects of a model: bench/plugins/loading.py.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from bench.assess.assessment import ModelAssessment, assess
from bench.compose.requests import AuditRequest
from bench.compose.rounds import execute
from bench.compose.run import eval_plan
from bench.compose.session import OpenSession
from bench.core.errors import AttackContractError
from bench.core.specs import ModelSpec
from bench.plan.nodes import TrainNode
from bench.plan.tasks import first_round
from bench.plugins.loading import check_model, weights_digest
from bench.plugins.registry import DEFENSES, code_fingerprint
from bench.report.board import Board, build_board
from bench.report.markdown import board_markdown
from bench.report.serialize import board_json_text
from bench.store.records import ResultSet


@dataclass(frozen=True)
class AuditResult:
    """The assessment of one audited model, and views of it."""

    model_id: str
    label: str
    assessment: ModelAssessment
    board: Board  # this model's rows only

    def markdown(self) -> str:
        return board_markdown(self.board, heading=f"distill-bench audit: {self.label}")

    def json(self) -> str:
        return board_json_text(self.board)

    @property
    def robust_accuracy(self) -> dict[tuple[str, float], float]:
        """(norm, eps) → the per-example worst case over every attack the store holds."""
        return {threat: t.worst.value for threat, t in sorted(self.assessment.threats.items())}

    @property
    def masking_suspected(self) -> bool:
        return self.assessment.diagnosis.suspected

    @property
    def fired_rules(self) -> list[str]:
        return list(self.assessment.diagnosis.fired)


def audit(model: nn.Module, request: AuditRequest, log: Callable[[str], None] | None = None) -> AuditResult:
    """Evaluate `model` as `bench run` evaluates a trained defense; it becomes a row marked external.
    An audit is whole or refused: a failed attack raises AttackContractError."""
    log = log or (lambda msg: None)
    s = request.session
    external = DEFENSES.get("external").obj
    checked = {}

    def check(dataset, device):  # before the store is opened: a refused model writes nothing
        checked["model"] = model.to(device)
        check_model(checked["model"], dataset, device)

    session = OpenSession(s, log, check=check)
    plan = eval_plan(session, request.evaluation)
    live = checked["model"]
    config = external.Config(source=request.source, origin=request.origin or type(live).__qualname__,
                             weights_sha256=weights_digest(live), name=request.name or "")
    spec = ModelSpec("external", asdict(config), request.arch, s.dataset, 0, {},
                     {"model": code_fingerprint(type(live), type(live).__module__.split(".")[0]),
                      "libraries": {"torch": torch.__version__.split("+")[0]}})
    store, mid = session.store, spec.model_id
    if not store.has_model(mid):
        store.save_model(live, {**spec.to_json(), "label": external().label(config),
                                "provenance": {"command": s.command, "source": request.source,
                                               "origin": config.origin, **dict(request.provenance)}})
    session.runner.adopt(mid, live)
    node = TrainNode("external", config, request.arch, s.dataset, 0, {}, stored_id=mid)
    report = execute(plan, session.runner, [node], first_round(plan, session.runner, [node]), session.executor(retries=0))
    if report.failed:
        raise AttackContractError("; ".join(report.summary_lines()))
    assessment = assess(ResultSet.from_store(store, s.dataset), {mid})[mid]
    commands = {(s.dataset, norm): [s.command] for norm in {t[0] for t in assessment.threats}} if s.command else None
    return AuditResult(mid, node.label, assessment, build_board({mid: assessment}, commands))
