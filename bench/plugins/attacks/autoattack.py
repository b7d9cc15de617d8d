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

from bench.plugins.attacks.base import Attack
from bench.core.errors import BenchInputError


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
        self.last_per_example: dict[str, list] = {}

    def run(self, model, x, y, *, budget, num_classes, generator):
        """The components one after another on the examples still robust, exactly as
        run_standard_evaluation does (same settings, same seed per component), so that we know which
        component broke each example: the masking rules compare AutoAttack's white-box components
        with its Square (as its own check_square_sr does). Reported in `last_per_example['broken_by']`
        (the harness stores it; the final x_adv is judged by the harness as always)."""
        from pyautoattack import AutoAttack

        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        attack = AutoAttack(model, norm="Linf" if budget.norm == "linf" else "L2", eps=budget.eps,
                            version=self.cfg.version, device=x.device, seed=seed)
        if num_classes < 10:  # APGD-T and FAB-T target the 9 classes after the true one
            attack.apgd_targeted.n_target_classes = attack.fab.n_target_classes = num_classes - 1
        components = list(attack.attacks_to_run)
        logger = logging.getLogger("auto-attack")
        handler = LogCollector()
        logger.addHandler(handler)
        x_adv = x.clone()
        broken_by = [""] * len(x)
        robust = torch.ones(len(x), dtype=torch.bool, device=x.device)
        try:
            for component in components:
                idx = robust.nonzero().squeeze(1)
                if len(idx) == 0:
                    break
                attack.attacks_to_run = [component]
                adv, _ = attack.run_standard_evaluation(x[idx], y[idx], batch_size=len(idx))
                with torch.no_grad():
                    fooled = model(adv).argmax(1) != y[idx]
                for i in idx[fooled].tolist():
                    broken_by[i] = component
                x_adv[idx[fooled]] = adv[fooled].detach()
                robust[idx[fooled]] = False
        finally:
            logger.removeHandler(handler)
        self.notes.extend(m for m in handler.messages if m not in self.notes)
        self.last_per_example = {"broken_by": broken_by}
        return x_adv.detach()
