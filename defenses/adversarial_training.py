"""PGD adversarial training (Madry, Makelov, Schmidt, Tsipras, Vladu 2018).

min_θ E[max_{‖δ‖∞ ≤ ε} CE(f_θ(x + δ), y)]: every training batch is replaced by its PGD
adversarial examples (random start in the ball, signed-gradient steps, projection). The baseline
that ARD's robust teacher and most robust-distillation work start from.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from defenses.base import Defense, TrainContext, TrainingConfig
from defenses.perturb import MADRY, BudgetConfig, LinfPGD


class AdversarialTraining(Defense):
    """PGD adversarial training on the worst case in the L∞ ball (Madry et al. 2018)."""

    name = "adversarial-training"
    description = "Madry et al. 2018 PGD adversarial training (L∞, random start)"

    @dataclass(frozen=True)
    class Config(TrainingConfig, BudgetConfig):
        """Budget (None = the paper's value for the dataset): Madry et al. 2018 §5, MNIST ε 0.3 with
        40 steps of 0.01, CIFAR-10 ε 8/255 with 7 steps of 2/255, random start.
        Optimisation: see TrainingConfig (Adam 1e-3, batch 128, 50 epochs; Madry trained MNIST with
        Adam 1e-4 for 100k iterations and CIFAR with SGD; `--set` restores either)."""

    def train(self, cfg: Config, ctx: TrainContext, upstream):
        pgd = LinfPGD.resolve(cfg, ctx.dataset.family, MADRY, start="uniform")
        model = ctx.create_model()

        def loss_fn(m, x, y):
            x_adv = pgd.perturb(m, x, lambda logits: F.cross_entropy(logits, y))
            logits = m(x_adv)
            return F.cross_entropy(logits, y), logits

        return ctx.fit(model, loss_fn, cfg.optim())
