"""AutoAttack "standard" (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T, Square, from `pyautoattack`.

PyPI's `pyautoattack` carries the original algorithms (100 APGD iterations, 9 target classes,
5,000 Square queries), unlike torchattacks' AutoAttack, which runs 10 iterations. Its API differs
from the GitHub version: keyword-only constructor, `run_standard_evaluation(x, y, batch_size=...)`
returns `(x_adv, y_adv)`, and progress and its own sanity checks go to the `auto-attack` logger.
We capture that logger's warnings (randomized defense, non-logit outputs, zero gradients, Square
beating the gradient attacks) into the record: they are evidence for the masking diagnostics.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from bench.attacks.base import Attack
from bench.errors import BenchInputError


class LogCollector(logging.Handler):
    """Keeps the warnings pyautoattack's `auto-attack` logger emits (its sanity checks)."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


class AutoAttackStandard(Attack):
    """AutoAttack standard ensemble (APGD-CE, APGD-T, FAB-T, Square) from pyautoattack."""

    name = "autoattack"
    description = "AutoAttack standard: APGD-CE, APGD-T, FAB-T, Square (pyautoattack, original algorithms)"
    norms = frozenset({"linf", "l2"})
    role = "ensemble"
    loss = "mixed"
    library = "pyautoattack"

    @dataclass(frozen=True)
    class Config:
        """version 'standard' is the RobustBench reference evaluation; 'rand' is for randomized
        defenses. Nothing else is tuned: AutoAttack is parameter-free by design."""

        version: str = "standard"

        def __post_init__(self):
            if self.version not in ("standard", "rand", "plus"):
                raise BenchInputError(f"autoattack version {self.version!r} unknown; allowed: standard, rand, plus")

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.notes: list[str] = []

    def run(self, model, x, y, *, budget, num_classes, generator):
        from pyautoattack import AutoAttack

        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        attack = AutoAttack(model, norm="Linf" if budget.norm == "linf" else "L2", eps=budget.eps,
                            version=self.cfg.version, device=x.device, seed=seed)
        if num_classes < 10:  # APGD-T and FAB-T target the 9 classes after the true one
            attack.apgd_targeted.n_target_classes = attack.fab.n_target_classes = num_classes - 1
        logger = logging.getLogger("auto-attack")
        handler = LogCollector()
        logger.addHandler(handler)
        try:
            x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=len(x))
        finally:
            logger.removeHandler(handler)
        self.notes.extend(m for m in handler.messages if m not in self.notes)
        return x_adv.detach()
