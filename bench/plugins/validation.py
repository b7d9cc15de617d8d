"""Robust accuracy on the validation split during training, with attacks the model cannot mask.

The training curve (bench/plugins/training.py) and early stopping (Rice et al. 2020, robust
overfitting) need a robust accuracy each few epochs. Measuring it with the training attack is the
trap this harness exists to catch: fast (FGSM) adversarial training looks 90% robust to FGSM and
to a weak PGD while AutoAttack leaves 7% (catastrophic overfitting, Wong et al. 2020;
Andriushchenko & Flammarion 2020). So the validation attack is AutoAttack's own pair, from
`pyautoattack` (the original algorithms): APGD-CE, then APGD-T (targeted DLR, invariant to the
logits' scale) on the examples APGD-CE left — shortened for cost (`iterations` per run, the
`targets` most likely wrong classes). Its accuracy is an upper bound like any attack's; the test
split's full evaluation is the number that is ranked.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ValidationAttack:
    """APGD-CE then APGD-T at (norm, eps), `iterations` each, APGD-T over `targets` classes."""

    norm: str
    eps: float
    iterations: int = 20
    targets: int = 3

    def describe(self) -> str:
        return (f"APGD-CE then APGD-T ({self.targets} target classes), {self.iterations} iterations each, "
                f"{self.norm} ε {self.eps:g} (pyautoattack)")

    def robust_correct(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int,
                       num_classes: int) -> torch.Tensor:
        """Per example: still correctly classified after both attacks (False where clean is wrong)."""
        from pyautoattack import AutoAttack

        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                correct = model(x).argmax(1) == y
            logger = logging.getLogger("auto-attack")
            level = logger.level
            logger.setLevel(logging.ERROR)  # its progress lines would flood every epoch's output
            try:
                for component in ("apgd-ce", "apgd-t"):
                    idx = correct.nonzero().squeeze(1)
                    if len(idx) == 0:
                        break
                    attack = AutoAttack(model, norm="Linf" if self.norm == "linf" else "L2", eps=self.eps,
                                        version="custom", attacks=[component], device=x.device, seed=seed)
                    attack.apgd.n_iter = attack.apgd_targeted.n_iter = self.iterations
                    attack.apgd_targeted.n_target_classes = min(self.targets, num_classes - 1)
                    adv, _ = attack.run_standard_evaluation(x[idx], y[idx], batch_size=len(idx))
                    with torch.no_grad():
                        correct[idx] = model(adv).argmax(1) == y[idx]
            finally:
                logger.setLevel(level)
        finally:
            model.train(was_training)
        return correct
