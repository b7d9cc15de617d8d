"""An example distill-bench defense from outside the project: label smoothing.

Label smoothing (Szegedy et al. 2016) softens one-hot targets; it is sometimes reported to add
robustness, which a worst-case evaluation shows to be mostly gradient masking. Install this
package (`pip install examples/acme-defenses`) and `bench list defenses` shows it.
"""
from dataclasses import dataclass

import torch.nn.functional as F

from defenses.base import Defense, TrainingConfig


class LabelSmoothing(Defense):
    """Cross-entropy against labels smoothed towards uniform."""

    name = "label-smoothing"
    description = "cross-entropy with label smoothing (example third-party plugin)"

    @dataclass(frozen=True)
    class Config(TrainingConfig):
        """smoothing 0.1: Szegedy et al. 2016, §7. Optimisation: distill-bench's TrainingConfig."""

        smoothing: float = 0.1

    def train(self, cfg, ctx, upstream):
        model = ctx.create_model()  # normalization inside; the store rebuilds it from its arch

        def loss_fn(m, x, y):
            logits = m(x)
            return F.cross_entropy(logits, y, label_smoothing=cfg.smoothing), logits

        return ctx.fit(model, loss_fn, cfg.optim())
