"""Interval bound propagation (Gowal et al. 2018, "On the Effectiveness of Interval Bound
Propagation for Training Verifiably Robust Models"): the cheapest sound certificate, and the bound
certified training (defenses/certified.py) trains against. bench/plugins/bounds.py holds the math."""
from __future__ import annotations

from dataclasses import dataclass

from bench.plugins.attacks.certifier import Certifier
from bench.plugins.bounds import ibp_margins


class IBP(Certifier):
    name = "ibp"
    description = "certified accuracy by interval bound propagation (Gowal et al. 2018): a lower bound"

    @dataclass(frozen=True)
    class Config:
        pass

    def margins(self, ops, x, y, budget):
        return ibp_margins(ops, x, y, budget.norm, budget.eps), {"method": "ibp"}
