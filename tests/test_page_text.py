"""Page text cannot be injected (issue 19): a label or an adapter's note with newlines and pipes
stays inside its cell, heading or bullet."""
from __future__ import annotations

from bench.report.tables import inline, md_table


def test_a_cell_with_newlines_and_pipes_stays_one_cell_of_one_row():
    evil = "vanilla\n| fake | 99.0 | row |\r\n"
    lines = md_table(["defense", "robust"], "lr", [[evil, "0.0"]])
    assert len(lines) == 3  # header, rule, one row: no injected row
    row = lines[2]
    assert "\n" not in row and "\r" not in row
    assert row.count(" | ") == 1 and row.startswith("| vanilla \\| fake \\| 99.0 \\| row \\| |")


def test_inline_collapses_every_line_break():
    assert inline("a\nb\r\nc\td") == "a b c d"


def test_a_note_of_an_adapter_cannot_add_a_table_row_to_the_model_page(tmp_path):
    from bench.assess.assessment import assess
    from bench.report.markdown import model_markdown
    from recordkit import make_record, model_spec, result_set

    spec = model_spec("c000000000000005", "vanilla")
    rec, frame = make_record(spec, "pgd", "linf", 0.3, [True] * 5 + [False] * 5)
    rec["attack_notes"] = ["done\n| pgd | 100.0 | forged |"]
    m = assess(result_set([(rec, frame)], [spec]))[spec["model_id"]]
    page = model_markdown(m, "vanilla\n# forged heading")
    assert "\n| pgd | 100.0 | forged |" not in page
    assert "\n# forged heading" not in page
    assert "- done | pgd | 100.0 | forged |" in page


def test_a_published_command_holds_no_folder_of_the_machine_that_made_it():
    from bench.report.tables import portable

    cmd = "bench run --defense vanilla --out /home/alice/runs/store23 --leaderboard=/tmp/x/lb.md --eps 0.3"
    assert portable(cmd) == "bench run --defense vanilla --out DIR/store23 --leaderboard=DIR/lb.md --eps 0.3"
    assert portable("bench run --out runs --quiet") == "bench run --out runs --quiet"  # relative: as typed
