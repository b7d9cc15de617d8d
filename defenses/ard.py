"""Adversarially Robust Distillation, ARD (Goldblum, Fowl, Feizi, Goldstein 2020).

A robust teacher (by default this run's `adversarial-training` model) is distilled into a student
that is attacked during training:
    α · T² · KL(softmax(T(x)/T) ‖ softmax(S(x_adv)/T)) + (1 − α) · CE(S(x), y),
where x_adv is PGD on the student's own cross-entropy. The KL uses batch-mean reduction: the
reference code's `KLDivLoss()` averages over classes too, dividing the distillation term by the
number of classes (a known defect that only rescales it).

Fast ARD (`--set inner=free`): the paper "adapts recent fast adversarial training methods to ARD
for accelerated robust distillation" — the "free" adversarial training of Shafahi et al. 2019:
each batch is replayed `replays` times; one backward pass gives both the weights' gradient and
the perturbation's, δ ← clip_ε(δ + ε·sign(∇_δ loss)) after each replay, and δ is carried over to
the next batch. The cost of an epoch is `replays` backward passes per batch instead of PGD's
steps + 1, so `epochs / replays` free epochs cost what `epochs / (steps + 1)` PGD epochs do.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from defenses.base import (ADAM_50, MNIST_5K_DATA, NO_DROPOUT, ROBUST_MNIST_5K, SELECTION, Defense, PaperCard,
                           TrainContext, TrainingConfig, positive, unit_interval)
from defenses.kd import kd_kl
from defenses.perturb import ARD, BudgetConfig, LinfPGD, eval_logits, larger_robust_teacher, robust_schedule


class AdversariallyRobustDistillation(Defense):
    """ARD: a robust teacher's soft labels on clean inputs, matched by the student on PGD inputs."""

    name = "ard"
    description = "Goldblum et al. 2020: student matches a robust teacher's soft labels on its own PGD examples"
    card = PaperCard(
        paper="Goldblum, Fowl, Feizi, Goldstein 2020, Adversarially Robust Distillation (AAAI); reference code "
              "github.com/goldblum/AdversariallyRobustDistillation",
        recipe="CIFAR-10: a robust teacher (adversarially trained WRN / ResNet) distilled into a smaller student "
               "(MobileNetV2, ResNet-18); T 30, α 1, inner PGD on the student's CE, 10 steps of 2/255 at ε 8/255 "
               "from a random start; SGD 0.1, 200 epochs; Fast-ARD replays each batch ('free' adversarial training)",
        reported=(("CIFAR-10 ResNet-18 student, AutoAttack (as tabulated by RSLAD / IGDM)", "49.5%"),
                  ("claim", "ARD students are more robust than adversarial training of the same architecture")),
        departures=(MNIST_5K_DATA, ADAM_50, ROBUST_MNIST_5K, SELECTION,
                    "teacher: adversarial-training on papernot-mnist-wide (twice the width), student papernot-mnist — "
                    "the paper's larger-teacher setting at MNIST scale", NO_DROPOUT))

    @dataclass(frozen=True)
    class Config(TrainingConfig, BudgetConfig):
        """Goldblum et al. 2020, §4 and reference code: T = 30, α = 1, inner PGD on the student's CE
        with random start, CIFAR ε 8/255 with 10 steps of 2/255 (None = that per-dataset value; MNIST,
        not in the paper, uses Madry's 0.3 / 40 / 0.01). teacher: any registered defense, trained as
        its own node with its defaults and this config's explicit budget (default `adversarial-training`); teacher_arch: empty = the
        run architecture's larger twin (bench.plugins.archs.larger_arch: papernot-mnist → papernot-mnist-wide), since
        the paper distils a larger robust teacher (WRN, ResNet-18) into a smaller student (MobileNetV2, ResNet-18);
        `--set teacher_arch=papernot-mnist` gives self-distillation.
        Optimisation: see TrainingConfig."""

        schedule: str = "multistep"
        temperature: float = 30.0
        alpha: float = 1.0
        teacher: str = "adversarial-training"
        teacher_arch: str = ""
        inner: str = "pgd"
        replays: int = 4

        def __post_init__(self):
            from bench.core.errors import BenchInputError

            super().__post_init__()
            positive(self.temperature, "temperature")
            unit_interval(self.alpha, "alpha")
            if self.inner not in ("pgd", "free"):
                raise BenchInputError(f"ard inner {self.inner!r} unknown; allowed: pgd, free (fast ARD)")
            positive(self.replays, "replays")

    def requires(self, cfg: Config):
        return larger_robust_teacher(cfg)

    def train(self, cfg: Config, ctx: TrainContext, upstream):
        teacher = upstream["teacher"].eval()
        pgd = LinfPGD.resolve(cfg, ctx.dataset, ARD, start="uniform")
        ramp, fit_options = robust_schedule(cfg, ctx, pgd)
        student = ctx.create_model()
        free = {"delta": None, "leaf": None}  # fast ARD: the perturbation carried between replays and batches

        def free_example(x):
            """x + δ, with δ first advanced by the gradient the previous replay's backward left."""
            delta, leaf = free["delta"], free["leaf"]
            if delta is None or delta.shape != x.shape:
                delta = torch.zeros_like(x)
            elif leaf is not None and leaf.grad is not None:
                eps = ramp.pgd.eps
                delta = (delta + eps * leaf.grad.sign()).clamp(-eps, eps)
            free["delta"] = delta = ((x + delta).clamp(0, 1) - x).detach()
            free["leaf"] = leaf = (x + delta).requires_grad_(True)
            return leaf

        def loss_fn(m, x, y):
            if cfg.inner == "free":
                x_adv = free_example(x)
            else:
                x_adv = ramp.next().perturb(m, x, lambda logits: F.cross_entropy(logits, y))
            teacher_logits = eval_logits(teacher, x)
            adv_logits = m(x_adv)
            loss = cfg.alpha * kd_kl(adv_logits, teacher_logits, cfg.temperature)
            if cfg.alpha < 1:
                natural = m(x)
                loss = loss + (1 - cfg.alpha) * F.cross_entropy(natural, y)
            return loss, adv_logits

        replays = cfg.replays if cfg.inner == "free" else 1
        return ctx.fit(student, loss_fn, cfg.optim(), replays=replays, **fit_options)
