from __future__ import annotations

import pandas as pd
import torch

from bench.archs import create_model
from bench.specs import Budget, ModelSpec, content_hash
from bench.store import Store


def _record(rid, mid):
    return {"record_id": rid, "model_id": mid, "schema_version": 1,
            "spec": {"defense": {"name": "vanilla", "label": "vanilla", "config": {}}, "arch": "digits-cnn",
                     "dataset": {"name": "digits", "split": "test", "n": 2, "seed": 0},
                     "attack": {"name": "pgd", "config": {}}, "budget": {"norm": "linf", "eps": 0.3}, "seed": 0},
            "metrics": {"clean_acc": 1.0, "robust_acc": 0.5, "success_rate": 0.5, "n": 2},
            "provenance": {"started_at": "2026-01-01T00:00:00+00:00"}}


def test_content_hash_is_stable_and_order_free():
    assert content_hash({"a": 1, "b": [1.5, "x"]}) == content_hash({"b": [1.5, "x"], "a": 1})
    a = ModelSpec("vanilla", {"epochs": 3, "lr": 0.1}, "digits-cnn", "digits", 0)
    b = ModelSpec("vanilla", {"lr": 0.1, "epochs": 3}, "digits-cnn", "digits", 0)
    c = ModelSpec("vanilla", {"lr": 0.1, "epochs": 4}, "digits-cnn", "digits", 0)
    assert a.model_id == b.model_id != c.model_id
    assert Budget("l2", 2.0) == Budget("l2", 2.0)


def test_model_roundtrip_and_index_repair(tmp_path, digits):
    store = Store(tmp_path)
    model = create_model("digits-cnn", digits).eval()
    spec = ModelSpec("vanilla", {}, "digits-cnn", "digits", 0).to_json()
    store.save_model(model, spec)
    store.save_record(_record("r1", spec["model_id"]), pd.DataFrame({"index": [0, 1], "adv_correct": [True, False]}))
    loaded = store.load_model(spec["model_id"], digits, torch.device("cpu"))
    x = digits.x_test[:5]
    assert torch.equal(loaded(x), model(x))
    # the index is derived: delete it, and reopening rebuilds it from the files
    (tmp_path / "index.sqlite").unlink()
    again = Store(tmp_path)
    assert [r["record_id"] for r in again.records(dataset="digits")] == ["r1"]
    assert again.query("SELECT robust_acc FROM records WHERE attack = 'pgd'") == [(0.5,)]
    assert [m["model_id"] for m in again.models()] == [spec["model_id"]]


def test_staging_folders_are_not_artifacts(tmp_path):
    store = Store(tmp_path)
    (tmp_path / "records" / "partial").mkdir()  # a folder without its record.json
    assert not store.has_record("partial")
    assert Store(tmp_path).records() == []
