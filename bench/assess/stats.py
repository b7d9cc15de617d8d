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


def mcnemar_exact(a_correct, b_correct) -> tuple[int, int, float]:
    """Two-sided exact McNemar test on aligned boolean arrays: (a-only, b-only, p). The p-value is
    twice the smaller binomial tail of the discordant pairs, capped at 1."""
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    k = only_a + only_b
    if k == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(min(1.0, 2 * binom.cdf(min(only_a, only_b), k, 0.5)))


def holm(p_values: list[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down correction: which hypotheses are rejected at family-wise level α."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    m = len(p_values)
    for step, i in enumerate(order):
        if p_values[i] > alpha / (m - step):
            break
        rejected[i] = True
    return rejected


def letter_groups(order: list, separated: set[frozenset]) -> dict:
    """A compact letter display (Piepho 2004, insert-and-absorb): every item gets letters such that
    two items share a letter exactly when the test could not separate them — separated items never
    share one, and no pair that could not be separated is left without a common letter. `order`
    fixes the letters' order (the first item gets "a")."""
    groups: list[set] = [set(order)]
    for pair in separated:
        i, j = tuple(pair)
        next_groups = []
        for g in groups:
            if i in g and j in g:
                next_groups += [g - {i}, g - {j}]
            else:
                next_groups.append(g)
        # absorb: drop empty groups and groups inside another
        unique = []
        for g in sorted(next_groups, key=len, reverse=True):
            if g and not any(g <= h for h in unique):
                unique.append(g)
        groups = unique
    position = {item: k for k, item in enumerate(order)}
    groups.sort(key=lambda g: sorted(position[x] for x in g))
    letters = {item: "" for item in order}
    for k, g in enumerate(groups):
        letter = _letter(k)
        for item in sorted(g, key=position.get):
            letters[item] += letter
    return letters


def _letter(k: int) -> str:
    out = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        out = chr(ord("a") + r) + out
    return out
