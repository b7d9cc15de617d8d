"""Artifacts by content hash, verified when read, written atomically, plus a SQLite index.

Layout under the store root (`--out`, default ./runs):
    models/<model_id>/model.safetensors, spec.json     a trained model and what made it
    records/<record_id>/record.json, per_example.csv    one model × attack × budget result
    probes/<probe_id>.json                              cheap model measurements (bench/probes.py)
    index.sqlite                                        a cache of the files (rebuildable)
    locks/<id>.lock                                     one per node being computed
    tmp/                                                staging folders of writes in progress

**Integrity** (bench/integrity.py). Every JSON artifact carries `integrity`: the SHA-256 of its own canonical content
(without that field) and of each file beside it (weights, per-example CSV). Ids are checked against
the folder they sit in and, where the artifact records the key its id was hashed from, against that
key. A mismatch is a `CorruptArtifact`: the artifact is never used; `bench run` recomputes it,
`bench eval` / `bench leaderboard` exit 2 naming it. The hashes detect corruption and edits; they
are not signatures (whoever can rewrite the files can rewrite the hashes).

**The index is a cache of the files.** On open every artifact file is hashed and compared with the
hash its row was made from; rows are added, refreshed or dropped to match, and `bench store rebuild`
recreates the index from nothing. SQLite runs in WAL mode with a busy timeout, so concurrent runs on
one store wait for each other instead of failing with "database is locked".

**Concurrency.** A process computing a node holds `locks/<id>.lock` (an advisory `flock`); a second
process wanting the same node waits, then finds the artifact made and reuses it. Staging folders and
temporary files are named after their host and pid, so the next open removes a dead writer's
leftovers at once and never a live one's.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import torch
from safetensors.torch import load, save

from bench.errors import BenchInputError
from bench.integrity import CorruptArtifact, _check_content, seal  # noqa: F401 - seal: part of the store's API
from bench.files import (fsync_dir, is_leftover, json_bytes, owner_tag, sha256_bytes, sha256_file,
                         write_json_atomic)

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
_LEFTOVER_AGE_S = 24 * 3600  # another host's temporary files: removed after a day
PER_EXAMPLE_COLUMNS = ("index", "label", "clean_pred", "adv_pred", "clean_correct", "adv_correct")


class Store:
    def __init__(self, root: str | os.PathLike, *, create: bool = True, log=None):
        """Open (or, with `create`, make) the store at `root`. Read-only verbs pass create=False,
        so that a typo in `--out` is an error rather than a new empty store."""
        self.root = Path(root)
        self.log = log or (lambda msg: None)
        if not create and not (self.root / "store.json").is_file() and not (self.root / "models").is_dir():
            raise BenchInputError(f"no store at {str(root)!r} (no store.json there); run `bench run` first or pass --out DIR")
        self.models_dir = self.root / "models"
        self.records_dir = self.root / "records"
        self.probes_dir = self.root / "probes"
        self.tmp_dir = self.root / "tmp"
        self.locks_dir = self.root / "locks"
        for d in (self.models_dir, self.records_dir, self.probes_dir, self.tmp_dir, self.locks_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.store_id = self._identity()
        self.problems: dict[str, CorruptArtifact] = {}  # "model:<id>" / "record:<id>" -> what is wrong
        self._weights_sha: dict[str, str] = {}
        self._remove_leftovers()
        self._db = self._open_index()
        self.refresh_index()

    def _identity(self) -> str:
        """A random id naming this store, made once (publish uses it to recognise its own pages)."""
        path = self.root / "store.json"
        try:
            return json.loads(path.read_text())["store_id"]
        except (OSError, ValueError, KeyError, TypeError):
            store_id = uuid.uuid4().hex
            write_json_atomic(path, {"store_id": store_id})
            return store_id

    # --- the index -------------------------------------------------------------------------------
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
        rows = {r[0]: r[1] for r in self._db.execute("SELECT model_id, file_sha256 FROM models")}
        valid_models: dict[str, dict] = {}
        for folder in self._folders(self.models_dir):
            data = _read(folder / "spec.json")
            if data is None:
                continue  # half-present: recomputed by the next run that needs it
            try:
                spec = self._verified_spec(folder.name, data)
            except CorruptArtifact as exc:
                self.problems[f"model:{folder.name}"] = exc
                continue
            valid_models[folder.name] = spec
            if rows.get(folder.name) != sha256_bytes(data):
                self._index_model(spec, sha256_bytes(data))
        rows = {r[0]: r[1] for r in self._db.execute("SELECT record_id, file_sha256 FROM records")}
        valid_records: set[str] = set()
        for folder in self._folders(self.records_dir):
            data = _read(folder / "record.json")
            if data is None:
                continue
            try:
                rec, _ = self._verified_record(folder.name, data, valid_models)
            except CorruptArtifact as exc:
                self.problems[f"record:{folder.name}"] = exc
                continue
            valid_records.add(folder.name)
            if rows.get(folder.name) != sha256_bytes(data):
                self._index_record(rec, sha256_bytes(data))
        with self._db:
            for (mid,) in list(self._db.execute("SELECT model_id FROM models")):
                if mid not in valid_models:
                    self._db.execute("DELETE FROM models WHERE model_id = ?", (mid,))
            for (rid,) in list(self._db.execute("SELECT record_id FROM records")):
                if rid not in valid_records:
                    self._db.execute("DELETE FROM records WHERE record_id = ?", (rid,))

    def _folders(self, parent: Path) -> Iterator[Path]:
        from bench.records import valid_id

        for d in sorted(parent.iterdir()):
            if d.is_dir() and valid_id(d.name):
                yield d

    def _index_model(self, spec: dict, file_sha: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO models VALUES (?,?,?,?,?,?,?,?,?)",
                (spec["model_id"], spec["defense"], spec.get("label", spec["defense"]), spec["arch"],
                 spec["dataset"], spec["seed"], json.dumps(spec, sort_keys=True), spec.get("created_at", ""), file_sha),
            )

    def _index_record(self, rec: dict, file_sha: str) -> None:
        s, m = rec["spec"], rec["metrics"]
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec["record_id"], rec["model_id"], s["defense"]["name"], s["defense"]["label"], s["arch"],
                 s["dataset"]["name"], s["attack"]["name"], s["budget"]["norm"], s["budget"]["eps"],
                 m["clean_acc"], m["robust_acc"], m["success_rate"], m["n"],
                 json.dumps(rec, sort_keys=True), rec["provenance"]["started_at"], file_sha),
            )

    # --- verification ------------------------------------------------------------------------
    @staticmethod
    def _parse(kind: str, artifact_id: str, data: bytes, name: str, folder: Path) -> Any:
        try:
            return json.loads(data)
        except ValueError as exc:
            raise CorruptArtifact(kind, artifact_id, f"{name} is not valid JSON: {exc}", folder) from None

    def _verified_spec(self, model_id: str, data: bytes) -> dict:
        folder = self.models_dir / model_id
        spec = self._parse("model", model_id, data, "spec.json", folder)
        why = _check_content(spec, "model", "model_id", model_id)
        if why is None and "model.safetensors" not in spec["integrity"]["files"]:
            why = "spec.json records no weights hash"
        if why is None and not (folder / "model.safetensors").is_file():
            why = "model.safetensors is missing"
        if why:
            raise CorruptArtifact("model", model_id, why, folder)
        return spec

    def _verified_record(self, record_id: str, data: bytes,
                         models: dict[str, dict] | None = None) -> tuple[dict, pd.DataFrame]:
        """The record and its per-example frame, both checked; with `models` (model id → spec), also
        that the record attacked the weights the store holds now."""
        folder = self.records_dir / record_id
        rec = self._parse("record", record_id, data, "record.json", folder)
        why = _check_content(rec, "record", "record_id", record_id)
        if why:
            raise CorruptArtifact("record", record_id, why, folder)
        frame = self._verified_frame(record_id, rec)
        # a record describes the weights it attacked: a model retrained since (--force) makes it stale
        spec = (models or {}).get(rec["model_id"])
        attacked = rec.get("model_sha256")
        if spec is not None and attacked and spec["integrity"]["files"]["model.safetensors"] != attacked:
            raise CorruptArtifact("record", record_id, f"stale: model {rec['model_id']} has been retrained since "
                                  f"this record was made", folder)
        return rec, frame

    def _verified_frame(self, record_id: str, rec: dict) -> pd.DataFrame:
        folder = self.records_dir / record_id
        path = folder / "per_example.csv"
        try:
            data = path.read_bytes()
        except OSError:
            raise CorruptArtifact("record", record_id, "per_example.csv is missing", folder) from None
        expected = rec.get("integrity", {}).get("files", {}).get("per_example.csv")
        if expected != sha256_bytes(data):
            raise CorruptArtifact("record", record_id, "per_example.csv differs from its recorded hash", folder)
        try:
            frame = pd.read_csv(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - any parse failure is corruption
            raise CorruptArtifact("record", record_id, f"per_example.csv is unreadable ({exc})", folder) from None
        missing = [c for c in PER_EXAMPLE_COLUMNS if c not in frame.columns]
        if missing or len(frame) != rec["metrics"]["n"] or frame["index"].duplicated().any():
            raise CorruptArtifact("record", record_id, f"per_example.csv has {len(frame)} rows for n = "
                                  f"{rec['metrics']['n']}{', lacks ' + ', '.join(missing) if missing else ''}", folder)
        return frame

    # --- atomic artifact folders -------------------------------------------------------------
    def _staging(self) -> Path:
        path = self.tmp_dir / f"{owner_tag()}.{uuid.uuid4().hex}"
        path.mkdir(parents=True)
        return path

    def _commit_dir(self, staging: Path, final: Path, valid_now) -> None:
        """Rename `staging` to `final`. An existing `final` is kept only if `valid_now()` says it is
        a complete, valid artifact (another process finished the same node); a half-present or
        corrupt one, or any with `valid_now` None (a forced recompute), is set aside and replaced."""
        for staging_file in staging.iterdir():
            os.chmod(staging_file, 0o666 & ~_umask_cached())
        os.chmod(staging, 0o777 & ~_umask_cached())
        if final.exists():
            if valid_now is not None and valid_now():
                shutil.rmtree(staging, ignore_errors=True)
                return
            aside = self.tmp_dir / f"{owner_tag()}.replaced.{uuid.uuid4().hex}"
            os.replace(final, aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.replace(staging, final)
        fsync_dir(final.parent)

    def _remove_leftovers(self) -> None:
        """Staging folders and temporary files of writers that died (killed runs)."""
        now = time.time()
        for entry in self.tmp_dir.iterdir():
            with contextlib.suppress(OSError):
                if is_leftover(entry.name, _LEFTOVER_AGE_S, now - entry.stat().st_mtime):
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        for folder in (self.root, self.probes_dir):
            for entry in folder.glob(".*.tmp"):
                with contextlib.suppress(OSError):
                    if is_leftover(entry.name, _LEFTOVER_AGE_S, now - entry.stat().st_mtime):
                        entry.unlink()

    @contextlib.contextmanager
    def lock(self, node_id: str):
        """Hold the node's lock: one process computes a node at a time; the others wait, then
        find its artifact made. Advisory `flock` (POSIX; on a network filesystem it needs lock support)."""
        from bench.records import check_id

        path = self.locks_dir / f"{check_id(node_id, 'node id')}.lock"
        try:
            import fcntl
        except ImportError:  # no flock (Windows): the atomic renames still keep every artifact whole
            yield
            return
        with open(path, "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # --- models ------------------------------------------------------------------------------
    def has_model(self, model_id: str) -> bool:
        """A complete, valid model on disk (read now, not from the index: another process may have
        just made it)."""
        data = _read(self.models_dir / model_id / "spec.json")
        if data is None:
            return False
        try:
            self._verified_spec(model_id, data)
        except CorruptArtifact as exc:
            self.problems[f"model:{model_id}"] = exc
            return False
        return True

    def _model_whole(self, model_id: str) -> bool:
        """has_model, and the weights match their hash (checked before keeping an existing folder)."""
        if not self.has_model(model_id):
            return False
        path = self.models_dir / model_id / "model.safetensors"
        return sha256_file(path) == self.weights_sha256(model_id)

    def save_model(self, model: torch.nn.Module, spec: dict, *, replace: bool = False) -> None:
        staging = self._staging()
        # cloned: tensors that share storage (tied weights) cannot be saved as safetensors
        state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        weights = save(state)
        (staging / "model.safetensors").write_bytes(weights)
        _fsync_file(staging / "model.safetensors")
        spec = seal(spec, {"model.safetensors": weights})
        write_json_atomic(staging / "spec.json", spec)  # written last: its presence marks completeness
        mid = spec["model_id"]
        before = self.weights_sha256(mid) if replace and self.has_model(mid) else None
        self._commit_dir(staging, self.models_dir / mid, None if replace else (lambda: self._model_whole(mid)))
        if before is not None and before != sha256_bytes(weights):
            # its records attacked the weights just replaced: they describe nothing that exists now
            for (rid,) in self.query("SELECT record_id FROM records WHERE model_id = ?", (mid,)):
                shutil.rmtree(self.records_dir / rid, ignore_errors=True)
            with self._db:
                self._db.execute("DELETE FROM records WHERE model_id = ?", (mid,))
        self.problems.pop(f"model:{mid}", None)
        self._weights_sha.pop(mid, None)
        self._index_model(spec, sha256_bytes(json_bytes(spec)))

    def model_spec(self, model_id: str) -> dict:
        from bench.records import check_id

        folder = self.models_dir / check_id(model_id, "model id")
        data = _read(folder / "spec.json")
        if data is None:
            raise BenchInputError(
                f"no trained model {model_id!r} in {self.models_dir} (train it with `bench train`, "
                f"or list models with `bench list models --out {self.root}`)"
            )
        return self._verified_spec(model_id, data)

    def weights_sha256(self, model_id: str) -> str:
        return self.model_spec(model_id)["integrity"]["files"]["model.safetensors"]

    def load_model(self, model_id: str, dataset, device: torch.device) -> torch.nn.Module:
        """The model, rebuilt from its architecture and weights after checking the weights' hash."""
        from bench.archs import create_model

        spec = self.model_spec(model_id)
        folder = self.models_dir / model_id
        try:
            weights = (folder / "model.safetensors").read_bytes()
        except OSError as exc:
            raise CorruptArtifact("model", model_id, f"model.safetensors is unreadable ({exc})", folder) from None
        if sha256_bytes(weights) != spec["integrity"]["files"]["model.safetensors"]:
            raise CorruptArtifact("model", model_id, "model.safetensors differs from the hash in spec.json", folder)
        if spec["defense"] == "external" and spec["arch"] == "external":
            config = spec.get("config", {})
            if config.get("source") != "factory":
                raise BenchInputError(f"model {model_id} is an audited module of no registered architecture; audit it "
                                      f"again (`distill_bench.audit(model, ...)`) to attack it further")
        try:
            state = load(weights)
            if spec["arch"] == "external":
                from bench.audit import load_factory

                model = load_factory(spec["config"]["origin"])
            else:
                model = create_model(spec["arch"], dataset)
            model.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - a valid hash but an unusable file: still corrupt
            raise CorruptArtifact("model", model_id, f"the weights do not load ({str(exc).splitlines()[0]})",
                                  folder) from None
        return model.to(device).eval()

    # --- records -----------------------------------------------------------------------------
    def has_record(self, record_id: str) -> bool:
        """A complete, valid, current record on disk (read now)."""
        return self.current_record(record_id) is not None

    def current_record(self, record_id: str) -> dict | None:
        """The record read now from disk, verified (files, id, and the weights it attacked against the
        stored model's), or None when absent or not usable (the problem is kept in `problems`)."""
        data = _read(self.records_dir / record_id / "record.json")
        if data is None:
            return None
        try:
            rec = self._parse("record", record_id, data, "record.json", self.records_dir / record_id)
            model_id = rec.get("model_id") if isinstance(rec, dict) else None
            try:
                models = {model_id: self.model_spec(model_id)} if model_id else None
            except BenchInputError:  # its model is absent or corrupt: the record is judged on its own
                models = None
            return self._verified_record(record_id, data, models)[0]
        except CorruptArtifact as exc:
            self.problems[f"record:{record_id}"] = exc
            return None

    def save_record(self, record: dict, per_example: pd.DataFrame, *, replace: bool = False) -> dict:
        staging = self._staging()
        csv = per_example.to_csv(index=False).encode()
        (staging / "per_example.csv").write_bytes(csv)
        _fsync_file(staging / "per_example.csv")
        record = seal(record, {"per_example.csv": csv})
        write_json_atomic(staging / "record.json", record)
        rid = record["record_id"]
        self._commit_dir(staging, self.records_dir / rid, None if replace else (lambda: self.has_record(rid)))
        self.problems.pop(f"record:{rid}", None)
        self._index_record(record, sha256_bytes(json_bytes(record)))
        return record

    def _record_bytes(self, record_id: str) -> bytes:
        from bench.records import check_id

        data = _read(self.records_dir / check_id(record_id, "record id") / "record.json")
        if data is None:
            raise BenchInputError(f"no record {record_id!r} in {self.records_dir}")
        return data

    def load_record(self, record_id: str) -> dict:
        return self._verified_record(record_id, self._record_bytes(record_id))[0]

    def load_per_example(self, record_id: str) -> pd.DataFrame:
        return self._verified_record(record_id, self._record_bytes(record_id))[1]

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
        from bench.records import check_id

        return self.probes_dir / f"{check_id(probe_id, 'probe id')}.json"

    def load_probes(self, probe_id: str) -> dict | None:
        """Cached probes, or None when absent or corrupt (probes are cheap: recomputed)."""
        path = self.probes_path(probe_id)
        data = _read(path)
        if data is None:
            return None
        try:
            probes = json.loads(data)
        except ValueError:
            probes = None
        if _check_content(probes, "probes", "probe_id", probe_id) is not None:
            self.problems[f"probes:{probe_id}"] = CorruptArtifact("probes", probe_id, "content hash mismatch", path)
            return None
        return probes

    def all_probes(self) -> list[dict]:
        found = []
        for path in sorted(self.probes_dir.glob("*.json")):
            probes = self.load_probes(path.stem) if _valid_stem(path.stem) else None
            if probes is not None:
                found.append(probes)
        return found

    def save_probes(self, probe_id: str, probes: dict) -> None:
        write_json_atomic(self.probes_path(probe_id), seal(probes, {}))

    def verify_weights(self) -> None:
        """Hash every model's weights (opening the store checks only the JSON and CSV files; weights
        are checked whenever a model is loaded): `bench store verify`."""
        for spec in self.models():
            mid = spec["model_id"]
            path = self.models_dir / mid / "model.safetensors"
            if not path.is_file() or sha256_file(path) != spec["integrity"]["files"]["model.safetensors"]:
                self.problems[f"model:{mid}"] = CorruptArtifact(
                    "model", mid, "model.safetensors differs from the hash in spec.json", path.parent)

    # --- legacy ------------------------------------------------------------------------------
    def seal_legacy(self) -> int:
        """Add content hashes to artifacts written before they existed (trusting their current
        content). Returns how many were sealed."""
        def seal_file(path: Path, files: dict[str, Path]) -> int:
            data = _read(path)
            try:
                obj = json.loads(data) if data is not None else None
            except ValueError:
                return 0
            if not isinstance(obj, dict) or "integrity" in obj or not all(f.is_file() for f in files.values()):
                return 0
            write_json_atomic(path, seal(obj, files))
            return 1

        sealed = sum(seal_file(f / "spec.json", {"model.safetensors": f / "model.safetensors"})
                     for f in self._folders(self.models_dir))
        sealed += sum(seal_file(f / "record.json", {"per_example.csv": f / "per_example.csv"})
                      for f in self._folders(self.records_dir))
        sealed += sum(seal_file(path, {}) for path in sorted(self.probes_dir.glob("*.json")))
        self.refresh_index()
        return sealed


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _valid_stem(stem: str) -> bool:
    from bench.records import valid_id

    return valid_id(stem)


_UMASK: list[int] = []


def _umask_cached() -> int:
    if not _UMASK:
        from bench.files import umask

        _UMASK.append(umask())
    return _UMASK[0]
