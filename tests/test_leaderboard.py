"""The leaderboard cannot mislead: built from fixed records (no training), it ranks only fully
evaluated, above-chance, unflagged rows; a weaker re-run never raises a worst case; every accuracy
has an interval; pages never contradict themselves; the JSON validates against its schema; the
rendering is golden (set DISTILL_BENCH_UPDATE_GOLDEN=1 to rewrite the golden files after a
deliberate change, then read the diff)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import pytest

from bench.assess.assessment import assess
from bench.report.board import build_board
from bench.cli import main
from bench.report.publish import MARKER, build_pages
from bench.report.serialize import board_csv, board_json, board_json_text
from bench.report.markdown import board_markdown
from bench.store.artifacts import Store
from recordkit import make_record, model_spec, probes, result_set, write_store

GOLDEN = Path(__file__).parent / "golden"
DOCS = Path(__file__).parent.parent / "docs"
N = 20
L = 10  # linf budget below


def _n(k: int, n: int = N) -> list[bool]:
    """k robust examples out of n, the first k."""
    return [True] * k + [False] * (n - k)


VANILLA = model_spec("a000000000000001", "vanilla", {"epochs": 5})
AT0 = model_spec("a000000000000002", "adversarial-training", {"epochs": 5, "pgd_steps": 10}, seed=0)
AT1 = model_spec("a000000000000003", "adversarial-training", {"epochs": 5, "pgd_steps": 10}, seed=1)
DISTILLED = model_spec("a000000000000004", "defensive-distillation", {"epochs": 5})
CONSTANT = model_spec("a000000000000005", "vanilla", {"epochs": 1})
HALF = model_spec("a000000000000006", "trades", {"epochs": 5})
SPECS = [VANILLA, AT0, AT1, DISTILLED, CONSTANT, HALF]
SUITE = ("autoattack", "pgd", "pgd-margin", "square")


def _records():
    recs = []
    outcome = {
        VANILLA["model_id"]: dict(autoattack=0, pgd=0, **{"pgd-margin": 0}, square=0),
        AT0["model_id"]: dict(autoattack=10, pgd=13, **{"pgd-margin": 11}, square=12),
        AT1["model_id"]: dict(autoattack=9, pgd=12, **{"pgd-margin": 10}, square=12),
        DISTILLED["model_id"]: dict(autoattack=0, pgd=17, **{"pgd-margin": 1}, square=1),
    }
    clean = {AT0["model_id"]: _n(18), AT1["model_id"]: _n(19)}
    for spec in (VANILLA, AT0, AT1, DISTILLED):
        for attack in SUITE:
            recs.append(make_record(spec, attack, "linf", 0.3, _n(outcome[spec["model_id"]][attack]),
                                    clean=clean.get(spec["model_id"])))
    # a constant predictor: always says 0; labels are i % 10, so 2 of 20 are "correct"
    const_clean = [i % 10 == 0 for i in range(N)]
    for attack in SUITE:
        recs.append(make_record(CONSTANT, attack, "linf", 0.3, const_clean, clean=const_clean))
    recs.append(make_record(HALF, "pgd", "linf", 0.3, _n(14)))  # half-evaluated: PGD on CE only
    recs.append(make_record(DISTILLED, "jsma", "l0", 0.145, _n(19)))  # L0: softmax JSMA only
    return recs


PROBES = [probes(VANILLA["model_id"], n=N, logit_l1=50.0),
          probes(DISTILLED["model_id"], n=N, zero=0.85, saturated=0.95, logit_l1=5000.0)]


@pytest.fixture(scope="module")
def fixed_store(tmp_path_factory) -> Path:
    return write_store(tmp_path_factory.mktemp("fixed"), _records(), SPECS, PROBES)


@pytest.fixture(scope="module")
def board(fixed_store):
    from bench.store.records import ResultSet

    return build_board(assess(ResultSet.from_store(Store(fixed_store))))


def _linf(board):
    page = next(p for p in board.pages if p.norm == "linf")
    return page.tables[0]


def test_only_fully_evaluated_above_chance_unflagged_rows_are_ranked(board):
    table = _linf(board)
    ranked = {r.label: r for r in table.ranked}
    unranked = {r.label: r for r in table.unranked}
    # epochs=5 is not shared by every row (the constant predictor trained 1 epoch): it stays in the labels
    assert set(ranked) == {"adversarial-training (epochs=5, pgd_steps=10)", "vanilla (epochs=5)"}
    assert [r.rank for r in table.ranked] == [1, 2]
    assert unranked["defensive-distillation (epochs=5)"].reasons[0].startswith(
        "masking suspected (R6, R7), not resolved: adaptive attacks not run: apgd (component=apgd-t)")
    assert any("not above chance" in reason for reason in unranked["vanilla (epochs=1)"].reasons)
    half = unranked["trades (epochs=5)"]
    assert any(reason.startswith("missing AutoAttack standard") for reason in half.reasons)
    assert "(pgd-margin)" in half.reasons[0] and "square" in half.reasons[0]


def test_defensive_distillation_is_not_ranked_on_its_claimed_number(board):
    dd = next(r for r in _linf(board).rows if r.defense == "defensive-distillation")
    assert not dd.ranked and dd.claimed.value == pytest.approx(17 / 20) and dd.robust.value == 0.0


def test_l0_rows_are_never_ranked_without_a_logit_and_a_gradient_free_attack(board):
    l0 = next(p for p in board.pages if p.norm == "l0").tables[0]
    assert not l0.ranked and "gradient-free L0 attack (sparse-rs)" in l0.unranked[0].reasons[0]


def test_seeds_of_one_configuration_make_one_row_with_mean_spread_and_pooled_interval(board):
    at = next(r for r in _linf(board).rows if r.defense == "adversarial-training")
    assert at.seeds == [0, 1] and len(at.model_ids) == 2
    assert at.robust.value == pytest.approx((10 / 20 + 9 / 20) / 2)  # worst case per seed: AutoAttack's
    assert at.robust.n == 2 * N and at.robust.spread > 0 and at.robust.low < at.robust.value < at.robust.high


def test_a_model_retrained_by_edited_code_is_another_row_never_a_second_seed():
    """A store that outlives an edit to a defense (the committed `leaderboard/store/`) holds both
    models of one configuration and seed: the board must not fold them as two seeds."""
    old = model_spec("c100000000000001", "adversarial-training", {"epochs": 5}) | {"code": {"defense": "v1"}}
    new = model_spec("c200000000000002", "adversarial-training", {"epochs": 5}) | {"code": {"defense": "v2"}}
    again = model_spec("c300000000000003", "adversarial-training", {"epochs": 5}, seed=1) | {"code": {"defense": "v2"}}
    recs = [make_record(spec, attack, "linf", 0.3, _n(k)) for spec, k in ((old, 4), (new, 12), (again, 10))
            for attack in SUITE]
    rows = _linf(build_board(assess(result_set(recs, [old, new, again])))).rows
    assert sorted(r.seeds for r in rows) == [[0], [0, 1]]
    assert sorted(r.model_ids for r in rows) == [["c100000000000001"], ["c200000000000002", "c300000000000003"]]
    assert len({r.label for r in rows}) == 2  # told apart by their ids


def test_labels_are_unique_and_show_changed_fields(board):
    labels = [r.label for r in _linf(board).rows]
    assert len(labels) == len(set(labels)) and "vanilla (epochs=1)" in labels and "vanilla (epochs=5)" in labels


def test_weaker_rerun_never_raises_the_worst_case():
    spec = model_spec("b000000000000001", "vanilla")
    strong = make_record(spec, "pgd-margin", "linf", 0.3, _n(0), attack_config={"steps": 40})
    weak = make_record(spec, "pgd-margin", "linf", 0.3, _n(13), attack_config={"steps": 1})
    extra = make_record(spec, "pgd", "linf", 0.3, _n(15))
    for records in ([strong, extra], [strong, weak, extra], [weak, strong, extra]):
        t = assess(result_set(records, [spec]))[spec["model_id"]].threats[("linf", 0.3)]
        assert t.worst.value == 0.0 and t.attacks["pgd-margin"].accuracy.value == 0.0
        assert len(t.attacks["pgd-margin"].records) == len(records) - 1


def test_overlapping_slices_merge_per_example_into_one_row():
    spec = model_spec("b000000000000002", "vanilla")
    short = make_record(spec, "pgd", "linf", 0.3, _n(5, 10))  # first 10 examples: 5 robust
    long = make_record(spec, "pgd", "linf", 0.3, [True] * 30, attack_config={"restarts": 2})
    t = assess(result_set([short, long], [spec]))[spec["model_id"]].threats[("linf", 0.3)]
    assert t.worst.n == 30 and t.worst.correct == 25  # the short slice's 5 breaks count in the long one


def test_a_constant_predictor_is_never_ranked_whatever_its_robustness():
    spec = model_spec("b000000000000003", "vanilla")
    labels = [i % 2 for i in range(400)]  # two balanced classes; the model always says 0
    clean = [lab == 0 for lab in labels]
    records = [make_record(spec, a, "linf", 0.3, clean, clean=clean, labels=labels) for a in SUITE]
    m = assess(result_set(records, [spec]))[spec["model_id"]]
    t = m.threats[("linf", 0.3)]
    assert t.worst.value == 0.5 and t.at_chance  # 50% robust "accuracy", and at chance
    row = build_board({spec["model_id"]: m}).pages[0].tables[0]
    assert not row.ranked and "not above chance" in row.unranked[0].reasons[0]


def test_reference_for_logit_size_is_chosen_by_spec_not_label():
    student = model_spec("b000000000000004", "defensive-distillation", {"epochs": 5}, seed=3)
    wrong_seed = model_spec("b000000000000005", "vanilla", {"epochs": 5}, seed=0)
    wrong_epochs = model_spec("b000000000000006", "vanilla", {"epochs": 9}, seed=3)
    hot = model_spec("b000000000000007", "vanilla", {"epochs": 5, "temperature": 100.0}, seed=3)
    right = model_spec("b000000000000008", "vanilla", {"epochs": 5}, seed=3)
    records = [make_record(student, "pgd", "linf", 0.3, _n(10))]
    m = assess(result_set(records, [student, wrong_seed, wrong_epochs, hot, right]))[student["model_id"]]
    assert m.reference.model_id == right["model_id"]


def test_every_accuracy_has_an_interval_and_the_ranked_table_has_at_most_eight_columns(fixed_store):
    text = board_markdown(build_board(assess(__import__("bench.store.records", fromlist=["ResultSet"])
                                             .ResultSet.from_store(Store(fixed_store)))))
    tables = re.findall(r"(\| rank \|.*?)\n\n", text + "\n\n", flags=re.S)
    assert tables
    for table in tables:
        lines = table.splitlines()
        assert len(lines[0].strip("|").split("|")) <= 8
        assert set(lines[1].strip("|").split("|")[2:6]) == {"--:"}  # numbers right-aligned
        for line in lines[2:]:
            for cell in line.strip("|").split("|")[2:6]:
                assert re.fullmatch(r" (≤ )?\d+\.\d \[\d+\.\d, \d+\.\d\]( ±\d+\.\d \(\d seeds\))? ", cell) or \
                    cell.strip() == "—", cell


def assert_pages_agree(pages: dict[str, bytes]) -> int:
    """For every model on every leaderboard page: the verdict in its table row is the JSON row's
    (the rules that fired at that page's norm, and those that fired at other norms only, named),
    and the model's verdict is the one in the page's evidence section and on its model page.
    Returns how many (page, model) pairs it checked."""
    data = json.loads(pages["leaderboard.json"])
    checked = 0
    json_rows = {}
    for page in data["pages"]:
        for table in page["tables"]:
            for row in table["rows"]:
                for mid in row["model_ids"]:
                    json_rows.setdefault((page["dataset"], page["norm"], mid), []).append(row)
    for name in sorted(pages):
        if "/" in name or not name.endswith(".md") or name == "README.md" or "temperature" in name:
            continue
        text = pages[name].decode()
        for mid, model in data["models"].items():
            rows = [line for line in text.splitlines() if f"(models/{mid}.md)" in line and line.startswith("|")]
            if not rows:
                continue
            fired = [f["rule"] for f in model["findings"] if f["fired"]]
            assert f"## Masking diagnosis: {model['verdict']}" in pages[f"models/{mid}.md"].decode()
            if fired:
                assert f"(`{mid}`): {model['verdict']}" in text
            else:
                assert f"(`{mid}`)" not in text
            per_norm = [r for (ds, norm, m), rs in json_rows.items() if m == mid and name.startswith(f"{ds}-{norm}")
                        for r in rs] if name != "leaderboard.md" else []
            for row in rows:
                if per_norm:
                    here = per_norm[0]["rules_fired"]
                    assert (f"masked? {' '.join(here)}" in row) if here else ("none (" in row or "not diagnosed" in row)
                    for norm, rules in per_norm[0]["rules_fired_elsewhere"].items():
                        assert f"masking at {norm}: {' '.join(rules)}" in row
                    assert set(here) <= set(fired)
                elif not fired:
                    assert "none (" in row or "not diagnosed" in row
                checked += 1
    return checked


def test_verdicts_agree_in_table_evidence_and_model_page(fixed_store):
    assert assert_pages_agree(build_pages(Store(fixed_store))) >= 7


def test_json_validates_against_its_documented_schema(board, fixed_store):
    schema = json.loads((DOCS / "schema" / "leaderboard.schema.json").read_text())
    jsonschema.validate(board_json(board), schema)
    record_schema = json.loads((DOCS / "schema" / "record.schema.json").read_text())
    for path in (fixed_store / "records").glob("*/record.json"):
        jsonschema.validate(json.loads(path.read_text()), record_schema)


def test_csv_has_a_line_per_row_with_intervals(board):
    lines = board_csv(board).splitlines()
    assert len(lines) == 1 + sum(len(t.rows) for p in board.pages for t in p.tables)
    header = lines[0].split(",")
    assert {"robust_low", "robust_high", "robust_is_upper_bound", "reasons"} <= set(header)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DISTILL_BENCH_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text, f"{name} differs from its golden file"


def test_golden_markdown_and_json(board, fixed_store):
    _golden("leaderboard.md", board_markdown(board))
    _golden("leaderboard.json", board_json_text(board))
    _golden("digits-linf.md", build_pages(Store(fixed_store))["digits-linf.md"].decode())


def test_cli_formats(fixed_store, capsys):
    assert main(["leaderboard", "--out", str(fixed_store), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["schema_version"] == 5
    assert main(["leaderboard", "--out", str(fixed_store), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("dataset,norm,eps,rank")


def test_publish_writes_only_its_own_pages_and_refuses_another_stores(fixed_store, tmp_path, capsys):
    dest = tmp_path / "board"
    assert main(["leaderboard", "publish", "--out", str(fixed_store), "--dest", str(dest)]) == 0
    assert (dest / MARKER).is_file() and (dest / "leaderboard.json").is_file()
    other = tmp_path / "other-store"
    write_store(other, _records()[:4], SPECS[:1])
    (other / "store.json").write_text(json.dumps({"store_id": "1" * 32}))
    capsys.readouterr()
    assert main(["leaderboard", "publish", "--out", str(other), "--dest", str(dest)]) == 2
    assert "another store" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["leaderboard", "publish", "--out", str(fixed_store), "--dest", str(foreign)]) == 2
    assert main(["leaderboard", "publish", "--out", str(fixed_store), "--dest", str(foreign), "--replace"]) == 0
    assert (foreign / "notes.txt").read_text() == "mine"  # only pages are ever replaced


def test_check_reports_orphaned_pages_and_republish_removes_them(fixed_store, tmp_path, capsys):
    dest = tmp_path / "board"
    assert main(["leaderboard", "publish", "--out", str(fixed_store), "--dest", str(dest)]) == 0
    (dest / "models" / "ffffffffffffffff.md").write_text("a model the store no longer has")
    capsys.readouterr()
    assert main(["leaderboard", "publish", "--check", "--out", str(fixed_store), "--dest", str(dest)]) == 1
    assert "orphaned: " in capsys.readouterr().out


def test_a_crafted_id_cannot_become_a_path(tmp_path, capsys):
    rec, frame = make_record(VANILLA, "pgd", "linf", 0.3, _n(3))
    rec["model_id"] = "../../../../tmp/evil"
    store = write_store(tmp_path / "s", [(rec, frame)], [])
    assert main(["leaderboard", "publish", "--out", str(store), "--dest", str(tmp_path / "d")]) == 2
    assert "not a valid id" in capsys.readouterr().err
    assert main(["eval", "--model-id", "../x", "--out", str(store), "--dataset", "digits", "--quiet"]) == 2
