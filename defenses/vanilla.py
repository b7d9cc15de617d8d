"""Plain training: cross-entropy on softmax(z / T). T = 1 is the undefended baseline; T > 1 is
the teacher of defensive distillation (Papernot et al. 2016, §4: the teacher is trained at T)."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from defenses.base import Defense, TrainContext, TrainingConfig, positive


class Vanilla(Defense):
    """Standard training with cross-entropy (at temperature T, deployed at T = 1)."""

    name = "vanilla"
    description = "standard cross-entropy training (optionally at temperature T); the undefended baseline"

    @dataclass(frozen=True)
    class Config(TrainingConfig):
        """Optimisation: see TrainingConfig (Papernot et al. 2016, Table 2, with Adam; why there).
        temperature: 1 (plain softmax); the distillation teacher sets it to the distillation T."""

        temperature: float = 1.0

        def __post_init__(self):
            super().__post_init__()
            positive(self.temperature, "temperature")

    def train(self, cfg: Config, ctx: TrainContext, upstream):
        model = ctx.create_model()

        def loss_fn(m, x, y):
            logits = m(x)
            return F.cross_entropy(logits / cfg.temperature, y), logits

        return ctx.fit(model, loss_fn, cfg.optim())
