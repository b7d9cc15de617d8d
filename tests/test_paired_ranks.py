"""Ranks from paired tests (issue 20, items 1–2), on fixed records (no training): every ranked row of
a table shares its examples; rows a Holm-corrected exact McNemar test separates never share a
letter, rows it cannot separate always do, and ties never chain."""
from __future__ import annotations

import itertools

import pytest

from bench.assess.assessment import assess
from bench.assess.stats import holm, letter_groups, mcnemar_exact
from bench.report.board import build_board
from bench.report.markdown import board_markdown
from recordkit import make_record, model_spec, result_set

SUITE = ("autoattack", "pgd", "pgd-margin", "square")
N = 200


def _rows(survivors: dict[str, int], n: int = N, sizes: dict[str, int] | None = None):
    specs, recs = [], []
    for k, (name, robust) in enumerate(survivors.items()):
        spec = model_spec(f"b{k:015d}", "adversarial-training", {"epochs": 5, "pgd_steps": k + 1})
        specs.append(spec)
        size = (sizes or {}).get(name, n)
        for attack in SUITE:
            recs.append(make_record(spec, attack, "linf", 0.3, [True] * robust + [False] * (size - robust)))
    board = build_board(assess(result_set(recs, specs)))
    table = next(p for p in board.pages if p.norm == "linf").tables[0]
    by_steps = {r.changes.get("pgd_steps"): r for r in table.rows}
    return table, {name: by_steps[str(k + 1)] for k, name in enumerate(survivors)}


def test_rows_the_test_separates_never_share_a_letter_and_rows_it_cannot_always_do():
    # A vs B: 10 discordant of 200 (p ≈ 0.002); B vs C: 6 (p ≈ 0.03); A vs C: 16 (p < 1e-4)
    table, rows = _rows({"A": 120, "B": 110, "C": 104, "D": 102})
    ranked = table.ranked
    assert [r.rank for r in ranked] == [1, 2, 3, 4]
    pairs = list(itertools.combinations(ranked, 2))
    tests = [mcnemar_exact(a.survived[0].tolist(), b.survived[0].tolist()) for a, b in pairs]
    separated = holm([p for *_, p in tests])
    for (a, b), sep in zip(pairs, separated):
        share = bool(set(a.group) & set(b.group))
        assert share != sep, (a.group, b.group, sep)
    assert rows["A"].group == "a" and not set(rows["A"].group) & set(rows["C"].group)


def test_ties_do_not_chain():
    """B cannot be told from A nor from C, but A and C are separated: A and C share no letter."""
    table, rows = _rows({"A": 130, "B": 125, "C": 120})  # 5 discordant: p 0.06; 10: p 0.002
    a, b, c = rows["A"], rows["B"], rows["C"]
    assert set(a.group) & set(b.group) and set(b.group) & set(c.group)
    assert not set(a.group) & set(c.group)
    text = board_markdown(build_board_for(table))
    assert "share a letter cannot be told apart" in text


def build_board_for(table):
    from bench.report.board import Board, Page

    return Board([Page(table.dataset, table.norm, [table], {})], {}, {})


def test_a_large_gap_separates_and_a_tiny_one_does_not():
    _, rows = _rows({"A": 150, "B": 20})
    assert rows["A"].group != rows["B"].group and not rows["B"].tied_with_above
    _, rows = _rows({"A": 100, "B": 98})
    assert rows["A"].group == rows["B"].group == "a" and rows["B"].tied_with_above


def test_a_row_evaluated_on_fewer_examples_is_not_ranked():
    table, rows = _rows({"A": 120, "B": 60}, sizes={"B": 100})
    assert [r.label for r in table.ranked] == [rows["A"].label]
    assert any(reason.startswith("evaluated on 100 of the table's 200 examples") for reason in rows["B"].reasons)


def test_letter_groups_known_case_and_holm():
    assert letter_groups(["A", "B", "C", "D"], {frozenset("AC"), frozenset("AD"), frozenset("BD")}) == \
        {"A": "a", "B": "ab", "C": "bc", "D": "c"}
    assert holm([0.01, 0.04, 0.03]) == [True, False, False]  # 0.01 ≤ .05/3; 0.03 > .05/2 stops
    assert holm([0.01, 0.02, 0.04]) == [True, True, True]
    only_a, only_b, p = mcnemar_exact([1] * 10 + [0] * 10, [0] * 10 + [0] * 10)
    assert (only_a, only_b) == (10, 0) and p == pytest.approx(2 * 0.5 ** 10)
