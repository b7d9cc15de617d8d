"""The command line, as a user meets it: runs, resumes, and refuses bad input with exit code 2."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.store.artifacts import Store

FAST = ["--dataset", "digits", "--epochs", "3", "--n-eval", "40", "--quiet",
        "--set", "cw.max_iterations=20", "--set", "cw.binary_search_steps=2"]


def bench(*argv) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        return exc.code


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert bench("run", "--defense", "vanilla,defensive-distillation", "--attacks", "pgd,cw", "--out", out, *FAST) == 0
    return out


def test_run_writes_models_records_index_and_leaderboard(finished_run):
    out = finished_run
    assert len(list((out / "models").iterdir())) == 3  # vanilla, the T=100 teacher, the student
    records = [r for r in (out / "records").iterdir() if not json.loads((r / "record.json").read_text()).get("adaptive")]
    assert len(records) == 6  # 2 models x (pgd linf, pgd l2, cw l2), besides what the adaptive stage added
    rec = json.loads((records[0] / "record.json").read_text())
    assert rec["schema_version"] == 1 and isinstance(rec["metrics"]["robust_acc"], float)
    assert rec["spec"]["attack"]["library"] in ("torchattacks", "distill-bench")
    board = (out / "leaderboard.md").read_text()
    assert "defensive-distillation" in board and "robust (worst case)" in board and "## digits · L∞ leaderboard" in board
    # pgd and cw alone are not the minimum suite: nothing is ranked, every row says what is missing
    assert "_No row meets the ranking conditions" in board and "missing AutoAttack standard" in board
    assert json.loads((out / "leaderboard.json").read_text())["schema_version"] == 5


def test_make_run_suite_never_ranks_distillation_on_its_pgd_number(tmp_path):
    """`make run`'s attack set on digits: it meets the L∞ minimum suite, so vanilla is ranked; defensive
    distillation is flagged, unranked (an upper bound, with the reason) without the adaptive stage,
    and ranked at what survives the adaptive attacks with it, never at PGD's number."""
    out = tmp_path / "runs"
    argv = ["run", "--defense", "vanilla,defensive-distillation", "--attacks", "pgd,pgd-margin,autoattack,square",
            "--norm", "linf", "--out", out, "--dataset", "digits", "--epochs", "30", "--n-eval", "40",
            "--set", "square.n_queries=500", "--quiet"]
    assert bench(*argv, "--no-adaptive") == 0
    rows = {r["defense"]: r for r in json.loads((out / "leaderboard.json").read_text())["pages"][0]["tables"][0]["rows"]}
    assert rows["vanilla"]["rank"] == 1 and not rows["vanilla"]["reasons"]
    dd = rows["defensive-distillation"]
    assert dd["rank"] is None and dd["robust_is_upper_bound"] and "masking suspected" in dd["reasons"][0]
    assert dd["claimed"]["value"] > dd["robust"]["value"] + 0.3
    assert "≤ " in (out / "leaderboard.md").read_text()
    assert bench(*argv) == 0  # now with the adaptive stage
    rows = {r["defense"]: r for r in json.loads((out / "leaderboard.json").read_text())["pages"][0]["tables"][0]["rows"]}
    dd = rows["defensive-distillation"]
    assert dd["adapted"] and dd["rank"] is not None and dd["claimed"]["value"] > dd["robust"]["value"] + 0.3
    assert "masked? " in (out / "leaderboard.md").read_text() and "· adapted" in (out / "leaderboard.md").read_text()


def test_second_run_trains_nothing_and_attacks_nothing(finished_run, capsys):
    before = {p: p.stat().st_mtime_ns for p in finished_run.rglob("record.json")}
    argv = ["run", "--defense", "vanilla,defensive-distillation", "--attacks", "pgd,cw", "--out", finished_run,
            *[a for a in FAST if a != "--quiet"]]
    assert bench(*argv) == 0
    err = capsys.readouterr().err
    assert "trained 0 model(s)" in err and "ran 0 attack(s), reused 6" in err
    assert before == {p: p.stat().st_mtime_ns for p in finished_run.rglob("record.json")}


def test_killed_run_redoes_only_what_is_missing(finished_run, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(finished_run, out)
    victim = sorted(r for r in (out / "records").iterdir()
                    if not json.loads((r / "record.json").read_text()).get("adaptive"))[0]
    shutil.rmtree(victim)  # as if the run died before this record was written
    (out / "tmp" / "half-written").mkdir(parents=True)  # and left a staging folder behind
    argv = ["run", "--defense", "vanilla,defensive-distillation", "--attacks", "pgd,cw", "--out", out,
            *[a for a in FAST if a != "--quiet"]]
    assert bench(*argv) == 0
    err = capsys.readouterr().err
    assert "trained 0 model(s)" in err and "ran 1 attack(s), reused 5" in err
    assert (victim / "record.json").is_file()


def test_leaderboard_and_list_read_the_store(finished_run, capsys):
    assert bench("leaderboard", "--out", finished_run) == 0
    assert "defensive-distillation" in capsys.readouterr().out
    assert bench("list", "models", "--out", finished_run) == 0
    assert "vanilla (temperature=100)" in capsys.readouterr().out


def test_train_then_eval_by_model_id(finished_run, capsys):
    assert bench("train", "--defense", "vanilla", "--out", finished_run, *FAST[:4], "--quiet") == 0
    model_id = capsys.readouterr().out.split()[0]
    assert bench("eval", "--model-id", model_id, "--attacks", "pgd", "--norm", "linf", "--eps", "0.1",
                 "--out", finished_run, "--dataset", "digits", "--n-eval", "40", "--quiet") == 0
    assert "L∞ ε = 0.1" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["run", "--defense", "vanila"], "unknown defense 'vanila'; did you mean 'vanilla'"),
    (["run", "--defense", "vanilla", "--attacks", "pgd,jsmaa"], "unknown attack 'jsmaa'"),
    (["run", "--defense", "defensive-distillation", "--set", "temperature=0"], "temperature must be positive, got 0.0"),
    (["run", "--defense", "defensive-distillation", "--set", "temperature=-5"], "temperature must be positive, got -5.0"),
    (["run", "--defense", "defensive-distillation", "--set", "temperature=hot"], "'hot' is not a valid finite float"),
    (["run", "--defense", "vanilla", "--set", "nosuch=1"], "no selected defense has a config field 'nosuch'"),
    (["run", "--defense", "vanilla", "--norm", "linf", "--eps", "0"], "budgets must be positive"),
    (["run", "--defense", "vanilla", "--norm", "linf", "--eps", "-0.3"], "budgets must be positive"),
    (["run", "--defense", "vanilla", "--eps", "0.3"], "--eps needs exactly one --norm"),
    (["run", "--defense", "vanilla", "--norm", "l7"], "unknown norm 'l7'"),
    (["run", "--defense", "vanilla", "--attacks", "cw", "--norm", "linf"], "attack 'cw' supports l2, not --norm linf"),
    (["run", "--defense", "vanilla", "--dataset", "mnist", "--data-root", "/nonexistent/data"],
     "dataset 'mnist' not found under /nonexistent/data"),
    (["run", "--defense", "vanilla", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["run", "--defense", "vanilla", "--arch", "resnet19"], "unknown architecture 'resnet19'"),
    (["run", "--defense", "vanilla", "--epochs", "0"], "must be a positive integer"),
    (["eval", "--model-id", "deadbeefdeadbeef", "--attacks", "pgd"], "does not exist (run `bench run` first"),
    (["run", "--defense", "vanilla", "--set", "lr=inf"], "vanilla.lr='inf' is not a valid finite float"),
    (["run", "--defense", "vanilla", "--set", "weight_decay=-1"], "weight_decay must be a finite number >= 0"),
    (["run", "--defense", "vanilla", "--seed", "99999999999"], "must be an integer in [0, 4294967295]"),
    (["run", "--defense", "vanilla", "--norm", ""], "--norm '' names no norm"),
    (["run", "--defense", "vanilla", "--norm", "linf", "--eps", "5"], "an linf budget is at most 1"),
    (["run", "--defense", "vanilla", "--norm", "l2", "--eps", "1000", "--dataset", "digits"],
     "larger than any l2 distance between two inputs"),
    (["run", "--defense", "vanilla", "--epochs", "1e20"], "'1e20' is not an integer"),
    (["run", "--defense", "defensive-distillation", "--sweep", "temperature=5"], "a sweep needs two or more"),
    (["eval", "--model-id", "deadbeefdeadbeef", "--arch", "digits-cnn"], "--arch cannot be combined with --model-id"),
    (["run", "--defense", "vanilla", "--force", ",", "--dataset", "digits"], "--force ',' names nothing"),
    (["run", "--defense", "vanilla", "--device", "cuda:0"], None),
    (["run", "--defense", "vanilla", "--device", "cpu:7"], "torch has one CPU device"),
    (["run", "--defense", "vanilla", "--arch", ""], "--arch '' names no architecture"),
    (["run", "--defense", "vanilla", "--epochs", "٣"], "is not an integer"),
    (["run", "--defense", "vanilla", "--seed", "1_000"], "is not an integer"),
    (["run", "--defense", "defensive-distillation", "--set", "temperature=20_0"], "is not a valid finite float"),
    (["run", "--defense", "defensive-distillation", "--set", "temperature=２０"], "is not a valid finite float"),
    (["leaderboard", "--dataset", "foo"], "unknown dataset 'foo'"),
    (["leaderboard", "--dataset", ""], "unknown dataset ''"),
    (["run", "--defense", "vanilla", "--dataset", "digits", "--norm", "linf", "--eps", "1e-320"],
     "--eps 1e-320 at linf is too small to change a float32 pixel in [0, 1]"),
    (["run", "--defense", "vanilla", "--dataset", "digits", "--norm", "l2", "--eps", "2e-8"],
     "--eps 2e-08 at l2 is too small to change a float32 pixel"),
    (["run", "--defense", "vanilla", "--dataset", "digits", "--norm", "l0", "--eps", "0.01"],
     "--eps 0.01 at l0 allows no feature of 64 to change"),
    (["run", "--defense", "vanilla", "--dataset", "digits", "--n-eval", "99999999999999999999999"],
     "is larger than the test split of digits (360 examples)"),
    (["run", "--defense", "ard", "--dataset", "digits", "--set", "batch_size=99999999999999"],
     "ard.batch_size=99,999,999,999,999: its inputs alone need 23,841,858 GiB"),
])
def test_bad_input_exits_2_with_one_clear_line(argv, message, tmp_path, capsys):
    import torch

    if message is None:  # a GPU request on a machine without one
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        message = "CUDA is not available"
    code = bench(*argv, "--out", tmp_path / "runs")
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs" / "models").exists() or not any((tmp_path / "runs" / "models").iterdir())


def test_unreadable_checkpoint_exits_2(finished_run, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(finished_run, out)
    model_dir = next((out / "models").iterdir())
    (model_dir / "model.safetensors").write_bytes(b"not a checkpoint")
    code = bench("eval", "--model-id", model_dir.name, "--attacks", "pgd", "--out", out, "--dataset", "digits",
                 "--n-eval", "10", "--quiet")
    assert code == 2 and f"model {model_dir.name} is corrupt" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["run", "train", "eval", "list", "leaderboard", "store"])
def test_help_on_every_verb(verb):
    proc = subprocess.run([sys.executable, "-m", "bench.cli", verb, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: bench" in proc.stdout


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "bench"
    proc = subprocess.run([str(script), "list", "attacks"], capture_output=True, text=True)
    assert proc.returncode == 0 and "cw  [built-in]" in proc.stdout


def test_attacks_all_with_one_norm_skips_attacks_without_it():
    from bench.plan.budgets import budget_plan
    from bench.plugins.registry import ATTACKS

    plan = budget_plan(ATTACKS.names(), ("linf",), None, "mnist")
    names = {name for name, _ in plan}
    assert "pgd" in names and "cw" not in names and "jsma" not in names
    assert {b.norm for _, b in plan} == {"linf"}


@pytest.mark.parametrize("argv, message", [
    (["run", "--defense", "vanilla", "--dataset", "digits", "--out", "/proc/bench-store"],
     "--out '/proc/bench-store': '/proc' is not a writable folder"),
    (["run", "--defense", "vanilla", "--dataset", "digits", "--out", "/sys/kernel/bench-store"],
     "'/sys/kernel' is not a writable folder"),
    (["run", "--defense", "vanilla", "--dataset", "digits", "--out", "{tmp}/runs", "--leaderboard", "/proc/x/lb.md"],
     "--leaderboard '/proc/x/lb.md': '/proc' is not a writable folder"),
    (["leaderboard", "--out", "{tmp}", "--output", "/proc/x.md"], "--output '/proc/x.md': '/proc' is not a writable"),
    (["leaderboard", "publish", "--out", "{tmp}", "--dest", "/proc/pub"], "--dest '/proc/pub': '/proc' is not a writable"),
])
def test_unwritable_outputs_are_found_by_trying(argv, message, tmp_path, capsys):
    """As root `os.access` calls /proc and /sys writable; creating a file there fails. One line, exit 2,
    before any work, and the trial leaves nothing behind."""
    Store(tmp_path)
    code = bench(*[a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not list(tmp_path.glob(".bench-write-test-*"))


def test_batch_sizes_are_refused_only_beyond_memory():
    """A batch larger than a small training split is the whole split (fine); one whose float32 inputs
    alone exceed the machine's memory is refused, teachers included."""
    from bench.compose.run import check_batch_sizes
    from bench.core.errors import BenchInputError
    from bench.plan.nodes import plan_model

    gib = 2**30
    ard = plan_model("ard", {"batch_size": "5000"}, arch="digits-cnn", dataset="digits", seed=0)
    check_batch_sizes([ard], 64, memory=gib)  # 5,000 × 64 × 4 bytes: 1.2 MiB
    huge = plan_model("ard", {"batch_size": str(gib)}, arch="digits-cnn", dataset="digits", seed=0)
    with pytest.raises(BenchInputError, match="ard.batch_size=1,073,741,824: its inputs alone need 256 GiB, more than "
                                              "this machine's 1 GiB"):
        check_batch_sizes([huge], 64, memory=gib)
