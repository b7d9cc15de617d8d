"""CROWN-IBP (Zhang et al. 2020, "Towards Stable and Efficient Training of Verifiably Robust Neural
Networks"): CROWN's backward linear relaxation of the margins, with the pre-activation bounds of
every ReLU and max-pool taken from IBP. One backward pass per margin (K − 1 per example), so it
costs a few forward passes; never looser than IBP (the elementwise maximum of both sound bounds).
The suite's default linear-relaxation certifier; full CROWN is `crown`. bench/plugins/linear_bounds.py
holds the math."""
from __future__ import annotations

from dataclasses import dataclass

from bench.plugins.attacks.certifier import Certifier
from bench.plugins.linear_bounds import crown_margins


class CROWNIBP(Certifier):
    name = "crown-ibp"
    description = "certified accuracy by CROWN-IBP (Zhang et al. 2020): a lower bound"

    @dataclass(frozen=True)
    class Config:
        pass

    def margins(self, ops, x, y, budget):
        margins, done = crown_margins(ops, x, y, budget.norm, budget.eps, full_limit=0)
        return margins, {"method": "crown-ibp", **done}
