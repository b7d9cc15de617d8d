"""Folders of sealed JSON measurements: one file per id, verified when read, written atomically.

The model probes (`probes/<probe_id>.json`) and the binarization tests
(`binarization/<binarization_id>.json`) are this kind of artifact: cheap to recompute, so a
corrupt or edited file is recorded as a problem (`bench store verify` reports it) and treated as
absent, and the next run remakes it.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.core.files import write_json_atomic
from bench.store.index import read_bytes
from bench.store.integrity import CorruptArtifact, _check_content, seal


class SealedJsonFolder:
    def __init__(self, folder: Path, kind: str, id_field: str, problems: dict):
        self.folder, self.kind, self.id_field, self.problems = folder, kind, id_field, problems
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, artifact_id: str) -> Path:
        from bench.store.records import check_id

        return self.folder / f"{check_id(artifact_id, f'{self.kind} id')}.json"

    def load(self, artifact_id: str) -> dict | None:
        """The artifact, or None when absent or corrupt (then recorded in `problems`)."""
        path = self.path(artifact_id)
        data = read_bytes(path)
        if data is None:
            return None
        try:
            obj = json.loads(data)
        except ValueError:
            obj = None
        if _check_content(obj, self.kind, self.id_field, artifact_id) is not None:
            self.problems[f"{self.kind}:{artifact_id}"] = CorruptArtifact(self.kind, artifact_id,
                                                                          "content hash mismatch", path)
            return None
        return obj

    def all(self) -> list[dict]:
        from bench.store.records import valid_id

        found = []
        for path in sorted(self.folder.glob("*.json")):
            obj = self.load(path.stem) if valid_id(path.stem) else None
            if obj is not None:
                found.append(obj)
        return found

    def save(self, artifact_id: str, obj: dict) -> None:
        write_json_atomic(self.path(artifact_id), seal(obj, {}))
