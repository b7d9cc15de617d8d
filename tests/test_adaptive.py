"""The adaptive stage: a flagged model is unranked until the attacks its symptoms call for have run,
then ranked at what survives them, with the worst case before and after adaptation."""
from __future__ import annotations

import json

from bench.assess import remedies as adaptive
from bench.assess.assessment import assess
from bench.report.board import build_board
from bench.cli import main
from recordkit import make_record, model_spec, probes, result_set

N = 30
DD = model_spec("c000000000000001", "defensive-distillation", {"epochs": 5})
SUITE = {"autoattack": 3, "pgd": 27, "pgd-margin": 4, "square": 5}


def _n(k):
    return [True] * k + [False] * (N - k)


def _records(adapted: bool):
    recs = [make_record(DD, a, "linf", 0.3, _n(k)) for a, k in SUITE.items()]
    if adapted:
        for p in adaptive.prescriptions(["R6", "R8"], "linf"):
            recs.append(make_record(DD, p.attack, "linf", 0.3, _n(1), attack_config=dict(p.config),
                                    adaptive=["R6", "R8"]))
    return recs


def _row(adapted: bool):
    rs = result_set(_records(adapted), [DD], [probes(DD["model_id"], n=N, zero=0.9, saturated=1.0)])
    m = assess(rs)[DD["model_id"]]
    return m, build_board({DD["model_id"]: m}).pages[0].tables[0].rows[0]


def test_each_symptom_prescribes_its_attacks_per_norm():
    names = [p.label for p in adaptive.prescriptions(["R6"], "linf")]
    assert names == ["apgd (component=apgd-t)", "pgd-margin (restarts=5)", "pgd-margin (loss=scaled-ce)"]
    assert [p.label for p in adaptive.prescriptions(["R6"], "l0")] == ["jsma (use_logits=True)"]
    assert adaptive.unanswered(["R9"], "l0") == ["R9"] and adaptive.unanswered(["R6"], "l0") == []
    assert [p.attack for p in adaptive.prescriptions(["R2"], "l2")] == ["square", "transfer"]


def test_flagged_model_is_unranked_until_adapted_then_ranked_at_what_survives():
    m, row = _row(adapted=False)
    assert m.diagnosis.suspected and not row.ranked and "adaptive attacks not run" in row.reasons[0]
    m, row = _row(adapted=True)
    assert m.diagnosis.suspected and row.ranked and row.adapted and row.rank == 1
    assert row.robust_before.value == 3 / N and row.robust.value == 1 / N  # adaptive attacks made the difference
    assert row.claimed.value == 27 / N and "apgd" in row.adaptive_attacks


def test_bench_run_escalates_a_flagged_model_and_ranks_it_after_adaptation(tmp_path):
    """End to end on digits: defensive distillation is flagged by the suite, the same run adds the
    adaptive attacks, and the board ranks it at the worst case after them."""
    out = tmp_path / "runs"
    assert main(["run", "--defense", "defensive-distillation", "--attacks", "pgd,pgd-margin,autoattack,square",
                 "--norm", "linf", "--out", str(out), "--dataset", "digits", "--epochs", "30", "--n-eval", "30",
                 "--set", "square.n_queries=300", "--quiet"]) == 0
    rows = json.loads((out / "leaderboard.json").read_text())["pages"][0]["tables"][0]["rows"]
    dd = rows[0]
    assert dd["rules_fired"] and dd["adapted"] and dd["rank"] == 1
    assert set(dd["adaptive_attacks"]) >= {"apgd"}
    assert dd["robust"]["value"] <= dd["robust_before_adaptation"]["value"] < dd["claimed"]["value"]
    adaptive_records = [json.loads(p.read_text()) for p in (out / "records").glob("*/record.json")]
    assert sum(1 for r in adaptive_records if r.get("adaptive")) >= 3


def test_transfer_from_the_teacher_at_its_temperature(tmp_path):
    """For a distilled model the adaptive stage can craft on its own teacher, at the teacher's T."""
    out = tmp_path / "runs"
    assert main(["run", "--defense", "defensive-distillation", "--attacks", "transfer", "--set",
                 "transfer.source=teacher", "--norm", "linf", "--out", str(out), "--dataset", "digits", "--epochs",
                 "30", "--n-eval", "30", "--quiet", "--no-adaptive"]) == 0
    record = json.loads(next((out / "records").glob("*/record.json")).read_text())
    spec = json.loads((out / "models" / record["model_id"] / "spec.json").read_text())
    cfg = record["spec"]["attack"]["config"]
    assert cfg["surrogate_model_id"] == spec["upstream"]["teacher"] and cfg["surrogate_temperature"] == 100.0
    assert record["metrics"]["success_rate"] > 0.5  # the tempered teacher's gradients transfer
    # a stored model attacked by id finds its stored teacher too
    assert main(["eval", "--model-id", record["model_id"], "--attacks", "transfer", "--set", "transfer.source=teacher",
                 "--set", "transfer.steps=10", "--norm", "linf", "--out", str(out), "--dataset", "digits",
                 "--n-eval", "30", "--quiet", "--no-adaptive"]) == 0
    configs = [json.loads(p.read_text())["spec"]["attack"]["config"] for p in (out / "records").glob("*/record.json")]
    assert [c["surrogate_model_id"] for c in configs if c["steps"] == 10] == [spec["upstream"]["teacher"]]
