"""The `bench` argument parser: every verb's options, their types and help. Types parse the
syntax of one value (an integer, a list of numbers); what the values mean is validated when the
request is built (bench/compose/requests.py)."""
from __future__ import annotations

import argparse

EPILOG = "Docs: README.md. Exit codes: 0 ok, 1 harness/attack failure, 2 bad input."


def _ascii_int(text: str) -> int:
    """An integer as a user types it: ASCII decimal digits only (Python's int() also reads '٣' and
    '1_000', which are typos here, not numbers)."""
    if not (text.isascii() and text.strip().lstrip("+-").isdigit()):
        raise ValueError(text)
    return int(text)


def _positive_int(text: str) -> int:
    try:
        value = _ascii_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


MAX_SEED = 2**32 - 1  # what every RNG the harness seeds (torch, NumPy) accepts
MAX_EPOCHS = 100_000


def _seed(text: str) -> int:
    try:
        value = _ascii_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_SEED}], got {value}")
    return value


def _epochs(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_EPOCHS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_EPOCHS:,}, got {value}")
    return value


def _batch_size(text: str) -> int | str:
    return "auto" if text == "auto" else _positive_int(text)


def _retries(text: str) -> int:
    try:
        value = _ascii_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"must be in [0, 10], got {value}")
    return value


def _gpu_share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 8:
        raise argparse.ArgumentTypeError(f"must be in (0, 8], got {value}")
    return value


def _eps_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    bad = [v for v in values if not (v > 0 and v < float("inf"))]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"budgets must be positive numbers, got {text!r}")
    return values


def _common(p: argparse.ArgumentParser, *, training: bool = True) -> None:
    p.add_argument("--dataset", default="mnist-5k", help="dataset name (default: mnist-5k; see `bench list datasets`)")
    p.add_argument("--arch", default=None, help="architecture (default: the dataset's; see `bench list archs`)")
    p.add_argument("--seed", type=_seed, default=0, help="training and attack seed, 0 to 2^32-1 (default: 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    p.add_argument("--out", default="runs", help="store for models and records (default: ./runs)")
    p.add_argument("--data-root", default=None, help="folder of torchvision datasets (mnist, cifar10, cifar100)")
    p.add_argument("--download", action="store_true", help="download a torchvision dataset into --data-root")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or log lines")
    if training:
        p.add_argument("--epochs", type=_epochs, default=None,
                       help="override the training epochs of every model in the run (default: each config's)")
        p.add_argument("--sweep", default=None, metavar="KEY=V1,V2,...",
                       help="train one model per value, e.g. `temperature=1,5,20,100` (every selected defense "
                            "that has the field, or `NAME.KEY=...`)")
        p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field: `temperature=20` (every selected defense that has it), "
                            "`defensive-distillation.temperature=20`, or an attack's: `cw.max_iterations=100`")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (each node: cached or to run, with its estimated cost) and exit")
    p.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local: one node after another here (default); ray: each node a Ray task "
                        "(pip install 'distill-bench[ray]'; the store must be on a filesystem every worker sees)")
    p.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start a local one)")
    p.add_argument("--retries", type=_retries, default=2, help="retries of a node that raises (default: 2)")
    p.add_argument("--gpus-per-task", type=_gpu_share, default=1.0,
                   help="with --executor ray on a cluster with GPUs: the GPU share of each node (default: 1)")
    p.add_argument("--force", nargs="?", const="all", default=None, metavar="NAMES",
                   help="recompute cached artifacts: all of them, or those of the comma-separated defenses "
                        "and attacks named (each once per run)")


def _attack_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attacks", default="all", help="comma-separated attacks, or all (default: all)")
    p.add_argument("--n-eval", type=_positive_int, default=None,
                   help="attack the first N test examples (default: the whole test split)")
    p.add_argument("--norm", default="all", help="threat models to run: linf, l2, l0 (comma-separated), or all the attack supports (default)")
    p.add_argument("--eps", type=_eps_list, default=None,
                   help="comma-separated budgets for the single --norm chosen (default: the dataset's, "
                        "MNIST-like linf 0.3 / l2 2.0, CIFAR linf 8/255 / l2 0.5; l0 0.145 of the features)")
    p.add_argument("--attack-batch-size", type=_batch_size, default=500,
                   help="examples per attack batch, or auto (on a GPU: the largest that fits a quarter of the free "
                        "memory; 500 on the CPU). Part of each record's key (default: 500)")
    p.add_argument("--no-adaptive", action="store_true",
                   help="skip the adaptive stage (the attacks a masking flag calls for; docs/masking.md)")
    p.add_argument("--binarization", type=_positive_int, default=0, metavar="N",
                   help="run the binarization test (Zimmermann et al. 2022) of every L∞/L2 suite attack on N "
                        "correctly classified examples per model; an attack that fails it does not count toward "
                        "the row's minimum suite (docs/masking.md; default: off)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Train distillation defenses, attack them, "
                                     "and publish leaderboards that expose gradient masking.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    p = sub.add_parser("run", help="train the defenses (and their upstream models), attack them, print the leaderboard",
                       description="Train each defense (reusing cached models), run each attack at each budget "
                                   "(reusing cached records), and write a markdown leaderboard.", epilog=EPILOG)
    p.add_argument("--defense", required=True, help="comma-separated defenses, or all")
    _common(p)
    _attack_options(p)
    p.add_argument("--leaderboard", default=None, help="where to write the markdown (default: OUT/leaderboard.md)")

    p = sub.add_parser("train", help="train defenses (and their upstream models) into the store", epilog=EPILOG)
    p.add_argument("--defense", required=True, help="comma-separated defenses, or all")
    _common(p)

    p = sub.add_parser("eval", help="attack trained models from the store", epilog=EPILOG,
                       description="Attack models already in the store, named by --model-id or by the "
                                   "--defense/--set/--epochs that trained them.")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--model-id", action="append", default=None, help="a model id from `bench list models` (repeatable)")
    p.add_argument("--factory", action="append", default=None, metavar="MODULE:FACTORY",
                   help="a factory you trust to rebuild a model audited with `bench audit --model` (repeatable); "
                        "a store never names code to run")
    target.add_argument("--defense", default=None, help="comma-separated defenses, or all (must be trained already)")
    _common(p)
    _attack_options(p)

    p = sub.add_parser("audit", help="attack a model no plugin trained: a checkpoint, a factory, a zoo model",
                       epilog=EPILOG,
                       description="Audit a model trained elsewhere with the same suite, probes, masking rules "
                                   "and adaptive stage as `bench run`; it becomes a leaderboard row marked "
                                   "external. Safe loading only: safetensors, or a .pt/.pth state dict "
                                   "(weights_only); never a pickled module.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", default=None, metavar="FILE",
                        help="a .safetensors / .pt / .pth state dict of a registered --arch")
    source.add_argument("--model", default=None, metavar="PKG.MODULE:FACTORY",
                        help="an import path whose factory returns the nn.Module (logits, [0, 1] inputs), "
                             "or robustbench:NAME (needs the robustbench package and the network)")
    p.add_argument("--weights", default=None, metavar="FILE", help="with --model: a state dict to load into it")
    p.add_argument("--name", default=None, help="the row label (default: the file or factory)")
    _common(p, training=False)
    p.add_argument("--epochs", type=_epochs, default=None,
                   help="training length of the undefended surrogate of transfer attacks (default: vanilla's)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="ATTACK.KEY=VALUE",
                   help="override an attack's config field, e.g. `cw.max_iterations=100`")
    _attack_options(p)

    p = sub.add_parser("list", help="list defenses, attacks, datasets, archs, or trained models", epilog=EPILOG)
    p.add_argument("what", choices=["defenses", "attacks", "datasets", "archs", "models"])
    p.add_argument("--out", default="runs", help="store to list models from (default: ./runs)")

    p = sub.add_parser("leaderboard", help="render the leaderboard of the store, or publish it as pages", epilog=EPILOG,
                       description="`bench leaderboard` prints every record of the store as markdown; "
                                   "`bench leaderboard publish` writes pages into --dest (idempotent), and "
                                   "`--check` exits 1 when the published pages are stale.")
    p.add_argument("action", nargs="?", choices=["show", "publish"], default="show")
    p.add_argument("--dest", default="leaderboard", help="where `publish` writes pages (default: ./leaderboard)")
    p.add_argument("--check", action="store_true",
                   help="with publish: write nothing, exit 1 if pages are stale, missing or orphaned")
    p.add_argument("--replace", action="store_true",
                   help="with publish: replace pages that another store (or something else) left in --dest")
    p.add_argument("--include-store", action="store_true",
                   help="with publish: also publish the sealed store behind the pages as DEST/store (weights, records, "
                        "per-example files, probes), so that a reader re-verifies and extends the board; the pages' "
                        "commands then name it")
    p.add_argument("--out", default="runs", help="store to read (default: ./runs)")
    p.add_argument("--dataset", default=None, help="only this dataset")
    p.add_argument("--format", default="markdown", choices=["markdown", "json", "csv"],
                   help="what `show` prints: markdown (default), json (docs/schema/leaderboard.schema.json) or csv")
    p.add_argument("--output", default=None, help="also write the output to this file")

    p = sub.add_parser("store", help="verify the store's artifacts, rebuild its index, or seal old artifacts",
                       epilog=EPILOG,
                       description="`verify` checks every artifact against its content hashes and exits 1 when "
                                   "one is corrupt; `rebuild` recreates index.sqlite from the files; `seal` adds "
                                   "content hashes to artifacts written before bench recorded them.")
    p.add_argument("action", choices=["verify", "rebuild", "seal"])
    p.add_argument("--out", default="runs", help="the store (default: ./runs)")
    return parser
