"""Full CROWN (Zhang et al. 2018, "Efficient Neural Network Robustness Certification with General
Activation Functions"): the pre-activation bounds of every ReLU and max-pool come from a backward
pass of their own (one linear relaxation per neuron), then the margins' backward pass. Tighter than
CROWN-IBP (`crown-ibp`), and costly: each layer costs about its width times a forward pass of
everything below it, so a layer above `full_limit` (width × size below) keeps its IBP bounds and the
record says how many layers were bounded each way. Not part of `--attacks all` (on papernot-mnist
it took 140 s for 200 test images on 2 CPU cores); run it by name: `--attacks crown`.
bench/plugins/linear_bounds.py holds the math."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bench.core.errors import BenchInputError
from bench.plugins.attacks.certifier import Certifier
from bench.plugins.linear_bounds import FULL_CROWN_LIMIT, crown_margins


class CROWN(Certifier):
    name = "crown"
    description = "certified accuracy by full CROWN (Zhang et al. 2018): a lower bound; costly, run by name"
    in_all: ClassVar[bool] = False

    @dataclass(frozen=True)
    class Config:
        full_limit: int = FULL_CROWN_LIMIT  # width × size below, per layer, up to which CROWN bounds it

        def __post_init__(self):
            if self.full_limit < 0:
                raise BenchInputError(f"crown full_limit must be ≥ 0, got {self.full_limit}")

    def margins(self, ops, x, y, budget):
        margins, done = crown_margins(ops, x, y, budget.norm, budget.eps, full_limit=self.cfg.full_limit)
        return margins, {"method": "crown", **done}
