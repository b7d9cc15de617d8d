"""Defensive distillation (Papernot, McDaniel, Wu, Jha, Swami 2016).

The teacher is trained at temperature T on the hard labels; the student, same architecture, is
trained at the same T on the teacher's soft labels softmax(z_teacher / T); the student is deployed
at T = 1. At T = 1 its logits are ~T times larger than a normal net's, softmax saturates, and the
gradients of cross-entropy vanish: attacks that use them (JSMA on softmax, FGSM/PGD on CE) fail,
while logit-based attacks (Carlini & Wagner 2016) do not.
"""
from __future__ import annotations

from dataclasses import dataclass

from defenses.base import Defense, Requirement, TrainContext, TrainingConfig, positive
from defenses.kd import soft_cross_entropy, soft_labels


class DefensiveDistillation(Defense):
    """Teacher at T → student on its soft labels at T → deployed at T = 1."""

    name = "defensive-distillation"
    description = "Papernot 2016: student trained on the teacher's soft labels at temperature T, deployed at T=1"

    @dataclass(frozen=True)
    class Config(TrainingConfig):
        """Optimisation: see TrainingConfig (Papernot et al. 2016, Table 2, with Adam; why there),
        shared by teacher and student. T = 100, the temperature of the paper's strongest result
        (JSMA success 95.89% → 0.45% on MNIST, §5.B, Fig. 9)."""

        temperature: float = 100.0

        def __post_init__(self):
            super().__post_init__()
            positive(self.temperature, "temperature")

    def requires(self, cfg: Config):
        # The teacher is `vanilla` trained at T with the same optimisation settings: its own DAG
        # node, shared with any other defense (e.g. the first link of a TA chain) that needs it.
        return [Requirement("teacher", "vanilla", {**cfg.training_fields(), "temperature": cfg.temperature})]

    def train(self, cfg: Config, ctx: TrainContext, upstream):
        teacher_probs = soft_labels(upstream["teacher"], ctx.dataset.x_train, cfg.temperature, ctx.device)
        student = ctx.create_model()

        def loss_fn(m, x, y, probs):
            logits = m(x)
            return soft_cross_entropy(logits, probs, cfg.temperature), logits

        return ctx.fit(student, loss_fn, cfg.optim(), extra=teacher_probs)

    def label(self, cfg: Config) -> str:
        base = super().label(cfg)
        return base if "temperature" in base else f"{self.name} (T={cfg.temperature:g})"
