"""The SQLite index is a cache of the sealed files (issue 19): metrics or a spec edited in
`index.sqlite` alone never reach a page; the files win when the store is opened."""
from __future__ import annotations

import json
import sqlite3

from bench.cli import main
from recordkit import make_record, model_spec, write_store

SPEC = model_spec("d000000000000002", "vanilla")


def test_metrics_edited_in_the_index_never_reach_a_page(tmp_path, capsys):
    store = write_store(tmp_path / "s", [make_record(SPEC, "pgd", "linf", 0.3, [False] * 10)], [SPEC])
    assert main(["leaderboard", "show", "--out", str(store), "--format", "json"]) == 0
    before = json.loads(capsys.readouterr().out)
    db = sqlite3.connect(store / "index.sqlite")
    (rid, raw), = db.execute("SELECT record_id, record_json FROM records").fetchall()
    rec = json.loads(raw)
    rec["metrics"]["robust_acc"] = 0.99
    db.execute("UPDATE records SET record_json = ?, robust_acc = 0.99 WHERE record_id = ?", (json.dumps(rec), rid))
    (raw,), = db.execute("SELECT spec_json FROM models").fetchall()
    spec = json.loads(raw)
    spec["label"] = "forged"
    db.execute("UPDATE models SET spec_json = ?, label = 'forged'", (json.dumps(spec),))
    db.commit()
    db.close()
    assert main(["leaderboard", "show", "--out", str(store), "--format", "json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after == before
    assert "forged" not in json.dumps(after)
    db = sqlite3.connect(store / "index.sqlite")
    assert db.execute("SELECT robust_acc FROM records").fetchone()[0] == 0.0  # restored from the file
