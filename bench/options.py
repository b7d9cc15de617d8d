"""Turning command-line values into validated plans: device, `--set` overrides, `--sweep`
variants, and the (attack, budget) pairs of a run. Every bad value is a BenchInputError."""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Sequence

from bench.errors import BenchInputError


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchInputError(f"unknown device {name!r}; allowed: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchInputError(f"device {name!r} requested but CUDA is not available here; use --device cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise BenchInputError(f"unsupported device {name!r}; allowed: auto, cpu, cuda, cuda:N")
    return device


def split_overrides(sets: Sequence[str], defenses: Sequence[str], attacks: Sequence[str]):
    """`--set` items → ({defense: {field: text}}, {attack: {field: text}})."""
    from bench.registry import DEFENSES

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
    from bench.registry import DEFENSES

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


def budget_plan(args, attack_names, family, shape: tuple[int, ...] | None = None):
    """(attack, Budget) pairs to run: each attack at each selected norm it supports, at --eps or the
    dataset's default budget. With the input `shape`, an L2 budget larger than the diameter of the
    input space (√features: every pixel from 0 to 1) is refused as a typo."""
    from bench.data import DEFAULT_BUDGETS
    from bench.registry import ATTACKS
    from bench.specs import NORMS, Budget

    if args.norm == "all":
        norms = list(NORMS)
    else:
        norms = [n.strip() for n in args.norm.split(",") if n.strip()]
        if not norms:
            raise BenchInputError(f"--norm {args.norm!r} names no norm; allowed: {', '.join(NORMS)}, all")
        for n in norms:
            if n not in NORMS:
                raise BenchInputError(f"unknown norm {n!r}; allowed: {', '.join(NORMS)}, all")
    if args.eps is not None and len(norms) != 1:
        raise BenchInputError(f"--eps needs exactly one --norm (got --norm {args.norm}); e.g. --norm linf --eps 0.1,0.3")
    plan = []
    for name in attack_names:
        supported = [n for n in norms if n in ATTACKS.get(name).obj.norms]
        # with --attacks all, an attack without the chosen norm is skipped; one named explicitly is an error
        if not supported and args.norm != "all" and getattr(args, "attacks", "all").strip() != "all":
            raise BenchInputError(f"attack {name!r} supports {', '.join(sorted(ATTACKS.get(name).obj.norms))}, "
                                  f"not --norm {args.norm}")
        for norm in supported:
            for eps in (args.eps or [DEFAULT_BUDGETS[family][norm]]):
                if norm == "l2" and shape is not None and eps > math.prod(shape) ** 0.5:
                    raise BenchInputError(f"--eps {eps:g} is larger than any l2 distance between two inputs of this "
                                          f"dataset (at most {math.prod(shape) ** 0.5:.4g})")
                plan.append((name, Budget(norm, eps)))
    return plan


def auto_attack_batch_size(arch: str, dataset, device) -> int:
    """`--attack-batch-size auto`: on a GPU, the largest power of two whose forward and backward
    pass of `arch` fits in a quarter of the free device memory (attacks keep a few copies of the
    batch, its gradient and their best iterate), measured on the architecture itself; 500 on the CPU.
    The number chosen is part of each record's key (results depend on the batch size)."""
    import torch

    from bench.archs import create_model

    if device.type != "cuda":
        return 500
    model = create_model(arch, dataset).to(device).eval()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    probe = 64
    x = torch.rand(probe, *dataset.shape, device=device, requires_grad=True)
    model(x).logsumexp(1).sum().backward()
    per_example = max((torch.cuda.max_memory_allocated(device) - base) / probe, 1.0)
    free, _ = torch.cuda.mem_get_info(device)
    del model, x
    torch.cuda.empty_cache()
    fits = int(free * 0.25 / per_example)
    return max(probe, min(16384, 2 ** int(math.log2(max(fits, 1)))))


# --- paths and flag combinations, checked before any work (bench/cli.py calls check_arguments) ---
def _check_path_text(text: str, flag: str) -> Path:
    if not text or not text.strip() or "\0" in text:
        raise BenchInputError(f"{flag} {text!r} must name a path")
    path = Path(text)
    too_long = [part for part in path.parts if len(part.encode()) > 255]
    if too_long or len(os.fsencode(str(path.resolve()))) > 4000:
        raise BenchInputError(f"{flag} {text[:60]!r}…: the path is too long for the filesystem")
    return path


def _nearest_existing(path: Path) -> Path:
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_folder(text: str, flag: str, *, must_exist: bool) -> Path:
    """A folder bench will read (`must_exist`) or create and write: one line on anything unusable."""
    path = _check_path_text(text, flag)
    if path.exists() and not path.is_dir():
        raise BenchInputError(f"{flag} {text!r} is a file, not a folder")
    if must_exist and not path.is_dir():
        raise BenchInputError(f"{flag} {text!r} does not exist (run `bench run` first or pass the right folder)")
    base = _nearest_existing(path)
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise BenchInputError(f"{flag} {text!r}: {str(base)!r} is not a writable folder")
    return path


def check_file_target(text: str, flag: str) -> Path:
    """A file bench will write."""
    path = _check_path_text(text, flag)
    if path.is_dir() or text.endswith(os.sep):
        raise BenchInputError(f"{flag} {text!r} is a folder; it must name a file")
    base = _nearest_existing(path.parent if str(path.parent) else Path("."))
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise BenchInputError(f"{flag} {text!r}: {str(base)!r} is not a writable folder")
    return path


def check_arguments(args) -> None:
    """Every check that needs no data or model, before any work starts."""
    if args.verb == "leaderboard" and args.action != "publish" and (args.check or args.replace):
        raise BenchInputError("--check and --replace apply to `bench leaderboard publish` only")
    if args.verb == "eval" and args.model_id:
        given = [flag for flag, value in (("--arch", args.arch), ("--sweep", args.sweep), ("--epochs", args.epochs))
                 if value is not None]
        if given:
            raise BenchInputError(f"{', '.join(given)} cannot be combined with --model-id: a stored model's "
                                  f"architecture and training are fixed (use --defense to select by config)")
    if args.verb == "audit":
        if args.checkpoint is not None and args.arch is None:
            raise BenchInputError("--checkpoint needs --arch: the registered architecture its weights belong to "
                                  "(`bench list archs`)")
        if args.model is not None and args.arch is not None:
            raise BenchInputError("--arch applies to --checkpoint only; a --model factory builds its own module")
        if args.weights is not None and args.model is None:
            raise BenchInputError("--weights applies to --model only; pass a checkpoint with --checkpoint FILE --arch NAME")
        for flag, value in (("--checkpoint", args.checkpoint), ("--weights", args.weights)):
            if value is not None and not Path(value).is_file():
                raise BenchInputError(f"{flag} {value!r} does not exist")
    if getattr(args, "ray_address", None) is not None and args.executor != "ray":
        raise BenchInputError("--ray-address needs --executor ray")
    read_only = args.verb in ("leaderboard", "store", "eval") or (args.verb == "list" and args.what == "models")
    if hasattr(args, "out") and (args.verb != "list" or args.what == "models"):
        check_folder(args.out, "--out", must_exist=read_only)
    if getattr(args, "dest", None) is not None and args.verb == "leaderboard" and args.action == "publish":
        check_folder(args.dest, "--dest", must_exist=False)
    if getattr(args, "output", None) is not None:
        check_file_target(args.output, "--output")
    if getattr(args, "data_root", None) is not None:
        _check_path_text(args.data_root, "--data-root")
    if hasattr(args, "norm"):
        from bench.specs import NORMS

        norms = [n.strip() for n in args.norm.split(",") if n.strip()]
        bad = [n for n in norms if n not in (*NORMS, "all")]
        if bad:
            raise BenchInputError(f"unknown norm {bad[0]!r}; allowed: {', '.join(NORMS)} (comma-separated), or all")
        if not norms:
            raise BenchInputError(f"--norm {args.norm!r} names no norm; allowed: {', '.join(NORMS)}, or all")
        if args.eps is not None:
            from bench.specs import Budget

            for norm in norms:
                for eps in args.eps:
                    if norm != "all":
                        Budget(norm, eps)
