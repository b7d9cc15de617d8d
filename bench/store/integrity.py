"""What makes a stored artifact trustworthy: its content hashes (`seal`), the checks of a JSON
artifact against its folder, its own hash and its key (`_check_content`), and the error a failed
check raises (`CorruptArtifact`). The store (bench/store/artifacts.py) applies them on every read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core.errors import BenchInputError
from bench.core.files import sha256_bytes, sha256_file


MISNAMED = "differs from its folder name"


class CorruptArtifact(BenchInputError):
    """An artifact whose content does not match its recorded hashes, id or shape."""

    def __init__(self, kind: str, artifact_id: str, why: str, folder: Path):
        self.kind, self.artifact_id, self.why = kind, artifact_id, why
        # a renamed folder holds another id's artifact: `bench run` computes that id under its own name,
        # and nothing ever writes this folder again
        remedy = ("nothing recomputes a folder under another name: delete it" if MISNAMED in why
                  else "`bench run` recomputes it, or delete")
        super().__init__(f"{kind} {artifact_id} is corrupt ({why}); it is never used: {remedy} {folder}")


# --- integrity of one artifact -----------------------------------------------------------------
def _content_sha(obj: dict) -> str:
    from bench.core.specs import canonical_json

    return sha256_bytes(canonical_json({k: v for k, v in obj.items() if k != "integrity"}).encode())


def seal(obj: dict, files: dict[str, bytes | Path]) -> dict:
    """`obj` with its `integrity` block: the hash of its content and of each file beside it."""
    hashes = {name: sha256_bytes(data) if isinstance(data, bytes) else sha256_file(data)
              for name, data in sorted(files.items())}
    return {**obj, "integrity": {"algorithm": "sha256", "content": _content_sha(obj), "files": hashes}}


def _check_content(obj: Any, kind: str, id_field: str, folder_id: str) -> str | None:
    """Why the JSON of an artifact cannot be trusted, or None."""
    from bench.core.specs import content_hash

    if not isinstance(obj, dict):
        return "not a JSON object"
    if obj.get(id_field) != folder_id:
        return f"its {id_field} {obj.get(id_field)!r} {MISNAMED}"
    integrity = obj.get("integrity")
    if not isinstance(integrity, dict) or not isinstance(integrity.get("files"), dict):
        return "no content hashes (written by an older version: `bench store seal` adds them)"
    if integrity.get("content") != _content_sha(obj):
        return "its content differs from its recorded hash (edited by hand?)"
    key = obj.get("key")
    if key is not None and content_hash(key) != folder_id:
        return "its id is not the hash of its recorded key"
    if kind == "model" and isinstance(key, dict):  # a model is rebuilt from these: each must be the one its id hashes
        changed = [f for f in MODEL_KEY_FIELDS if key.get(f) != obj.get(f)]
        if changed:
            return f"its {', '.join(changed)} differ(s) from the key its id is the hash of"
    return None


MODEL_KEY_FIELDS = ("defense", "config", "arch", "dataset", "seed", "upstream")
NO_KEY = "no key: nothing ties its id to the fields it is rebuilt from"
