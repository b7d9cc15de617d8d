"""The budgets of a run: each attack at each selected norm it supports, at the requested ε or
the dataset's default (MNIST-like L∞ 0.3 / L2 2.0, CIFAR L∞ 8/255 / L2 0.5, L0 14.5% of the
features; an L0 `--eps` of 1 or more is a count of features, e.g. 5,10,20,40 pixels). `--norm` and
`--eps` are parsed and validated here, once, into `Budget`s."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from bench.core.errors import BenchInputError
from bench.core.specs import NORMS, Budget
from bench.plugins.datasets import DEFAULT_BUDGETS
from bench.plugins.registry import ATTACKS


def parse_norms(text: str) -> tuple[str, ...]:
    """`--norm`: "all" or comma-separated norms → the norms, validated."""
    if text.strip() == "all":
        return NORMS
    norms = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not norms:
        raise BenchInputError(f"--norm {text!r} names no norm; allowed: {', '.join(NORMS)}, or all")
    for n in norms:
        if n not in NORMS:
            raise BenchInputError(f"unknown norm {n!r}; allowed: {', '.join(NORMS)} (comma-separated), or all")
    return norms


def budget_plan(attack_names: Sequence[str], norms: Sequence[str], eps: Sequence[float] | None, family: str,
                shape: tuple[int, ...] | None = None, *, attacks_named: bool = False) -> tuple[tuple[str, Budget], ...]:
    """(attack, Budget) pairs to run: each attack at each of `norms` it supports, at `eps` (one norm
    only) or the dataset's default budget; every budget validated here, once. An attack named
    explicitly (`attacks_named`) that supports none of `norms` is an error; with `--attacks all` it
    is skipped. With the input `shape`, an L2 budget larger than the diameter of the input space
    (√features: every pixel from 0 to 1) is refused as a typo."""
    all_norms = tuple(norms) == NORMS
    if eps is not None and len(norms) != 1:
        raise BenchInputError(f"--eps needs exactly one --norm (got --norm {','.join(norms)}); "
                              f"e.g. --norm linf --eps 0.1,0.3")
    plan = []
    for name in attack_names:
        supported = [n for n in norms if n in ATTACKS.get(name).obj.norms]
        # with --attacks all, an attack without the chosen norm is skipped; one named explicitly is an error
        if not supported and not all_norms and attacks_named:
            raise BenchInputError(f"attack {name!r} supports {', '.join(sorted(ATTACKS.get(name).obj.norms))}, "
                                  f"not --norm {','.join(norms)}")
        for norm in supported:
            for value in (eps or [DEFAULT_BUDGETS[family][norm]]):
                if norm == "l0" and value >= 1:
                    value = l0_fraction(value, None if shape is None else math.prod(shape))
                if shape is not None:
                    check_effective(Budget(norm, value), math.prod(shape))
                if norm == "l2" and shape is not None and value > math.prod(shape) ** 0.5:
                    raise BenchInputError(f"--eps {value:g} is larger than any l2 distance between two inputs of this "
                                          f"dataset (at most {math.prod(shape) ** 0.5:.4g})")
                plan.append((name, Budget(norm, value)))
    return tuple(plan)


def l0_fraction(count: float, features: int | None) -> float:
    """An L0 budget of 1 or more is a count of features (pixels × channels) that may change: the
    fraction count / features the attacks take (Sparse-RS changes ⌊ε·d⌋ features, JSMA pairs of them).
    Below 1 an L0 budget is that fraction already."""
    if count != int(count):
        raise BenchInputError(f"--eps {count:g} at l0: a budget of 1 or more counts features and must be a whole "
                              f"number (below 1 it is a fraction of the features)")
    if features is None:
        raise BenchInputError("an l0 budget given as a count of features needs the dataset's input shape")
    if count > features:
        raise BenchInputError(f"--eps {count:g} at l0 is more features than an input has ({features:,})")
    return int(count) / features


def check_effective(budget: Budget, features: int) -> None:
    """A budget too small to change anything is a typo, never a row at clean accuracy: an L∞ or L2
    radius must move a float32 pixel somewhere in [0, 1] (1 − ε ≠ 1 in float32, so ε > 2⁻²⁵), an L0
    budget must allow one feature."""
    if budget.norm == "l0":
        if budget.eps * features < 1:
            raise BenchInputError(f"--eps {budget.eps:g} at l0 allows no feature of {features:,} to change "
                                  f"(the smallest budget is {1 / features:.3g})")
    elif np.float32(1) - np.float32(budget.eps) == np.float32(1):
        raise BenchInputError(f"--eps {budget.eps:.3g} at {budget.norm} is too small to change a float32 pixel in [0, 1] "
                              f"(the smallest budget that does is {2.0 ** -24:.3g})")
