"""The verbs of `bench`: each parses its arguments into a typed request and calls the composer
(bench/compose/), then prints what it returns. No planning or board assembly happens here."""
from __future__ import annotations

import sys
from pathlib import Path

from bench.compose import run as compose
from bench.compose.audit import audit
from bench.compose.boards import store_board
from bench.compose.requests import AuditRequest, EvalRequest, Evaluation, RunRequest, Session, TrainRequest, force_names
from bench.core.errors import BenchInputError
from bench.core.files import sha256_file, write_atomic
from bench.plan.overrides import split_overrides
from bench.plugins.archs import all_archs, arch_info
from bench.plugins.datasets import DATASETS, dataset_info, load_dataset
from bench.plugins.loading import load_checkpoint, load_factory, load_zoo
from bench.plugins.registry import ATTACKS, DEFENSES
from bench.report.markdown import board_markdown
from bench.report.publish import check_destination, publish, stale
from bench.report.serialize import board_csv, board_json_text
from bench.store.artifacts import Store
from bench.store.records import check_id


def session_of(args, command: str) -> Session:
    """The session options every training or attacking verb shares."""
    return Session(dataset=args.dataset, arch=args.arch, seed=args.seed, device=args.device, store=args.out,
                   data_root=args.data_root, download=args.download, quiet=args.quiet,
                   epochs=getattr(args, "epochs", None), attack_batch_size=getattr(args, "attack_batch_size", 500),
                   executor=args.executor, ray_address=args.ray_address, retries=args.retries,
                   gpus_per_task=args.gpus_per_task, force=force_names(args.force), dry_run=args.dry_run,
                   command=command)


def evaluation_of(args, per_attack) -> Evaluation:
    return Evaluation.build(args.attacks, norm=args.norm, eps=args.eps, per_attack=per_attack, n_eval=args.n_eval,
                            adaptive=not args.no_adaptive, binarization=args.binarization)


def _finish(result, log) -> int:
    """Print the dry run's plan, or the summary; exit 1 when a node failed (after the retries)."""
    if result.plan is not None:
        print(result.plan)
        return 0
    report = result.report
    if not (report.failed or report.skipped):
        return 0
    for line in report.summary_lines():
        print(f"bench: {line}", file=sys.stderr)
    print(f"bench: {len(report.failed)} node(s) failed, {len(report.skipped)} skipped; the others' results are "
          f"in the store (rerun to retry)", file=sys.stderr)
    return 1


def cmd_run(args, log, command: str) -> int:
    request = RunRequest.build(args.defense, args.attacks, sets=args.sets, sweep=args.sweep, norm=args.norm,
                               eps=args.eps, n_eval=args.n_eval, adaptive=not args.no_adaptive,
                               binarization=args.binarization,
                               leaderboard=args.leaderboard, session=session_of(args, command))
    result = compose.run(request, log)
    if result.board is not None:
        print(result.markdown())
        log(f"{result.summary}; leaderboard written to {result.leaderboard} "
            f"(and {result.leaderboard.with_suffix('.json').name})")
    return _finish(result, log)


def cmd_train(args, log, command: str) -> int:
    defenses = tuple(DEFENSES.resolve(args.defense))
    per_defense, _ = split_overrides(args.sets, defenses, [])
    result = compose.train(TrainRequest(defenses, per_defense, args.sweep, session_of(args, command)), log)
    if result.plan is None:
        for node in result.models:
            print(f"{node.model_id}  {node.label}  {node.arch}  {node.dataset}")
        log(result.summary)
    return _finish(result, log)


def cmd_eval(args, log, command: str) -> int:
    attacks = ATTACKS.resolve(args.attacks)
    if args.model_id:
        ids = tuple(check_id(mid, "--model-id") for mid in args.model_id)
        _, per_attack = split_overrides(args.sets, [], attacks)
        request = EvalRequest(evaluation_of(args, per_attack), model_ids=ids, session=session_of(args, command),
                              factories=tuple(args.factory or ()))
    else:
        defenses = tuple(DEFENSES.resolve(args.defense))
        per_defense, per_attack = split_overrides(args.sets, defenses, attacks)
        request = EvalRequest(evaluation_of(args, per_attack), defenses=defenses, per_defense=per_defense,
                              sweep=args.sweep, session=session_of(args, command))
    result = compose.evaluate(request, log)
    if result.board is not None:
        print(result.markdown())
        log(result.summary)
    return _finish(result, log)


def cmd_audit(args, log, command: str) -> int:
    attacks = ATTACKS.resolve(args.attacks)
    _, per_attack = split_overrides(args.sets, [], attacks)
    evaluation = evaluation_of(args, per_attack)
    dataset_info(args.dataset)
    provenance = {}
    if args.checkpoint:  # the model enters here: loading is part of reading the command line
        arch_info(args.arch)
        model = load_checkpoint(args.checkpoint, args.arch, load_dataset(args.dataset, args.data_root, args.download))
        source, origin, arch = "checkpoint", Path(args.checkpoint).name, args.arch
        provenance["file_sha256"] = sha256_file(Path(args.checkpoint))
    elif args.model.startswith("robustbench:"):
        model = load_zoo(args.model.partition(":")[2], args.dataset, args.norm).eval()
        source, origin, arch = "robustbench", args.model, "external"
    else:
        model = load_factory(args.model, args.weights)
        source, origin, arch = "factory", args.model, "external"
    session = Session(dataset=args.dataset, seed=args.seed, device=args.device, store=args.out,
                      data_root=args.data_root, download=args.download, quiet=args.quiet, epochs=args.epochs,
                      attack_batch_size=args.attack_batch_size, command=command,
                      arch=arch if arch != "external" else None)
    result = audit(model, AuditRequest(evaluation, session, name=args.name, source=source, origin=origin, arch=arch,
                                       provenance=provenance), log)
    print(result.markdown())
    log(f"audited model {result.model_id} ({result.label}) into {args.out}")
    return 0


def cmd_list(args, log, command: str) -> int:
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
        for spec in Store(args.out, create=False, log=log).models():
            print(f"{spec['model_id']}  {spec.get('label', spec['defense']):<40} {spec['arch']:<15} "
                  f"{spec['dataset']:<10} seed {spec['seed']}")
    return 0


def cmd_leaderboard(args, log, command: str) -> int:
    store = Store(args.out, create=False, log=log)
    store.all_probes(), store.all_binarizations()  # read lazily elsewhere: verify them before any page uses them
    if store.problems:  # never publish or show a board with an artifact missing from it silently
        first = next(iter(store.problems.values()))
        more = f" (and {len(store.problems) - 1} more: `bench store verify --out {args.out}`)" if len(store.problems) > 1 else ""
        raise BenchInputError(f"{first}{more}")
    if args.action == "publish":
        dest = Path(args.dest)
        if not args.dest.strip():
            raise BenchInputError("--dest '' must name a folder")
        if args.check:
            outdated = stale(store, dest, args.dataset, include_store=args.include_store)
            for why, path in outdated:
                print(f"{why}: {path}")
            print(f"{len(outdated)} file(s) to update in {args.dest}" if outdated else f"{args.dest} is up to date")
            return 1 if outdated else 0
        check_destination(store, dest, args.replace)
        changed = publish(store, dest, args.dataset, replace=args.replace, include_store=args.include_store)
        print(f"published {len(changed)} changed file(s) into {args.dest}")
        return 0
    board = store_board(store, args.dataset)
    text = {"markdown": lambda: board_markdown(board), "json": lambda: board_json_text(board),
            "csv": lambda: board_csv(board)}[args.format]()
    if args.output:
        write_atomic(Path(args.output), text.encode())
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


def cmd_store(args, log, command: str) -> int:
    store = Store(args.out, create=False, log=log)
    if args.action == "rebuild":
        store.rebuild_index()
        print(f"index rebuilt: {len(store.models())} model(s), {len(store.records())} record(s)")
    elif args.action == "seal":
        print(f"sealed {store.seal_legacy()} artifact(s) written before content hashes")
    else:
        store.verify_weights()
        # reading them records every edited or corrupt probe and binarization file as a problem
        measured = len(store.all_probes()) + len(store.all_binarizations())
    for problem in store.problems.values():
        print(problem)
    if args.action == "verify":
        print(f"{len(store.models())} model(s), {len(store.records())} record(s) and {measured} probe and "
              f"binarization file(s) checked; {len(store.problems)} corrupt")
    return 1 if store.problems and args.action == "verify" else 0


VERBS = {"run": cmd_run, "train": cmd_train, "eval": cmd_eval, "audit": cmd_audit, "list": cmd_list,
         "leaderboard": cmd_leaderboard, "store": cmd_store}
