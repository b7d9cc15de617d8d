"""The store's SQLite index: a cache of the artifact files, never the truth.

On open every artifact file is hashed and compared with the hash its row was made from; rows are
added, refreshed or dropped to match (`refresh_index`), and `bench store rebuild` recreates the
index from nothing. SQLite runs in WAL mode with a busy timeout, so concurrent runs on one store
wait for each other instead of failing with "database is locked". A corrupt index is set aside
and rebuilt.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Iterator

from bench.core.errors import BenchInputError
from bench.core.files import owner_tag, sha256_bytes
from bench.store.integrity import CorruptArtifact
from bench.store.records import valid_id

INDEX_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS models (
    model_id TEXT PRIMARY KEY, defense TEXT, label TEXT, arch TEXT, dataset TEXT, seed INTEGER,
    spec_json TEXT, created_at TEXT, file_sha256 TEXT
);
CREATE TABLE IF NOT EXISTS records (
    record_id TEXT PRIMARY KEY, model_id TEXT, defense TEXT, label TEXT, arch TEXT, dataset TEXT,
    attack TEXT, norm TEXT, eps REAL, clean_acc REAL, robust_acc REAL, success_rate REAL, n INTEGER,
    record_json TEXT, created_at TEXT, file_sha256 TEXT
);
"""


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None where there is no regular file: a folder, or a FIFO or device put
    where a spec should be (reading one would block until killed)."""
    try:
        if path.exists() and not path.is_file():
            return None
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None




class StoreIndex:
    """The index half of `Store` (bench/store/artifacts.py): it reads the files through the
    store's verified readers (bench/store/verified.py)."""

    def _open_index(self) -> sqlite3.Connection:
        path = self.root / "index.sqlite"
        for attempt in (1, 2):
            try:
                db = sqlite3.connect(path, timeout=60)
                db.execute("PRAGMA busy_timeout = 60000")
                db.execute("PRAGMA journal_mode = WAL")
                db.executescript(_SCHEMA)
                row = db.execute("SELECT value FROM meta WHERE key = 'index_version'").fetchone()
                if row is None or row[0] != str(INDEX_VERSION):
                    with db:
                        db.execute("DROP TABLE IF EXISTS models")
                        db.execute("DROP TABLE IF EXISTS records")
                    db.executescript(_SCHEMA)
                    with db:
                        db.execute("INSERT OR REPLACE INTO meta VALUES ('index_version', ?)", (str(INDEX_VERSION),))
                return db
            except sqlite3.DatabaseError as exc:
                if attempt == 2:
                    raise BenchInputError(f"the index {path} cannot be opened ({exc}); `bench store rebuild` "
                                          f"recreates it from the files") from None
                # the index is only a cache of the files: a corrupt one is set aside and rebuilt
                self.log(f"bench: warning: index {path} is unreadable ({exc}); rebuilding it from the files")
                with contextlib.suppress(Exception):
                    db.close()
                for suffix in ("", "-wal", "-shm"):
                    side = Path(f"{path}{suffix}")
                    if side.exists():
                        os.replace(side, self.tmp_dir / f"{owner_tag()}.broken-index{suffix}")
        raise AssertionError("unreachable")

    def rebuild_index(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM models")
            self._db.execute("DELETE FROM records")
        self.refresh_index()

    def refresh_index(self) -> None:
        """Make the index equal to the files: every artifact whose file hash differs from its row's
        is verified and re-indexed; rows without a valid artifact are dropped."""
        self.problems.clear()
        # a row is current only if it holds exactly what its verified file says: an edit of the index
        # alone (metrics, a spec) is overwritten from the file, never shown on a page
        rows = {r[0]: tuple(r) for r in self._db.execute("SELECT * FROM models")}
        valid_models: dict[str, dict] = {}
        for folder in self._folders(self.models_dir):
            data = read_bytes(folder / "spec.json")
            if data is None:
                # folders are renamed into place whole (folders.py): one without its spec was edited
                if (folder / "model.safetensors").exists():
                    self.problems[f"model:{folder.name}"] = CorruptArtifact(
                        "model", folder.name, "spec.json is missing beside model.safetensors", folder)
                continue
            try:
                spec = self._verified_spec(folder.name, data)
            except CorruptArtifact as exc:
                self.problems[f"model:{folder.name}"] = exc
                continue
            valid_models[folder.name] = spec
            if rows.get(folder.name) != self._model_row(spec, sha256_bytes(data)):
                self._index_model(spec, sha256_bytes(data))
        rows = {r[0]: tuple(r) for r in self._db.execute("SELECT * FROM records")}
        valid_records: set[str] = set()
        for folder in self._folders(self.records_dir):
            data = read_bytes(folder / "record.json")
            if data is None:
                if (folder / "per_example.csv").exists():  # deleted by hand: say so, never drop it silently
                    self.problems[f"record:{folder.name}"] = CorruptArtifact(
                        "record", folder.name, "record.json is missing beside per_example.csv", folder)
                continue
            try:
                rec, _ = self._verified_record(folder.name, data, valid_models)
            except CorruptArtifact as exc:
                self.problems[f"record:{folder.name}"] = exc
                continue
            valid_records.add(folder.name)
            if rows.get(folder.name) != self._record_row(rec, sha256_bytes(data)):
                self._index_record(rec, sha256_bytes(data))
        with self._db:
            for (mid,) in list(self._db.execute("SELECT model_id FROM models")):
                if mid not in valid_models:
                    self._db.execute("DELETE FROM models WHERE model_id = ?", (mid,))
            for (rid,) in list(self._db.execute("SELECT record_id FROM records")):
                if rid not in valid_records:
                    self._db.execute("DELETE FROM records WHERE record_id = ?", (rid,))

    def _folders(self, parent: Path) -> Iterator[Path]:
        for d in sorted(parent.iterdir()):
            if d.is_dir() and valid_id(d.name):
                yield d

    @staticmethod
    def _model_row(spec: dict, file_sha: str) -> tuple:
        return (spec["model_id"], spec["defense"], spec.get("label", spec["defense"]), spec["arch"],
                spec["dataset"], spec["seed"], json.dumps(spec, sort_keys=True), spec.get("created_at", ""), file_sha)

    @staticmethod
    def _record_row(rec: dict, file_sha: str) -> tuple:
        s, m = rec["spec"], rec["metrics"]
        return (rec["record_id"], rec["model_id"], s["defense"]["name"], s["defense"]["label"], s["arch"],
                s["dataset"]["name"], s["attack"]["name"], s["budget"]["norm"], s["budget"]["eps"],
                m["clean_acc"], m["robust_acc"], m["success_rate"], m["n"],
                json.dumps(rec, sort_keys=True), rec["provenance"]["started_at"], file_sha)

    def _index_model(self, spec: dict, file_sha: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO models VALUES (?,?,?,?,?,?,?,?,?)", self._model_row(spec, file_sha))

    def _index_record(self, rec: dict, file_sha: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                             self._record_row(rec, file_sha))
