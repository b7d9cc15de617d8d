"""The store's verified readers: every spec, record and per-example file is checked against
its content hashes (bench/store/integrity.py) before it is used; a mismatch is a CorruptArtifact."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.files import sha256_bytes
from bench.store.integrity import CorruptArtifact, _check_content

PER_EXAMPLE_COLUMNS = ("index", "label", "clean_pred", "adv_pred", "clean_correct", "adv_correct")


class VerifiedReads:
    """The verification half of `Store` (bench/store/artifacts.py)."""

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
