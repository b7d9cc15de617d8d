"""`--set` and `--sweep`: config overrides per defense and per attack, and the variants a sweep
trains. Values stay text here; each is parsed against its config field's type once, when the
node or attack is planned (bench.core.specs.apply_overrides)."""
from __future__ import annotations

import dataclasses
from typing import Sequence

from bench.core.errors import BenchInputError
from bench.plugins.registry import DEFENSES


def split_overrides(sets: Sequence[str], defenses: Sequence[str], attacks: Sequence[str]):
    """`--set` items → ({defense: {field: text}}, {attack: {field: text}})."""
    per_defense = {d: {} for d in defenses}
    per_attack = {a: {} for a in attacks}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BenchInputError(f"--set {item!r} is not KEY=VALUE")
        owner, dot, field = key.rpartition(".")
        if dot:
            if owner in per_defense:
                per_defense[owner][field] = value
            elif owner in per_attack:
                per_attack[owner][field] = value
            else:
                raise BenchInputError(f"--set {item!r}: {owner!r} is not a defense or attack of this run "
                                      f"(defenses: {', '.join(defenses)}; attacks: {', '.join(attacks) or 'none'})")
            continue
        targets = [d for d in defenses if field in {f.name for f in dataclasses.fields(DEFENSES.get(d).obj.Config)}]
        if not targets:
            allowed = sorted({f.name for d in defenses for f in dataclasses.fields(DEFENSES.get(d).obj.Config)})
            raise BenchInputError(f"--set {item!r}: no selected defense has a config field {field!r}; "
                                  f"allowed: {', '.join(allowed)}")
        for d in targets:
            per_defense[d][field] = value
    return per_defense, per_attack


def sweep_variants(sweep: str | None, defenses: Sequence[str], per_defense: dict) -> list[tuple[str, dict]]:
    """(defense, overrides) per model to train: one per defense, or one per swept value."""
    if not sweep:
        return [(d, per_defense[d]) for d in defenses]
    key, sep, values = sweep.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key or not items:
        raise BenchInputError(f"--sweep {sweep!r} is not KEY=V1,V2,...")
    variants = []
    matched = False
    for d in defenses:
        owner, dot, field = key.rpartition(".")
        fields = {f.name for f in dataclasses.fields(DEFENSES.get(d).obj.Config)}
        if (dot and owner != d) or field not in fields:
            variants.append((d, per_defense[d]))
            continue
        matched = True
        variants += [(d, {**per_defense[d], field: v}) for v in items]
    if matched and len(items) < 2:
        raise BenchInputError(f"--sweep {sweep!r} has one value; a sweep needs two or more (for one value use "
                              f"--set {key}={items[0]})")
    if not matched:
        raise BenchInputError(f"--sweep {sweep!r}: no selected defense has a config field {key.rpartition('.')[2]!r}")
    return variants
