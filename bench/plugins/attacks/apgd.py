"""One APGD component of AutoAttack (Croce & Hein 2020), from `pyautoattack`: APGD on
cross-entropy, on the DLR loss, or targeted DLR (APGD-T), with restarts and EOT iterations.

In the adaptive stage (bench/assess/remedies.py): APGD-T is the logit-margin attack that breaks a saturated
softmax (its DLR loss is invariant to the logits' scale); APGD-CE/DLR with `eot_iter` > 1 average
gradients over random draws (AutoAttack's `rand` version) for randomized defenses. The component
runs through pyautoattack's own `AutoAttack(version="custom")`, so its algorithms are the original.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from bench.plugins.attacks.autoattack import LogCollector
from bench.plugins.attacks.base import Attack
from bench.core.errors import BenchInputError

COMPONENTS = ("apgd-ce", "apgd-dlr", "apgd-t")


class APGD(Attack):
    """A single APGD component of AutoAttack (pyautoattack)."""

    name = "apgd"
    description = "one AutoAttack component: APGD-CE, APGD-DLR or APGD-T (targeted DLR), restarts, EOT (pyautoattack)"
    norms = frozenset({"linf", "l2"})
    role = "gradient"
    loss = "margin"
    library = "pyautoattack"
    in_all = False  # AutoAttack already runs APGD-CE and APGD-T; alone, it is an adaptive-stage attack

    @dataclass(frozen=True)
    class Config:
        """AutoAttack's settings for the component (100 iterations; APGD-T over 9 target classes);
        `restarts` and `eot_iter` (gradient averaged over random draws) as AutoAttack's 'rand'
        version uses them (eot_iter 20)."""

        component: str = "apgd-t"
        restarts: int = 1
        iterations: int = 100
        eot_iter: int = 1

        def __post_init__(self):
            if self.component not in COMPONENTS:
                raise BenchInputError(f"apgd component {self.component!r} unknown; allowed: {', '.join(COMPONENTS)}")
            if self.restarts < 1 or self.iterations < 1 or self.eot_iter < 1:
                raise BenchInputError(f"apgd needs restarts, iterations and eot_iter >= 1; got {self}")

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.notes: list[str] = []

    @classmethod
    def loss_for(cls, config: dict) -> str:
        return "ce" if config.get("component", "apgd-t") == "apgd-ce" else "margin"

    def run(self, model, x, y, *, budget, num_classes, generator):
        from pyautoattack import AutoAttack

        cfg = self.cfg
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        attack = AutoAttack(model, norm="Linf" if budget.norm == "linf" else "L2", eps=budget.eps,
                            version="custom", attacks=[cfg.component], device=x.device, seed=seed)
        for component in (attack.apgd, attack.apgd_targeted):
            component.n_iter, component.eot_iter = cfg.iterations, cfg.eot_iter
        attack.apgd.n_restarts = cfg.restarts
        attack.apgd_targeted.n_restarts = cfg.restarts
        attack.apgd_targeted.n_target_classes = min(9, num_classes - 1)
        logger = logging.getLogger("auto-attack")
        handler = LogCollector()
        logger.addHandler(handler)
        try:
            x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=len(x))
        finally:
            logger.removeHandler(handler)
        self.notes.extend(m for m in handler.messages if m not in self.notes)
        return x_adv.detach()
