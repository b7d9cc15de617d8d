"""Artifacts by content hash, written atomically, plus a SQLite index a program can query.

Layout under the store root (`--out`, default ./runs):
    models/<model_id>/model.safetensors, spec.json     a trained model and what made it
    records/<record_id>/record.json, per_example.csv    one model × attack × budget result
    index.sqlite                                        models and records tables (rebuildable)

Files are the truth; the index is derived from them and repaired on open. Each artifact is
written into a temporary folder and renamed into place, so a killed run leaves either a whole
artifact or none, and the next run redoes only what is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from bench.archs import create_model
from bench.errors import BenchInputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    model_id TEXT PRIMARY KEY, defense TEXT, label TEXT, arch TEXT, dataset TEXT, seed INTEGER,
    spec_json TEXT, created_at TEXT
);
CREATE TABLE IF NOT EXISTS records (
    record_id TEXT PRIMARY KEY, model_id TEXT, defense TEXT, label TEXT, arch TEXT, dataset TEXT,
    attack TEXT, norm TEXT, eps REAL, clean_acc REAL, robust_acc REAL, success_rate REAL, n INTEGER,
    record_json TEXT, created_at TEXT
);
"""


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


class Store:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.models_dir = self.root / "models"
        self.records_dir = self.root / "records"
        for d in (self.models_dir, self.records_dir, self.root / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        self.store_id = self._identity()
        self._db = sqlite3.connect(self.root / "index.sqlite")
        self._db.executescript(_SCHEMA)
        self._repair_index()

    def _identity(self) -> str:
        """A random id naming this store, made once (publish uses it to recognise its own pages)."""
        path = self.root / "store.json"
        try:
            return json.loads(path.read_text())["store_id"]
        except (OSError, ValueError, KeyError, TypeError):
            store_id = uuid.uuid4().hex
            write_json_atomic(path, {"store_id": store_id})
            return store_id

    # --- atomic artifact folders -------------------------------------------------------------
    def _commit_dir(self, staging: Path, final: Path) -> None:
        try:
            os.replace(staging, final)
        except OSError:  # another process finished the same artifact first: keep theirs
            shutil.rmtree(staging, ignore_errors=True)

    def _staging(self) -> Path:
        path = self.root / "tmp" / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    # --- models ------------------------------------------------------------------------------
    def has_model(self, model_id: str) -> bool:
        return (self.models_dir / model_id / "spec.json").is_file()

    def save_model(self, model: torch.nn.Module, spec: dict) -> None:
        staging = self._staging()
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(staging / "model.safetensors"))
        write_json_atomic(staging / "spec.json", spec)  # written last: its presence marks completeness
        self._commit_dir(staging, self.models_dir / spec["model_id"])
        self._index_model(spec)

    def model_spec(self, model_id: str) -> dict:
        path = self.models_dir / model_id / "spec.json"
        if not path.is_file():
            raise BenchInputError(
                f"no trained model {model_id!r} in {self.models_dir} (train it with `bench train`, "
                f"or list models with `bench list models --out {self.root}`)"
            )
        return json.loads(path.read_text())

    def load_model(self, model_id: str, dataset, device: torch.device) -> torch.nn.Module:
        spec = self.model_spec(model_id)
        weights = self.models_dir / model_id / "model.safetensors"
        try:
            state = load_file(str(weights))
        except Exception as exc:
            raise BenchInputError(f"checkpoint {weights} is unreadable ({exc}); delete the folder to retrain") from None
        model = create_model(spec["arch"], dataset)
        model.load_state_dict(state)
        return model.to(device).eval()

    # --- records -----------------------------------------------------------------------------
    def has_record(self, record_id: str) -> bool:
        return (self.records_dir / record_id / "record.json").is_file()

    def save_record(self, record: dict, per_example: pd.DataFrame) -> None:
        staging = self._staging()
        per_example.to_csv(staging / "per_example.csv", index=False)
        write_json_atomic(staging / "record.json", record)
        self._commit_dir(staging, self.records_dir / record["record_id"])
        self._index_record(record)

    def load_record(self, record_id: str) -> dict:
        return json.loads((self.records_dir / record_id / "record.json").read_text())

    def load_per_example(self, record_id: str) -> pd.DataFrame:
        return pd.read_csv(self.records_dir / record_id / "per_example.csv")

    def records(self, **where: Any) -> list[dict]:
        """Records matching column=value filters on the index (dataset=, attack=, model_id=, ...)."""
        sql = "SELECT record_json FROM records"
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
        return [json.loads(row[0]) for row in self._db.execute(sql + " ORDER BY record_id", tuple(where.values()))]

    def models(self) -> list[dict]:
        return [json.loads(r[0]) for r in self._db.execute("SELECT spec_json FROM models ORDER BY model_id")]

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return list(self._db.execute(sql, params))

    # --- probes ------------------------------------------------------------------------------
    def probes_path(self, probe_id: str) -> Path:
        return self.root / "probes" / f"{probe_id}.json"

    def load_probes(self, probe_id: str) -> dict | None:
        path = self.probes_path(probe_id)
        return json.loads(path.read_text()) if path.is_file() else None

    def all_probes(self) -> list[dict]:
        folder = self.root / "probes"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []

    def save_probes(self, probe_id: str, probes: dict) -> None:
        write_json_atomic(self.probes_path(probe_id), probes)

    # --- index -------------------------------------------------------------------------------
    def _index_model(self, spec: dict) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO models VALUES (?,?,?,?,?,?,?,?)",
                (spec["model_id"], spec["defense"], spec.get("label", spec["defense"]), spec["arch"],
                 spec["dataset"], spec["seed"], json.dumps(spec, sort_keys=True), spec.get("created_at", "")),
            )

    def _index_record(self, rec: dict) -> None:
        s, m = rec["spec"], rec["metrics"]
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec["record_id"], rec["model_id"], s["defense"]["name"], s["defense"]["label"], s["arch"],
                 s["dataset"]["name"], s["attack"]["name"], s["budget"]["norm"], s["budget"]["eps"],
                 m["clean_acc"], m["robust_acc"], m["success_rate"], m["n"],
                 json.dumps(rec, sort_keys=True), rec["provenance"]["started_at"]),
            )

    def _iter_complete(self, folder: Path, marker: str) -> Iterator[Path]:
        for d in folder.iterdir():
            if (d / marker).is_file():
                yield d / marker

    def _repair_index(self) -> None:
        """Index whatever finished artifact the index lacks (e.g. a run killed between the rename
        and the index write), and drop index rows whose files are gone."""
        indexed_models = {r[0] for r in self._db.execute("SELECT model_id FROM models")}
        on_disk_models = set()
        for path in self._iter_complete(self.models_dir, "spec.json"):
            on_disk_models.add(path.parent.name)
            if path.parent.name not in indexed_models:
                self._index_model(json.loads(path.read_text()))
        indexed_records = {r[0] for r in self._db.execute("SELECT record_id FROM records")}
        on_disk_records = set()
        for path in self._iter_complete(self.records_dir, "record.json"):
            on_disk_records.add(path.parent.name)
            if path.parent.name not in indexed_records:
                self._index_record(json.loads(path.read_text()))
        with self._db:
            for gone in indexed_models - on_disk_models:
                self._db.execute("DELETE FROM models WHERE model_id = ?", (gone,))
            for gone in indexed_records - on_disk_records:
                self._db.execute("DELETE FROM records WHERE record_id = ?", (gone,))
        # leftovers of killed writes; recent ones may belong to a run still going on beside us
        for stale in (self.root / "tmp").iterdir():
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale, ignore_errors=True)
