"""Command-line checks that need no data or model, run before any work: paths, flag combinations.
Every bad value is a BenchInputError (exit 2, one line)."""
from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchInputError
from bench.core.paths import check_file_target, check_folder, check_path_text
from bench.plugins.datasets import dataset_info


def check_arguments(args) -> None:
    """Every check that needs no data or model, before any work starts."""
    if args.verb == "leaderboard" and args.dataset is not None:
        dataset_info(args.dataset)  # `--dataset foo` or '': one line with the list, not an empty board
    if args.verb == "leaderboard" and args.action != "publish" and (args.check or args.replace or args.include_store):
        raise BenchInputError("--check, --replace and --include-store apply to `bench leaderboard publish` only")
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
    read_only = args.verb in ("leaderboard", "store", "eval") or (args.verb == "list" and args.what == "models")
    if hasattr(args, "out") and (args.verb != "list" or args.what == "models"):
        check_folder(args.out, "--out", must_exist=read_only)
    if getattr(args, "dest", None) is not None and args.verb == "leaderboard" and args.action == "publish":
        check_folder(args.dest, "--dest", must_exist=False)
    if getattr(args, "output", None) is not None:
        check_file_target(args.output, "--output")
    if getattr(args, "data_root", None) is not None:
        check_path_text(args.data_root, "--data-root")
