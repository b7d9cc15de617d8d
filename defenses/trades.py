"""TRADES (Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan 2019).

min_θ E[CE(f(x), y) + β · max_{‖x'−x‖∞ ≤ ε} KL(f(x) ‖ f(x'))]: natural accuracy plus a
boundary term that makes predictions stable in the ball. The inner maximization starts at
x + 0.001·N(0, I) and ascends the KL, as in the reference code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from defenses.base import (ADAM_50, MNIST_5K_DATA, NO_DROPOUT, ROBUST_MNIST_5K, SELECTION, Defense, PaperCard,
                           TrainContext, TrainingConfig, positive)
from defenses.perturb import TRADES, TRADES_BETA, BudgetConfig, LinfPGD, eval_logits, robust_schedule


def trades_kl(adv_logits, natural_logits):
    """KL(f(x) ‖ f(x')) with batch-mean reduction (the reference sums, then divides by the batch)."""
    return F.kl_div(F.log_softmax(adv_logits, dim=1), F.log_softmax(natural_logits, dim=1),
                    reduction="batchmean", log_target=True)


class Trades(Defense):
    """TRADES: cross-entropy + β · KL(f(x) ‖ f(x_adv)) (Zhang et al. 2019)."""

    name = "trades"
    description = "Zhang et al. 2019: CE(f(x), y) + beta * KL(f(x) || f(x_adv)), inner max on the KL"
    card = PaperCard(
        paper="Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan 2019, Theoretically Principled Trade-off between Robustness "
              "and Accuracy (ICML); reference code github.com/yaodongyu/TRADES",
        recipe="MNIST (train_trades_mnist.py): ε 0.3, 40 steps of 0.01 on the KL from x + 0.001·N(0, 1), β 1, SGD "
               "0.01 momentum 0.9, 100 epochs, batch 128, SmallCNN (conv32-32-64-64, FC200-200, as papernot-mnist); "
               "CIFAR-10: ε 0.031, 10 steps of 0.007, β 6, WRN-34-10",
        reported=(("MNIST ε 0.3, 40-step PGD (their Table 5)", "about 96%"),
                  ("CIFAR-10 ε 8/255, AutoAttack (RobustBench, WRN-34-10)", "53.1%")),
        departures=(MNIST_5K_DATA, ADAM_50, ROBUST_MNIST_5K, SELECTION, NO_DROPOUT))

    @dataclass(frozen=True)
    class Config(TrainingConfig, BudgetConfig):
        """Budget (None = the paper's value for the dataset), from the reference scripts
        train_trades_mnist.py (ε 0.3, 40 steps of 0.01, β 1) and train_trades_cifar10.py (ε 0.031,
        10 steps of 0.007, β 6). beta None = that per-dataset value.
        Optimisation: see TrainingConfig (Adam 1e-3, batch 128, 50 epochs)."""

        schedule: str = "multistep"
        beta: float | None = None

        def __post_init__(self):
            super().__post_init__()
            if self.beta is not None:
                positive(self.beta, "beta")

    def train(self, cfg: Config, ctx: TrainContext, upstream):
        family = ctx.dataset.family
        pgd = LinfPGD.resolve(cfg, ctx.dataset, TRADES, start="normal")
        ramp, fit_options = robust_schedule(cfg, ctx, pgd)
        beta = cfg.beta if cfg.beta is not None else TRADES_BETA[family]
        model = ctx.create_model()

        def loss_fn(m, x, y):
            natural_target = eval_logits(m, x)  # the inner max treats f(x) as fixed
            x_adv = ramp.next().perturb(m, x, lambda logits: trades_kl(logits, natural_target))
            logits = m(x)
            loss = F.cross_entropy(logits, y) + beta * trades_kl(m(x_adv), logits)
            return loss, logits

        return ctx.fit(model, loss_fn, cfg.optim(), **fit_options)
