"""Multi-step defensive distillation (Mandal & Guo, arXiv 2305.08076).

Defensive distillation repeated: step 1 is `defensive-distillation` itself (the same DAG node:
vanilla at T → student), and step k distils step k − 1's model on its soft labels at T, the
student of each step deployed at T = 1. Each step is its own node, so `steps=6` reuses steps 1-5.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import BenchInputError
from defenses.base import Requirement
from defenses.distillation import DefensiveDistillation


class MultiStepDistillation(DefensiveDistillation):
    """Defensive distillation repeated `steps` times, each step distilling the previous one at T."""

    name = "multi-step"
    description = "defensive distillation repeated n times, each step a node (Mandal & Guo 2023)"

    @dataclass(frozen=True)
    class Config(DefensiveDistillation.Config):
        """steps: successive distillations (default 3; Mandal & Guo go up to 6); step 1 is
        defensive distillation. T and optimisation as in DefensiveDistillation.Config."""

        steps: int = 3

        def __post_init__(self):
            super().__post_init__()
            if not 2 <= self.steps <= 20:
                raise BenchInputError(f"steps must be in 2..20 (steps=1 is `defensive-distillation`), got {self.steps}")

    def requires(self, cfg: Config):
        previous = {**cfg.training_fields(), "temperature": cfg.temperature}
        if cfg.steps == 2:
            return [Requirement("teacher", "defensive-distillation", previous)]
        return [Requirement("teacher", self.name, {**previous, "steps": cfg.steps - 1})]

    def label(self, cfg: Config) -> str:
        return f"{self.name} ({cfg.steps} steps, T={cfg.temperature:g})"
