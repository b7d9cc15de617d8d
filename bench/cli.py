"""`bench`: the command line. Verbs: run, train, eval, list, leaderboard (`bench VERB --help`).

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
from bench.options import budget_plan, resolve_device, split_overrides, sweep_variants

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
    p.add_argument("--attack-batch-size", type=_positive_int, default=500, help="examples per attack batch (default: 500)")
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
        self.store = Store(args.out, create=args.verb != "eval", log=log)
        for problem in self.store.problems.values():
            log(f"bench: warning: {problem}")
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


def _run_attacks(args, session, nodes, attack_names, per_attack) -> list[dict]:
    plan = budget_plan(args, attack_names, session.family, session.dataset.shape)
    records = []
    for node in nodes:
        for name, budget in plan:
            records.append(session.runner.record(node, name, per_attack.get(name, {}), budget, args.n_eval, args.seed))
    return records


def _adaptive_stage(args, session, nodes, attack_names, log, rounds: int = 2) -> None:
    """For every model of the run whose verdict is "masking suspected": run the adaptive attacks its
    fired rules call for (bench/adaptive.py) at each budget of the run, then assess again; a second
    round answers rules the first round's records made fire."""
    from bench import adaptive
    from bench.assess import assess
    from bench.records import ResultSet
    from bench.specs import Budget

    if args.no_adaptive:
        return
    from bench.registry import DEFENSES

    budgets = sorted({(b.norm, b.eps) for _, b in budget_plan(args, attack_names, session.family)})
    by_id = {node.model_id: node for node in nodes}
    for node in nodes:  # what each defense declares for its own models, flagged or not
        declared = [adaptive.Prescription(a, dict(c)) for a, c in
                    DEFENSES.get(node.defense).obj().adaptive_attacks(node.config)]
        for p in declared:
            for threat in budgets:
                if threat[0] in adaptive.attack_norms(p.attack):
                    log(f"adapt   {node.label:<40} {p.label} at {threat[0]} {threat[1]:g} (declared by {node.defense})")
                    session.runner.record(node, p.attack, dict(p.config), Budget(*threat), args.n_eval, args.seed,
                                          adaptive=[f"declared by {node.defense}"])
    for _ in range(rounds):
        ran = 0
        assessments = assess(ResultSet.from_store(session.store, args.dataset), set(by_id))
        for model_id, m in sorted(assessments.items()):
            if not m.diagnosis.suspected:
                continue
            fired = m.diagnosis.fired
            for threat in budgets:
                t = m.threats.get(threat)
                if t is None:
                    continue
                for p in adaptive.missing(fired, threat[0], t.records, m.has_teacher):
                    log(f"adapt   {by_id[model_id].label:<40} {p.label} at {threat[0]} {threat[1]:g} "
                        f"(answers {', '.join(fired)})")
                    session.runner.record(by_id[model_id], p.attack, dict(p.config), Budget(*threat), args.n_eval,
                                          args.seed, adaptive=fired)
                    ran += 1
        if not ran:
            return


def _command_line() -> str:
    """The command as a user would retype it (recorded in each record's provenance)."""
    return "bench " + " ".join(shlex.quote(a) for a in _ARGV)


def plan_reference(session, args):
    """The vanilla model of the run's dataset/arch/seed/epochs, when it is already trained: the
    reference for the logit-size probe (rule R7). Never trained just for that."""
    from bench.pipeline import plan_model

    node = plan_model("vanilla", {}, arch=session.arch, dataset=args.dataset, seed=args.seed, epochs=args.epochs)
    return node if session.store.has_model(node.model_id) else None


def _summary(runner) -> str:
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
    from bench.publish import _write_atomic
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


def cmd_run(args, log) -> int:
    from bench.registry import ATTACKS, DEFENSES
    from bench.render.markdown import board_markdown

    defenses = DEFENSES.resolve(args.defense)
    attacks = ATTACKS.resolve(args.attacks)
    per_defense, per_attack = split_overrides(args.sets, defenses, attacks)
    out = _leaderboard_path(args)
    session = _Session(args, log)
    nodes = session.plan(args, defenses, per_defense)
    budget_plan(args, attacks, session.family, session.dataset.shape)  # budgets checked before any training
    for node in nodes:
        session.runner.model(node)
    _run_attacks(args, session, nodes, attacks, per_attack)
    _probe(session, args, nodes)
    _adaptive_stage(args, session, nodes, attacks, log)
    command = _command_line()
    board = _board(session.store, args.dataset, {node.model_id for node in nodes})
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_board(board, out, log)
    print(board_markdown(board, command=command))
    log(f"{_summary(session.runner)}; leaderboard written to {out} (and {out.with_suffix('.json').name})")
    return 0


def _probe(session, args, nodes) -> None:
    """Probes of every model of the run and of its undefended reference (rule R7), when trained."""
    for node in nodes:
        session.runner.probes(node, args.n_eval)
    if not getattr(args, "model_id", None):
        reference = plan_reference(session, args)
        if reference is not None and reference.model_id not in {node.model_id for node in nodes}:
            session.runner.probes(reference, args.n_eval)


def cmd_train(args, log) -> int:
    from bench.registry import DEFENSES

    defenses = DEFENSES.resolve(args.defense)
    per_defense, _ = split_overrides(args.sets, defenses, [])
    session = _Session(args, log)
    for node in session.plan(args, defenses, per_defense):
        session.runner.model(node)
        print(f"{node.model_id}  {node.label}  {node.arch}  {node.dataset}")
    log(_summary(session.runner))
    return 0


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
    _run_attacks(args, session, nodes, attacks, per_attack)
    _probe(session, args, nodes)
    _adaptive_stage(args, session, nodes, attacks, log)
    from bench.render.markdown import board_markdown

    print(board_markdown(_board(session.store, args.dataset, {node.model_id for node in nodes}),
                         command=_command_line()))
    log(_summary(session.runner))
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
        from bench.publish import _write_atomic

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


VERBS = {"run": cmd_run, "train": cmd_train, "eval": cmd_eval, "list": cmd_list, "leaderboard": cmd_leaderboard,
         "store": cmd_store}


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
