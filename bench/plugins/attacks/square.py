"""Square Attack (Andriushchenko et al. 2020) from torchattacks: score-based black-box random
search, no gradients at all. In the suite as a masking check: a black-box attack that beats the
white-box ones means the white-box gradients were useless (AutoAttack's check_square_sr)."""
from __future__ import annotations

from dataclasses import dataclass

from bench.plugins.attacks.base import Attack, model_device, seeded_global_rng
from bench.core.errors import BenchInputError


class Square(Attack):
    """Square Attack, black-box (scores only), L∞ or L2 (torchattacks)."""

    name = "square"
    description = "black-box score-based Square Attack (torchattacks Square), margin loss"
    norms = frozenset({"linf", "l2"})
    role = "black-box"
    loss = "margin"
    library = "torchattacks"

    @dataclass(frozen=True)
    class Config:
        """Defaults of AutoAttack's standard version: 5,000 queries, p_init 0.8, one restart, margin loss,
        no rescaling of the schedule."""

        n_queries: int = 5000
        p_init: float = 0.8
        restarts: int = 1

        def __post_init__(self):
            if self.n_queries < 1 or self.restarts < 1 or not 0 < self.p_init <= 1:
                raise BenchInputError(f"square needs n_queries >= 1, restarts >= 1, 0 < p_init <= 1; got {self}")

    def run(self, model, x, y, *, budget, num_classes, generator):
        import torchattacks

        norm = "Linf" if budget.norm == "linf" else "L2"
        seed = int(generator.initial_seed()) % (2**31)
        attack = torchattacks.Square(model, norm=norm, eps=budget.eps, n_queries=self.cfg.n_queries,
                                     n_restarts=self.cfg.restarts, p_init=self.cfg.p_init, loss="margin",
                                     resc_schedule=False, seed=seed)
        with seeded_global_rng(generator, model_device(model)):
            return attack(x, y)
