"""Attack-strength findings (issue 24, item 4), on fixed records: a white-box attack that a
black-box attack beats on the same examples is reported as weak on this model (W1), AutoAttack's
own warnings are findings (W2); neither changes the masking verdict; each prescribes stronger
attacks, the row is not ranked until they ran, and then it is."""
from __future__ import annotations

from bench.assess.assessment import assess
from bench.plan.tasks import adaptive_round
from bench.report.board import build_board
from recordkit import make_record, model_spec, result_set

N = 100
AT = model_spec("c000000000000001", "adversarial-training", {"epochs": 5})


def _n(k):
    return [True] * k + [False] * (N - k)


def _suite(pgd_margin=60, square=45, autoattack=44, notes=(), pgd=62):
    recs = [make_record(AT, "pgd", "linf", 0.3, _n(pgd)), make_record(AT, "pgd-margin", "linf", 0.3, _n(pgd_margin)),
            make_record(AT, "square", "linf", 0.3, _n(square))]
    rec, frame = make_record(AT, "autoattack", "linf", 0.3, _n(autoattack))
    rec["attack_notes"] = list(notes)
    return recs + [(rec, frame)]


def _assessment(recs):
    return assess(result_set(recs, [AT]))[AT["model_id"]]


def test_a_black_box_attack_beating_pgd_marks_pgd_weak_without_calling_it_masking():
    m = _assessment(_suite())
    w1 = next(f for f in m.diagnosis.strength if f.rule == "W1")
    assert w1.fired and "pgd-margin" in w1.evidence["linf 0.3"]
    assert "W1" not in m.diagnosis.fired  # not a masking rule: the verdict is unchanged
    reasons = m.rank_blockers(("linf", 0.3))
    assert any(r.startswith("an attack of the suite is weak on this model (W1") and "apgd (component=apgd-t)" in r
               for r in reasons)


def test_when_the_white_box_attacks_match_the_black_box_nothing_fires():
    m = _assessment(_suite(pgd_margin=45, square=46, autoattack=44, pgd=46))
    w1 = next(f for f in m.diagnosis.strength if f.rule == "W1")
    assert w1.evaluated and not w1.fired
    assert not m.rank_blockers(("linf", 0.3))


def test_autoattack_warnings_are_findings():
    note = ("Square Attack has decreased the robust accuracy of 3.00%. This might indicate that the robustness "
            "evaluation using AutoAttack is unreliable.")
    m = _assessment(_suite(pgd_margin=45, square=46, autoattack=44, notes=[note], pgd=46))
    w2 = next(f for f in m.diagnosis.strength if f.rule == "W2")
    assert w2.fired and w2.evidence["linf 0.3"] == ["Square beat AutoAttack's white-box components"]


def test_the_stronger_attacks_are_planned_and_once_they_ran_the_row_is_ranked():
    class Plan:
        adaptive, n_eval, seed = True, N, 0

        @staticmethod
        def threats():
            return [("linf", 0.3)]

    class Node:
        model_id = AT["model_id"]

    recs = _suite()
    m = _assessment(recs)
    # what the adaptive stage would run: the prescriptions of W1 at this budget (checked through remedies)
    from bench.assess import remedies

    todo = remedies.missing(m.weak_at(("linf", 0.3)), "linf", m.threats[("linf", 0.3)].records)
    assert {p.label for p in todo} == {"apgd (component=apgd-t)", "apgd (component=apgd-ce, restarts=5)",
                                       "pgd-margin (restarts=5)"}
    for p in todo:
        recs.append(make_record(AT, p.attack, "linf", 0.3, _n(43), attack_config=dict(p.config), adaptive=["W1"]))
    m = _assessment(recs)
    assert not m.rank_blockers(("linf", 0.3))
    board = build_board({m.model_id: m})
    row = board.pages[0].tables[0].ranked[0]
    assert abs(row.robust.value - 0.43) < 1e-9  # ranked at what the stronger attacks left
    assert adaptive_round  # the planner reads the same weak_at (bench/plan/tasks.py)


def test_a_plugin_declaring_role_ensemble_never_fills_the_autoattack_column():
    """A do-nothing third-party "ensemble" leaves the clean accuracy; it must not stand for AutoAttack."""
    recs = [make_record(AT, "pgd-margin", "linf", 0.3, _n(40)), make_record(AT, "square", "linf", 0.3, _n(41))]
    fake, frame = make_record(AT, "not-autoattack", "linf", 0.3, _n(N))
    fake["spec"]["attack"].update(library="pyautoattack", role="ensemble", loss="mixed")  # even claiming the library
    recs.append((fake, frame))
    m = _assessment(recs)
    t = m.threats[("linf", 0.3)]
    assert t.autoattack is None
    assert any("missing AutoAttack standard" in r for r in m.rank_blockers(("linf", 0.3)))


def test_autoattacks_own_square_counts_against_a_weak_white_box_attack():
    """No standalone Square: AutoAttack's record says its Square broke 16 examples PGD-margin left."""
    broken_by = [""] * 44 + ["square"] * 16 + ["apgd-ce"] * (N - 60)
    recs = [make_record(AT, "pgd-margin", "linf", 0.3, _n(60)),
            make_record(AT, "autoattack", "linf", 0.3, _n(44), columns={"adapter_broken_by": broken_by})]
    m = _assessment(recs)
    w1 = next(f for f in m.diagnosis.strength if f.rule == "W1")
    assert w1.fired and w1.evidence["linf 0.3"]["pgd-margin"]["paired"]["discordant"] == [16, 0]


def test_a_restarted_attack_that_alone_broke_examples_calls_for_more_restarts_then_the_row_is_ranked():
    """W7: W1's remedies ran PGD-margin with 5 restarts, and it alone broke 3 of 100 examples that
    every other record left robust: restarts still pay, so 10 restarts are prescribed; once they
    ran the row is ranked at what they left."""
    from bench.assess import remedies

    recs = _suite(pgd_margin=45, square=46, autoattack=44, pgd=46)
    recs.append(make_record(AT, "pgd-margin", "linf", 0.3, _n(41), attack_config={"restarts": 5}, adaptive=["W1"]))
    m = _assessment(recs)
    w7 = next(f for f in m.diagnosis.strength if f.rule == "W7")
    assert w7.fired and w7.evidence["linf 0.3"] == {"pgd-margin (5 restarts)": "the only record to break 3 of 100 examples"}
    assert "W7" not in m.diagnosis.fired  # attack strength, not masking
    todo = remedies.missing(m.weak_at(("linf", 0.3)), "linf", m.threats[("linf", 0.3)].records)
    assert {p.label for p in todo} == {"pgd-margin (restarts=10)", "apgd (component=apgd-ce, restarts=10)"}
    assert m.rank_blockers(("linf", 0.3))
    for p in todo:
        recs.append(make_record(AT, p.attack, "linf", 0.3, _n(40), attack_config=dict(p.config), adaptive=["W7"]))
    m = _assessment(recs)
    assert not m.rank_blockers(("linf", 0.3))
    row = build_board({m.model_id: m}).pages[0].tables[0].ranked[0]
    assert abs(row.robust.value - 0.40) < 1e-9


def test_restarts_that_found_nothing_new_call_for_no_more():
    recs = _suite(pgd_margin=45, square=46, autoattack=44, pgd=46)
    recs.append(make_record(AT, "pgd-margin", "linf", 0.3, _n(44), attack_config={"restarts": 5}, adaptive=["W1"]))
    w7 = next(f for f in _assessment(recs).diagnosis.strength if f.rule == "W7")
    assert w7.evaluated and not w7.fired
