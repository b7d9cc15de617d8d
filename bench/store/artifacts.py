"""Artifacts by content hash, verified when read, written atomically, plus a SQLite index.

Layout under the store root (`--out`, default ./runs):
    models/<model_id>/model.safetensors, spec.json     a trained model and what made it
    records/<record_id>/record.json, per_example.csv    one model × attack × budget result
    probes/<probe_id>.json                              cheap model measurements (bench/execute/probes.py)
    binarization/<binarization_id>.json                 binarization tests of attacks (bench/execute/binarization.py)
    index.sqlite                                        a cache of the files (rebuildable)
    locks/<id>.lock                                     one per node being computed
    tmp/                                                staging folders of writes in progress

**Integrity** (bench/store/integrity.py). Every JSON artifact carries `integrity`: the SHA-256 of its own canonical content
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

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load, save

from bench.core.errors import BenchInputError
from bench.core.files import json_bytes, sha256_bytes, sha256_file, write_json_atomic
from bench.store.folders import AtomicFolders, fsync_file, refuse_links
from bench.store.index import StoreIndex, read_bytes
from bench.store.measurements import SealedJsonFolder
from bench.store.integrity import NO_KEY, CorruptArtifact, seal  # noqa: F401 - seal: part of the store's API
from bench.store.verified import PER_EXAMPLE_COLUMNS, VerifiedReads  # noqa: F401 - the columns: part of the API


class Store(StoreIndex, VerifiedReads, AtomicFolders):
    def __init__(self, root: str | os.PathLike, *, create: bool = True, log=None):
        """Open (or, with `create`, make) the store at `root`. Read-only verbs pass create=False,
        so that a typo in `--out` is an error rather than a new empty store."""
        self.root = Path(root)
        self.log = log or (lambda msg: None)
        if not create and not (self.root / "store.json").is_file() and not (self.root / "models").is_dir():
            raise BenchInputError(f"no store at {str(root)!r} (no store.json there); run `bench run` first or pass --out DIR")
        refuse_links(self.root)
        self.models_dir = self.root / "models"
        self.records_dir = self.root / "records"
        self.probes_dir = self.root / "probes"
        self.tmp_dir = self.root / "tmp"
        self.locks_dir = self.root / "locks"
        for d in (self.models_dir, self.records_dir, self.probes_dir, self.tmp_dir, self.locks_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.store_id = self._identity()
        self.problems: dict[str, CorruptArtifact] = {}  # "model:<id>" / "record:<id>" -> what is wrong
        self._probes = SealedJsonFolder(self.probes_dir, "probes", "probe_id", self.problems)
        self._binarization = SealedJsonFolder(self.root / "binarization", "binarization", "binarization_id",
                                              self.problems)
        self.trusted_factories: frozenset[str] = frozenset()  # factories the user named (`bench eval --factory`)
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
    # --- models ------------------------------------------------------------------------------
    def has_model(self, model_id: str) -> bool:
        """A complete, valid model on disk (read now, not from the index: another process may have
        just made it)."""
        data = read_bytes(self.models_dir / model_id / "spec.json")
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
        fsync_file(staging / "model.safetensors")
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
        from bench.store.records import check_id

        folder = self.models_dir / check_id(model_id, "model id")
        data = read_bytes(folder / "spec.json")
        if data is None:
            raise BenchInputError(
                f"no trained model {model_id!r} in {self.models_dir} (train it with `bench train`, "
                f"or list models with `bench list models --out {self.root}`)"
            )
        return self._verified_spec(model_id, data)

    def weights_sha256(self, model_id: str) -> str:
        return self.model_spec(model_id)["integrity"]["files"]["model.safetensors"]

    def _trusted_factory(self, model_id: str, spec: dict) -> str:
        """The factory that rebuilds an audited model, only if the user named it (`bench eval
        --factory`): a store is data, and never names code that gets imported or called."""
        origin = str(spec.get("config", {}).get("origin", ""))
        if origin not in self.trusted_factories:
            raise BenchInputError(
                f"model {model_id} is rebuilt by the factory {origin!r} named in its store; a store never names code "
                f"to run: pass `--factory {origin}` to `bench eval` if you trust it, or audit it again "
                f"(`bench audit --model {origin}`)")
        return origin

    def rebuildable_spec(self, model_id: str) -> dict:
        """The spec of a model to rebuild or attack: it must carry its key (every spec bench writes
        has one; a resealed spec may not, and then nothing ties its id to what it names)."""
        spec = self.model_spec(model_id)
        if not isinstance(spec.get("key"), dict):
            raise CorruptArtifact("model", model_id, NO_KEY, self.models_dir / model_id)
        return spec

    def load_model(self, model_id: str, dataset, device: torch.device) -> torch.nn.Module:
        """The model, rebuilt from its architecture and weights after checking the weights' hash."""
        from bench.plugins.archs import create_model

        spec = self.rebuildable_spec(model_id)
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
        factory = self._trusted_factory(model_id, spec) if spec["arch"] == "external" else None
        try:
            state = load(weights)
            if spec["arch"] == "external":
                from bench.plugins.loading import load_factory

                model = load_factory(factory)
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
        data = read_bytes(self.records_dir / record_id / "record.json")
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
        fsync_file(staging / "per_example.csv")
        record = seal(record, {"per_example.csv": csv})
        write_json_atomic(staging / "record.json", record)
        rid = record["record_id"]
        self._commit_dir(staging, self.records_dir / rid, None if replace else (lambda: self.has_record(rid)))
        self.problems.pop(f"record:{rid}", None)
        self._index_record(record, sha256_bytes(json_bytes(record)))
        return record

    def _record_bytes(self, record_id: str) -> bytes:
        from bench.store.records import check_id

        data = read_bytes(self.records_dir / check_id(record_id, "record id") / "record.json")
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

    # --- probes and binarization tests: sealed JSON, recomputed when corrupt (measurements.py) ---
    def probes_path(self, probe_id: str) -> Path:
        return self._probes.path(probe_id)

    def load_probes(self, probe_id: str) -> dict | None:
        return self._probes.load(probe_id)

    def all_probes(self) -> list[dict]:
        return self._probes.all()

    def save_probes(self, probe_id: str, probes: dict) -> None:
        self._probes.save(probe_id, probes)

    def load_binarization(self, binarization_id: str) -> dict | None:
        return self._binarization.load(binarization_id)

    def all_binarizations(self) -> list[dict]:
        return self._binarization.all()

    def save_binarization(self, binarization_id: str, result: dict) -> None:
        self._binarization.save(binarization_id, result)

    def verify_weights(self) -> None:
        """Hash every model's weights (opening the store checks only the JSON and CSV files; weights
        are checked whenever a model is loaded): `bench store verify`."""
        for spec in self.models():
            mid = spec["model_id"]
            if not isinstance(spec.get("key"), dict):
                self.problems[f"model:{mid}"] = CorruptArtifact("model", mid, NO_KEY, self.models_dir / mid)
                continue
            path = self.models_dir / mid / "model.safetensors"
            if not path.is_file() or sha256_file(path) != spec["integrity"]["files"]["model.safetensors"]:
                self.problems[f"model:{mid}"] = CorruptArtifact(
                    "model", mid, "model.safetensors differs from the hash in spec.json", path.parent)

    # --- legacy ------------------------------------------------------------------------------
    def seal_legacy(self) -> int:
        """Add content hashes to artifacts written before they existed (trusting their current
        content). Returns how many were sealed."""
        def seal_file(path: Path, files: dict[str, Path]) -> int:
            data = read_bytes(path)
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

