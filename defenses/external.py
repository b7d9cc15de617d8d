"""A model trained outside distill-bench and audited by it (`bench audit`, `distill_bench.audit`).

Not a training recipe: it names where an audited model came from, so that the model is a row of
the leaderboard like any other, marked external, with its provenance (how it was loaded, the file
or factory, the SHA-256 of its weights). Its model id hashes the weights and the code of the
module's class, so the same checkpoint is attacked once per store and an edited one again."""
from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import BenchInputError
from defenses.base import Defense


class External(Defense):
    """A model audited from outside (a checkpoint, a factory, a module, a model zoo)."""

    name = "external"
    description = "a model trained outside distill-bench, audited with `bench audit` (never trained here)"
    in_all = False  # `--defense all` trains; an external model cannot be

    @dataclass(frozen=True)
    class Config:
        """source: how it was loaded (checkpoint, factory, module, robustbench); origin: the file
        name, the `package.module:factory` path, the module's class or the zoo name; weights_sha256:
        the SHA-256 of its state dict as safetensors; name: the row label."""

        source: str = "module"
        origin: str = ""
        weights_sha256: str = ""
        name: str = ""

    def train(self, cfg, ctx, upstream):
        raise BenchInputError("an external model is audited, not trained: use `bench audit` or distill_bench.audit()")

    def label(self, cfg) -> str:
        return f"external: {cfg.name or cfg.origin or cfg.source}"
