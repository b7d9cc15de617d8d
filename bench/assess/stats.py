"""The statistics behind every number the leaderboard shows (docs/leaderboard.md, docs/masking.md).

- Accuracy intervals: Wilson score intervals at 95%. Chosen over Clopper-Pearson because they are
  close to nominal coverage without being as conservative, and stay inside [0, 1] at 0% and 100%
  (where a robust accuracy often sits) unlike the normal approximation.
- Comparing two attacks on the same examples: an exact one-sided McNemar test on the discordant
  pairs (the examples one attack broke and the other did not), at α = 0.05, together with the
  rule's threshold on the observed gap. This replaces a fixed 3/n slack: the test uses the
  information in the pairing and scales with n.
- One-sample rates against a fixed rate (an unbounded attack that should always succeed; random
  noise that should find nothing the gradient attacks missed): exact binomial tails.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

Z95 = 1.959963984540054
ALPHA = 0.05


@dataclass(frozen=True)
class Accuracy:
    """`correct` of `n` examples, with its 95% Wilson interval."""

    correct: int
    n: int

    @property
    def value(self) -> float:
        return self.correct / self.n if self.n else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.n)

    def to_json(self) -> dict:
        low, high = self.interval
        return {"value": _r(self.value), "low": _r(low), "high": _r(high), "correct": self.correct, "n": self.n}


def _r(v: float) -> float | None:
    return None if v != v else round(float(v), 6)


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n <= 0:
        return math.nan, math.nan
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


@dataclass(frozen=True)
class PairedGap:
    """Outcome of comparing attack `high` (the one expected to leave more) with `low` on the same
    examples: `gap` = acc(high) − acc(low), the discordant counts, and the exact McNemar p-value of
    "high leaves more than low" (one-sided)."""

    n: int
    high_only: int  # examples that survived `high` and were broken by `low`
    low_only: int  # the reverse
    gap: float
    p_value: float

    def exceeds(self, threshold: float, alpha: float = ALPHA) -> bool:
        return self.gap > threshold and self.p_value < alpha

    def to_json(self) -> dict:
        return {"n": self.n, "gap": round(self.gap, 4), "discordant": [self.high_only, self.low_only],
                "p": float(f"{self.p_value:.3g}")}


def paired_gap(high_correct, low_correct) -> PairedGap:
    """Exact McNemar on two aligned boolean arrays (True = the example survived the attack)."""
    h = np.asarray(high_correct, dtype=bool)
    lo = np.asarray(low_correct, dtype=bool)
    n = len(h)
    b = int((h & ~lo).sum())
    c = int((~h & lo).sum())
    p = float(binom.sf(b - 1, b + c, 0.5)) if b + c else 1.0
    return PairedGap(n, b, c, (b - c) / n if n else 0.0, p)


def rate_exceeds(count: int, n: int, rate: float) -> float:
    """One-sided exact p-value that a share `count / n` comes from a rate above `rate`."""
    return float(binom.sf(count - 1, n, rate)) if n and count else 1.0


def rate_below(count: int, n: int, rate: float) -> float:
    """One-sided exact p-value that a share `count / n` comes from a rate below `rate`."""
    return float(binom.cdf(count, n, rate)) if n else 1.0
