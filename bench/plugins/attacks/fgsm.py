"""FGSM (Goodfellow et al. 2015) from torchattacks: one signed-gradient step of size ε on
cross-entropy. In the suite as a masking check: a single step must never beat iterated PGD."""
from __future__ import annotations

from bench.plugins.attacks.base import Attack, model_device, seeded_global_rng


class FGSM(Attack):
    """Fast gradient sign method, one L∞ step of size ε on cross-entropy (torchattacks)."""

    name = "fgsm"
    description = "one signed-gradient step on cross-entropy (torchattacks FGSM); masking check vs PGD"
    norms = frozenset({"linf"})
    role = "gradient"
    loss = "ce"
    single_step = True
    library = "torchattacks"

    def run(self, model, x, y, *, budget, num_classes, generator):
        import torchattacks

        with seeded_global_rng(generator, model_device(model)):
            return torchattacks.FGSM(model, eps=budget.eps)(x, y)
