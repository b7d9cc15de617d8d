"""`bench`: the command line. Verbs: run, train, eval, audit, list, leaderboard, store (`bench VERB --help`).

Exit codes: 0 success; 2 bad input (one line naming the bad value and what is allowed);
1 a failure of the harness or of an attack adapter (its message says which).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Sequence

from bench.errors import AttackContractError, BenchInputError
from bench.options import check_arguments, resolve_device, split_overrides, sweep_variants

EPILOG = "Docs: README.md. Exit codes: 0 ok, 1 harness/attack failure, 2 bad input."


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


MAX_SEED = 2**32 - 1  # what every RNG the harness seeds (torch, NumPy) accepts
MAX_EPOCHS = 100_000


def _seed(text: str) -> int:
    try:
        value = int(text)
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
        value = int(text)
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


class _Session:
    """What every verb that trains or attacks needs: dataset, device, store, runner."""

    def __init__(self, args, log):
        from bench.archs import arch_info
        from bench.data import dataset_info, load_dataset
        from bench.pipeline import Runner
        from bench.store import Store

        info = dataset_info(args.dataset)
        self.arch = args.arch or info.default_arch
        arch_info(self.arch)
        self.device = resolve_device(args.device)
        self.dataset = load_dataset(args.dataset, args.data_root, args.download)
        if getattr(args, "dry_run", False) and not Path(args.out).is_dir():
            import tempfile  # a dry run writes nothing: an empty store stands in for the missing one

            self._tmp = tempfile.TemporaryDirectory(prefix="bench-dry-run-")
            self.store = Store(self._tmp.name, log=log)
        else:
            self.store = Store(args.out, create=args.verb != "eval", log=log)
        for problem in self.store.problems.values():
            log(f"bench: warning: {problem}")
        if getattr(args, "attack_batch_size", None) == "auto":
            from bench.options import auto_attack_batch_size

            args.attack_batch_size = auto_attack_batch_size(self.arch, self.dataset, self.device)
            log(f"attack batch size: {args.attack_batch_size} (auto, {self.device})")
        self.runner = Runner(self.store, self.dataset, self.device, quiet=args.quiet, log=log,
                             attack_batch_size=getattr(args, "attack_batch_size", 500),
                             epochs=getattr(args, "epochs", None), command=_command_line(),
                             force=_force_names(args))
        self.family = info.family

    def plan(self, args, defenses, per_defense):
        from bench.pipeline import plan_model

        return [plan_model(d, overrides, arch=self.arch, dataset=args.dataset, seed=args.seed, epochs=args.epochs)
                for d, overrides in sweep_variants(getattr(args, "sweep", None), defenses, per_defense)]


def _force_names(args) -> frozenset[str]:
    """`--force` → {"all"} or the defense/attack names it lists (validated)."""
    from bench.registry import ATTACKS, DEFENSES

    text = getattr(args, "force", None)
    if text is None:
        return frozenset()
    names = {n.strip() for n in text.split(",") if n.strip()}
    if not names:
        raise BenchInputError(f"--force {text!r} names nothing; use --force alone for everything")
    if "all" in names:
        return frozenset({"all"})
    for name in names:
        if name not in DEFENSES and name not in ATTACKS:
            DEFENSES.get(name)  # unknown: the registry's "did you mean" message
    return frozenset(names)


def _command_line() -> str:
    """The command as a user would retype it (recorded in each record's provenance)."""
    return "bench " + " ".join(shlex.quote(a) for a in _ARGV)


def _summary(runner, report=None) -> str:
    if report is not None and report.executor != "local":  # remote workers ran them
        kinds = [t.kind for t, _ in report.done]
        return (f"executed {len(kinds)} node(s) on workers: trained {kinds.count('train')} model(s), "
                f"ran {kinds.count('attack')} attack(s), {kinds.count('probe')} probe(s)")
    return (f"trained {len(runner.trained)} model(s), reused {len(runner.reused_models)}; "
            f"ran {len(runner.attacked)} attack(s), reused {len(runner.reused_records)}")


# --- verbs -----------------------------------------------------------------------------------
def _board(store, dataset: str | None, model_ids=None, command: str | None = None):
    """The assessments of `model_ids` (default: every model) over everything the store holds."""
    from bench.assess import assess
    from bench.board import build_board
    from bench.records import ResultSet

    results = ResultSet.from_store(store, dataset)
    assessments = assess(results, set(model_ids) if model_ids is not None else None)
    commands = {}
    for r in results.records:
        if r.model_id in assessments and r.command:
            commands.setdefault((r.dataset, r.budget.norm), set()).add(r.command)
    if command:
        for key in commands:
            commands[key] = {command}
    return build_board(assessments, {k: sorted(v) for k, v in commands.items()})


def _write_board(board, path: Path, log) -> None:
    """leaderboard.md (given path), leaderboard.json beside it, and a security-curve PNG per swept norm."""
    from bench.files import write_atomic as _write_atomic
    from bench.render.data import board_json_text
    from bench.render.markdown import board_markdown, security_curves
    from bench.render.plots import security_curve_png

    _write_atomic(path, board_markdown(board).encode())
    _write_atomic(path.with_suffix(".json"), board_json_text(board).encode())
    for page in board.pages:
        curves = security_curves(page)
        if curves:
            png = path.parent / f"curves-{page.dataset}-{page.norm}.png"
            _write_atomic(png, security_curve_png(f"Security curves · {page.dataset} · {page.norm}", curves, page.norm))
            log(f"security curve written to {png}")


def _leaderboard_path(args) -> Path:
    """Where `bench run` writes its leaderboard, checked before any work starts."""
    out = Path(args.leaderboard) if args.leaderboard else Path(args.out) / "leaderboard.md"
    if args.leaderboard is not None and (not args.leaderboard.strip() or out.is_dir()):
        raise BenchInputError(f"--leaderboard {args.leaderboard!r} must name a file")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise BenchInputError(f"--leaderboard {str(out)!r}: {str(parent)!r} is not a writable folder")
    return out


def cmd_run(args, log) -> int:
    from bench.registry import ATTACKS, DEFENSES
    from bench.render.markdown import board_markdown

    defenses = DEFENSES.resolve(args.defense)
    attacks = ATTACKS.resolve(args.attacks)
    per_defense, per_attack = split_overrides(args.sets, defenses, attacks)
    out = _leaderboard_path(args)
    session = _Session(args, log)
    nodes = session.plan(args, defenses, per_defense)
    plan = _eval_plan(args, session, attacks, per_attack)  # budgets checked before any training
    report = _execute(args, session, nodes, plan, log)
    if report is None:  # --dry-run
        return 0
    command = _command_line()
    board = _board(session.store, args.dataset, {node.model_id for node in nodes})
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_board(board, out, log)
    print(board_markdown(board, command=command))
    log(f"{_summary(session.runner, report)}; leaderboard written to {out} (and {out.with_suffix('.json').name})")
    return _finish(report, log)


def _eval_plan(args, session, attacks, per_attack):
    """The evaluation half of the run, from the command line; budgets checked before any work."""
    from bench.plan import EvalPlan

    plan = EvalPlan(args.dataset, session.family, tuple(session.dataset.shape), tuple(attacks),
                    {k: dict(v) for k, v in per_attack.items()}, args.norm, tuple(args.eps) if args.eps else None,
                    args.attacks.strip() != "all", args.n_eval, args.seed, not args.no_adaptive)
    plan.budgets()
    return plan


def _executor(args, session, log):
    """The executor `--executor` names (local by default; Ray imported only when asked for)."""
    from bench.executors import LocalExecutor, RayExecutor, WorkerContext

    if getattr(args, "executor", "local") == "local":
        return LocalExecutor(session.runner, log, retries=args.retries)
    ctx = WorkerContext(str(Path(args.out).resolve()), args.dataset, args.data_root, args.device,
                        getattr(args, "attack_batch_size", 500), getattr(args, "epochs", None), _command_line(),
                        session.runner.force)
    return RayExecutor(ctx, log, address=args.ray_address, retries=args.retries, gpus_per_task=args.gpus_per_task)


def _execute(args, session, nodes, plan, log):
    """Plan the DAG (models, the suite, probes), execute it, then the adaptive stage's rounds, each
    planned after an assessment. Returns the Report, or None for --dry-run (the plan printed)."""
    from bench.plan import execute, plan_tasks

    tasks = plan_tasks(plan, session.runner, nodes)
    if getattr(args, "dry_run", False):
        from bench.render.plan import plan_text

        print(plan_text(tasks, session.runner, adaptive=plan is not None and plan.adaptive))
        return None
    return execute(plan, session.runner, nodes, tasks, _executor(args, session, log))


def _finish(report, log) -> int:
    """Exit code 1 when a node failed (after the retries), with every failure on its own line."""
    if report is None or not (report.failed or report.skipped):
        return 0
    for line in report.summary_lines():
        print(f"bench: {line}", file=sys.stderr)
    print(f"bench: {len(report.failed)} node(s) failed, {len(report.skipped)} skipped; the others' results are "
          f"in the store (rerun to retry)", file=sys.stderr)
    return 1


def cmd_train(args, log) -> int:
    from bench.registry import DEFENSES

    defenses = DEFENSES.resolve(args.defense)
    per_defense, _ = split_overrides(args.sets, defenses, [])
    session = _Session(args, log)
    nodes = session.plan(args, defenses, per_defense)
    report = _execute(args, session, nodes, None, log)
    if report is None:
        return 0
    for node in nodes:
        print(f"{node.model_id}  {node.label}  {node.arch}  {node.dataset}")
    log(_summary(session.runner, report))
    return _finish(report, log)


def cmd_eval(args, log) -> int:
    from bench.pipeline import TrainNode
    from bench.records import check_id
    from bench.registry import ATTACKS, DEFENSES
    from bench.specs import apply_overrides

    attacks = ATTACKS.resolve(args.attacks)
    if args.model_id:
        for mid in args.model_id:
            check_id(mid, "--model-id")
        session = _Session(args, log)
        defenses = []
        nodes = []
        def stored_node(mid: str, depth: int = 0) -> TrainNode:
            """A model known by its id, with its stored upstream models (a teacher for transfer)."""
            spec = session.store.model_spec(check_id(mid, "model id"))
            cls = DEFENSES.get(spec["defense"]).obj
            upstream = {role: stored_node(up, depth + 1) for role, up in spec.get("upstream", {}).items()
                        if depth < 32 and session.store.has_model(up)}
            return TrainNode(spec["defense"], apply_overrides(cls.Config(), spec["config"], spec["defense"]),
                             spec["arch"], spec["dataset"], spec["seed"], upstream, stored_id=mid)

        for mid in args.model_id:
            spec = session.store.model_spec(check_id(mid, "--model-id"))
            if spec["dataset"] != args.dataset:
                raise BenchInputError(f"model {mid} was trained on {spec['dataset']!r}; pass --dataset {spec['dataset']}")
            nodes.append(stored_node(mid))
        _, per_attack = split_overrides(args.sets, defenses, attacks)
    else:
        defenses = DEFENSES.resolve(args.defense)
        per_defense, per_attack = split_overrides(args.sets, defenses, attacks)
        session = _Session(args, log)
        nodes = session.plan(args, defenses, per_defense)
        for node in nodes:
            if not session.store.has_model(node.model_id):
                problem = session.store.problems.get(f"model:{node.model_id}")
                if problem is not None:
                    raise problem
                raise BenchInputError(f"{node.label} ({node.arch}, {node.dataset}, seed {node.seed}) is not trained "
                                      f"in {args.out} (model {node.model_id}); run `bench train` first")
    report = _execute(args, session, nodes, _eval_plan(args, session, attacks, per_attack), log)
    if report is None:
        return 0
    from bench.render.markdown import board_markdown

    print(board_markdown(_board(session.store, args.dataset, {node.model_id for node in nodes}),
                         command=_command_line()))
    log(_summary(session.runner, report))
    return _finish(report, log)


def cmd_audit(args, log) -> int:
    from bench.audit import audit_model, load_checkpoint, load_factory, load_zoo
    from bench.data import dataset_info, load_dataset
    from bench.registry import ATTACKS

    attacks = ATTACKS.resolve(args.attacks)
    _, per_attack = split_overrides(args.sets, [], attacks)
    dataset_info(args.dataset)
    data = load_dataset(args.dataset, args.data_root, args.download)
    provenance = {}
    if args.checkpoint:
        from bench.files import sha256_file

        from bench.archs import arch_info

        arch_info(args.arch)
        model = load_checkpoint(args.checkpoint, args.arch, data)
        source, origin, arch = "checkpoint", Path(args.checkpoint).name, args.arch
        provenance["file_sha256"] = sha256_file(Path(args.checkpoint))
    elif args.model.startswith("robustbench:"):
        model = load_zoo(args.model.partition(":")[2], args.dataset, args.norm).eval()
        source, origin, arch = "robustbench", args.model, "external"
    else:
        model = load_factory(args.model, args.weights)
        source, origin, arch = "factory", args.model, "external"
    result = audit_model(model, dataset=args.dataset, norm=args.norm, eps=args.eps, attacks=",".join(attacks),
                         n=args.n_eval, device=args.device, store=args.out, seed=args.seed,
                         adaptive=not args.no_adaptive, attack_config=per_attack, batch_size=args.attack_batch_size,
                         epochs=args.epochs, data_root=args.data_root, name=args.name, source=source, origin=origin,
                         arch=arch, quiet=args.quiet, log=log, command=_command_line(), provenance=provenance)
    print(result.markdown())
    log(f"audited model {result.model_id} ({result.label}) into {args.out}")
    return 0


def cmd_list(args, log) -> int:
    from bench.archs import all_archs
    from bench.data import DATASETS
    from bench.registry import ATTACKS, DEFENSES

    if args.what in ("defenses", "attacks"):
        registry = DEFENSES if args.what == "defenses" else ATTACKS
        for entry in registry:
            extra = f"  norms: {', '.join(sorted(entry.obj.norms))}" if args.what == "attacks" else ""
            print(f"{entry.name}  [{entry.source}]{extra}\n    {entry.description}")
            fields = ", ".join(f"{k}={'auto' if v is None else repr(v)}" for k, v in entry.config_fields)
            print(f"    config: {fields or '(none)'}")
    elif args.what == "datasets":
        for info in DATASETS.values():
            print(f"{info.name:<10} default arch {info.default_arch:<15} {info.description}")
    elif args.what == "archs":
        for info in all_archs().values():
            print(f"{info.name:<15} {info.description}")
    else:
        from bench.store import Store

        for spec in Store(args.out, create=False, log=log).models():
            print(f"{spec['model_id']}  {spec.get('label', spec['defense']):<40} {spec['arch']:<15} "
                  f"{spec['dataset']:<10} seed {spec['seed']}")
    return 0


def cmd_leaderboard(args, log) -> int:
    from bench.store import Store

    store = Store(args.out, create=False, log=log)
    if store.problems:  # never publish or show a board with an artifact missing from it silently
        first = next(iter(store.problems.values()))
        more = f" (and {len(store.problems) - 1} more: `bench store verify --out {args.out}`)" if len(store.problems) > 1 else ""
        raise BenchInputError(f"{first}{more}")
    if args.action == "publish":
        from bench.publish import check_destination, publish, stale

        dest = Path(args.dest)
        if not args.dest.strip():
            raise BenchInputError("--dest '' must name a folder")
        if args.check:
            outdated = stale(store, dest, args.dataset)
            for why, path in outdated:
                print(f"{why}: {path}")
            print(f"{len(outdated)} file(s) to update in {args.dest}" if outdated else f"{args.dest} is up to date")
            return 1 if outdated else 0
        check_destination(store, dest, args.replace)
        changed = publish(store, dest, args.dataset, replace=args.replace)
        print(f"published {len(changed)} changed file(s) into {args.dest}")
        return 0
    from bench.render.data import board_csv, board_json_text
    from bench.render.markdown import board_markdown

    board = _board(store, args.dataset)
    text = {"markdown": lambda: board_markdown(board), "json": lambda: board_json_text(board),
            "csv": lambda: board_csv(board)}[args.format]()
    if args.output:
        from bench.files import write_atomic as _write_atomic

        _write_atomic(Path(args.output), text.encode())
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


def cmd_store(args, log) -> int:
    from bench.store import Store

    store = Store(args.out, create=False, log=log)
    if args.action == "rebuild":
        store.rebuild_index()
        print(f"index rebuilt: {len(store.models())} model(s), {len(store.records())} record(s)")
    elif args.action == "seal":
        print(f"sealed {store.seal_legacy()} artifact(s) written before content hashes")
    else:
        store.verify_weights()
    for problem in store.problems.values():
        print(problem)
    if args.action == "verify":
        print(f"{len(store.models())} model(s) and {len(store.records())} record(s) checked; "
              f"{len(store.problems)} corrupt")
    return 1 if store.problems and args.action == "verify" else 0


VERBS = {"run": cmd_run, "train": cmd_train, "eval": cmd_eval, "audit": cmd_audit, "list": cmd_list,
         "leaderboard": cmd_leaderboard, "store": cmd_store}


_ARGV: list[str] = []


def main(argv: Sequence[str] | None = None) -> int:
    global _ARGV
    _ARGV = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = getattr(args, "quiet", False)
    log = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    warnings.formatwarning = lambda msg, cat, *a, **k: f"bench: warning: {msg}\n"
    try:
        check_arguments(args)
        return VERBS[args.verb](args, log)
    except BenchInputError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except AttackContractError as exc:
        print(f"bench: attack rejected: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; finished models and records are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
