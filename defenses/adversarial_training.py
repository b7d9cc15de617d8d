"""PGD adversarial training (Madry, Makelov, Schmidt, Tsipras, Vladu 2018).

min_θ E[max_{‖δ‖∞ ≤ ε} CE(f_θ(x + δ), y)]: every training batch is replaced by its PGD
adversarial examples (random start in the ball, signed-gradient steps, projection). The baseline
that ARD's robust teacher and most robust-distillation work start from.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from defenses.base import (ADAM_50, MNIST_5K_DATA, NO_DROPOUT, ROBUST_MNIST_5K, SELECTION, Defense, PaperCard,
                           TrainContext, TrainingConfig)
from defenses.perturb import MADRY, BudgetConfig, LinfPGD, robust_schedule


class AdversarialTraining(Defense):
    """PGD adversarial training on the worst case in the L∞ ball (Madry et al. 2018)."""

    name = "adversarial-training"
    description = "Madry et al. 2018 PGD adversarial training (L∞, random start)"
    card = PaperCard(
        paper="Madry, Makelov, Schmidt, Tsipras, Vladu 2018, Towards Deep Learning Models Resistant to Adversarial "
              "Attacks (ICLR)",
        recipe="MNIST: ε 0.3, PGD 40 steps of 0.01 from a random start, 100,000 iterations of batch 50, Adam 1e-4, "
               "a conv32-conv64 (5x5) / FC1024 network; CIFAR-10: ε 8/255, 7 steps of 2/255, WRN-34-10, SGD",
        reported=(("MNIST ε 0.3, strongest white-box attack (their Table 1)", "89.3%"),
                  ("MNIST ε 0.3, AutoAttack (Croce & Hein 2020)", "about 88%"),
                  ("CIFAR-10 ε 8/255, AutoAttack (Croce & Hein 2020)", "about 44%")),
        departures=(MNIST_5K_DATA, ADAM_50, ROBUST_MNIST_5K, SELECTION,
                    "architecture: papernot-mnist (conv32-32-64-64, FC200-200), smaller than Madry's; capacity "
                    "matters at ε 0.3 (their §4)", NO_DROPOUT))

    @dataclass(frozen=True)
    class Config(TrainingConfig, BudgetConfig):
        """Budget (None = the paper's value for the dataset): Madry et al. 2018 §5, MNIST ε 0.3 with
        40 steps of 0.01, CIFAR-10 ε 8/255 with 7 steps of 2/255, random start.
        Optimisation: see TrainingConfig (Adam 1e-3, batch 128, 50 epochs; Madry trained MNIST with
        Adam 1e-4 for 100k iterations and CIFAR with SGD; `--set` restores either)."""

        schedule: str = "multistep"

    def train(self, cfg: Config, ctx: TrainContext, upstream):
        pgd = LinfPGD.resolve(cfg, ctx.dataset, MADRY, start="uniform")
        ramp, fit_options = robust_schedule(cfg, ctx, pgd)
        model = ctx.create_model()

        def loss_fn(m, x, y):
            x_adv = ramp.next().perturb(m, x, lambda logits: F.cross_entropy(logits, y))
            logits = m(x_adv)
            return F.cross_entropy(logits, y), logits

        return ctx.fit(model, loss_fn, cfg.optim(), **fit_options)
