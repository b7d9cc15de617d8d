"""One composer: `distill_bench.run(...)` does exactly what `bench run` does, and the layers hold."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import grimp
import pytest

import distill_bench
from bench.cli import main
from bench.core.errors import BenchInputError
from bench.store.artifacts import Store

ARGS = dict(defense="vanilla,defensive-distillation", attacks="pgd,pgd-margin", norm="linf", dataset="digits",
            epochs=2, n_eval=20)


def _results(root: Path) -> dict:
    store = Store(root, create=False)
    out = {}
    for rec in store.records():
        frame = (root / "records" / rec["record_id"] / "per_example.csv").read_bytes()
        out[rec["record_id"]] = (rec["model_id"], rec["metrics"], rec["spec"], frame)
    return out


def test_api_run_and_bench_run_make_identical_records(tmp_path, capsys):
    cli = tmp_path / "cli"
    assert main(["run", "--defense", ARGS["defense"], "--attacks", ARGS["attacks"], "--norm", "linf",
                 "--dataset", "digits", "--epochs", "2", "--n-eval", "20", "--out", str(cli), "--quiet"]) == 0
    printed = capsys.readouterr().out
    result = distill_bench.run(**ARGS, store=str(tmp_path / "api"))
    assert not result.failed and result.leaderboard == tmp_path / "api" / "leaderboard.md"
    ours, theirs = _results(cli), _results(tmp_path / "api")
    assert ours and ours == theirs  # same record ids, model ids, metrics, specs and per-example bytes
    # the boards differ only in the commands that made the records (the API's records name none)
    produced_by = re.compile(r"\nProduced by:\n\n```\n.*?```\n", re.S)
    assert produced_by.sub("", (cli / "leaderboard.md").read_text()) == result.leaderboard.read_text()
    assert "defensive-distillation" in printed and "defensive-distillation" in result.markdown()


def test_api_refuses_bad_input_with_one_line_before_any_work(tmp_path):
    with pytest.raises(BenchInputError, match="unknown norm 'linfty'"):
        distill_bench.run(defense="vanilla", attacks="pgd", norm="linfty", store=str(tmp_path / "runs"))
    with pytest.raises(BenchInputError, match="defense"):
        distill_bench.run(defense="no-such-defense", store=str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


def test_a_dry_run_through_the_api_plans_and_writes_nothing(tmp_path):
    result = distill_bench.run(**ARGS, store=str(tmp_path / "runs"), dry_run=True)
    assert result.board is None and "plan:" in result.plan and not (tmp_path / "runs").exists()


def test_no_import_cycles_between_modules_of_the_harness():
    graph = grimp.build_graph("bench", "defenses", "distill_bench")
    modules = sorted(m for m in graph.modules if m.startswith(("bench.", "defenses.", "distill_bench")))
    cycles = [(a, b) for a, b in itertools.permutations(modules, 2)
              if graph.direct_import_exists(importer=a, imported=b) and graph.chain_exists(importer=b, imported=a)]
    assert not cycles, f"import cycles through: {cycles[:5]}"


def test_every_verb_reads_attacks_all_the_same_way():
    """`--attacks all` with one norm skips the attacks without it, for `bench run` and `bench audit`
    alike (the audit used to refuse C&W at --norm linf); an attack named explicitly is an error."""
    from bench.compose.requests import Evaluation
    from bench.plan.budgets import budget_plan

    implicit = Evaluation.build("all", norm="linf")
    pairs = budget_plan(implicit.attacks, implicit.norms, implicit.eps, "mnist", attacks_named=implicit.attacks_named)
    assert pairs and {b.norm for _, b in pairs} == {"linf"} and "cw" not in {a for a, _ in pairs}
    named = Evaluation.build("pgd,cw", norm="linf")
    with pytest.raises(BenchInputError, match="attack 'cw' supports l2, not --norm linf"):
        budget_plan(named.attacks, named.norms, named.eps, "mnist", attacks_named=named.attacks_named)
