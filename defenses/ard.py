"""Adversarially Robust Distillation, ARD (Goldblum, Fowl, Feizi, Goldstein 2020).

A robust teacher (by default this run's `adversarial-training` model) is distilled into a student
that is attacked during training:
    α · T² · KL(softmax(T(x)/T) ‖ softmax(S(x_adv)/T)) + (1 − α) · CE(S(x), y),
where x_adv is PGD on the student's own cross-entropy. The KL uses batch-mean reduction: the
reference code's `KLDivLoss()` averages over classes too, dividing the distillation term by the
number of classes (a known defect that only rescales it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from defenses.base import Defense, Requirement, TrainContext, TrainingConfig, positive, unit_interval
from defenses.kd import kd_kl
from defenses.perturb import ARD, BudgetConfig, LinfPGD, eval_logits, teacher_budget


class AdversariallyRobustDistillation(Defense):
    """ARD: a robust teacher's soft labels on clean inputs, matched by the student on PGD inputs."""

    name = "ard"
    description = "Goldblum et al. 2020: student matches a robust teacher's soft labels on its own PGD examples"

    @dataclass(frozen=True)
    class Config(TrainingConfig, BudgetConfig):
        """Goldblum et al. 2020, §4 and reference code: T = 30, α = 1, inner PGD on the student's CE
        with random start, CIFAR ε 8/255 with 10 steps of 2/255 (None = that per-dataset value; MNIST,
        not in the paper, uses Madry's 0.3 / 40 / 0.01). teacher: any registered defense, trained as
        its own node with its defaults and this config's explicit budget (default `adversarial-training`); teacher_arch: empty = the
        run's architecture (the paper distils e.g. a WRN/ResNet-18 teacher into MobileNetV2).
        Optimisation: see TrainingConfig."""

        temperature: float = 30.0
        alpha: float = 1.0
        teacher: str = "adversarial-training"
        teacher_arch: str = ""

        def __post_init__(self):
            super().__post_init__()
            positive(self.temperature, "temperature")
            unit_interval(self.alpha, "alpha")

    def requires(self, cfg: Config):
        return [Requirement("teacher", cfg.teacher, teacher_budget(cfg, cfg.teacher), arch=cfg.teacher_arch or None)]

    def train(self, cfg: Config, ctx: TrainContext, upstream):
        teacher = upstream["teacher"].eval()
        pgd = LinfPGD.resolve(cfg, ctx.dataset.family, ARD, start="uniform")
        student = ctx.create_model()

        def loss_fn(m, x, y):
            x_adv = pgd.perturb(m, x, lambda logits: F.cross_entropy(logits, y))
            teacher_logits = eval_logits(teacher, x)
            adv_logits = m(x_adv)
            loss = cfg.alpha * kd_kl(adv_logits, teacher_logits, cfg.temperature)
            if cfg.alpha < 1:
                natural = m(x)
                loss = loss + (1 - cfg.alpha) * F.cross_entropy(natural, y)
            return loss, adv_logits

        return ctx.fit(student, loss_fn, cfg.optim())
