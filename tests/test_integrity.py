"""The harness owns the truth: broken adapters are refused or neutralised, corrupt artifacts are
never used, cache keys hold everything that changes a result, concurrent runs compute each node once."""
from __future__ import annotations

import copy
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from bench.plugins.attacks.base import Attack
from bench.core.errors import AttackContractError
from bench.execute.evaluate import run_attack
from bench.core.specs import Budget
from bench.store.artifacts import Store

from test_cli import bench

CPU = torch.device("cpu")
LINF = Budget("linf", 0.1)


# --- broken adapters, written as a third party would write them ------------------------------
class InPlace(Attack):
    """Moves its input tensor 3× the budget in place and returns it."""
    name, norms, role = "in-place", frozenset({"linf"}), "black-box"

    def run(self, model, x, y, *, budget, num_classes, generator):
        x.add_(3 * budget.eps).clamp_(0, 1)
        return x


class BatchStats(Attack):
    """Runs the model in train mode, which updates BatchNorm's running statistics."""
    name, norms, role = "batch-stats", frozenset({"linf"}), "black-box"

    def run(self, model, x, y, *, budget, num_classes, generator):
        model.train()
        for _ in range(5):
            model(torch.rand_like(x) * 5)
        return x


class LeavesTrainMode(Attack):
    """Leaves the model in train mode (dropout on) without changing any parameter or buffer."""
    name, norms, role = "train-mode", frozenset({"linf"}), "black-box"

    def run(self, model, x, y, *, budget, num_classes, generator):
        model.train()
        return x


class OverwritesMetrics(Attack):
    """Reports its own robust and clean accuracy."""
    name, norms, role = "boastful", frozenset({"linf"}), "black-box"

    def run(self, model, x, y, *, budget, num_classes, generator):
        return x

    def extra_metrics(self):
        return {"robust_acc": 1.0, "clean_acc": 1.0, "queries": 7}


class Reorders(Attack):
    """A minimal-norm adapter that returns the batch shifted by one: other classes' images."""
    name, norms, role, minimal_norm = "reorders", frozenset({"l2"}), "white-box", True

    def run(self, model, x, y, *, budget, num_classes, generator):
        return x.roll(1, 0)


class ChangesLabels(Attack):
    """Overwrites the labels it is given, hoping the harness re-predicts against them."""
    name, norms, role = "labels", frozenset({"linf"}), "black-box"

    def run(self, model, x, y, *, budget, num_classes, generator):
        y.fill_(0)
        return x


def _attack(model, attack, x, y, budget=LINF):
    return run_attack(model, attack, x, y, budget, num_classes=10, seed=0, device=CPU, quiet=True)


def test_an_adapter_moving_its_input_in_place_is_measured_against_the_harness_copy(digits, digits_models):
    x, y = digits.eval_slice(20)
    before = x.clone()
    with pytest.raises(AttackContractError, match="outside the linf eps=0.1 budget"):
        _attack(digits_models["vanilla"], InPlace(), x, y)
    assert torch.equal(x, before)


def test_an_adapter_updating_batchnorm_statistics_is_refused_and_the_model_restored(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)).eval()
    x, y = digits.eval_slice(20)
    before = model(x).detach()
    with pytest.raises(AttackContractError, match="modified the model.*running_mean"):
        _attack(model, BatchStats(), x, y)
    assert not model.training and torch.equal(model(x).detach(), before)


def test_train_mode_left_by_an_adapter_is_undone_before_the_harness_predicts(digits, digits_models):
    model = copy.deepcopy(digits_models["vanilla"])
    x, y = digits.eval_slice(40)
    honest = _attack(model, OverwritesMetrics(), x, y).metrics["robust_acc"]
    outcome = _attack(model, LeavesTrainMode(), x, y)
    assert not model.training and outcome.metrics["robust_acc"] == honest


def test_extra_metrics_add_keys_but_never_replace_the_harness_numbers(digits, digits_models):
    x, y = digits.eval_slice(40)
    m = _attack(digits_models["student"], OverwritesMetrics(), x, y).metrics
    assert m["queries"] == 7
    assert m["robust_acc"] == m["clean_acc"] < 1.0  # the identity attack: robust = clean, as measured


def test_a_minimal_norm_adapter_that_reorders_the_batch_is_refused(digits, digits_models):
    x, y = digits.eval_slice(20)
    with pytest.raises(AttackContractError, match="nearer to another input"):
        _attack(digits_models["vanilla"], Reorders(), x, y, Budget("l2", 1.0))


def test_labels_changed_by_an_adapter_do_not_reach_the_harness(digits, digits_models):
    x, y = digits.eval_slice(40)
    m = _attack(digits_models["vanilla"], ChangesLabels(), x, y).metrics
    assert m["robust_acc"] == m["clean_acc"] > 0.5 and int((y == 0).sum()) < 10


# --- cache keys ----------------------------------------------------------------------------
def test_editing_a_plugin_module_changes_its_fingerprint(tmp_path, monkeypatch):
    from bench.plugins.registry import code_fingerprint

    (tmp_path / "acme_fp.py").write_text("class Shield:\n    def train(self):\n        return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("acme_fp")
    before = code_fingerprint(module.Shield, "acme==1.0")
    (tmp_path / "acme_fp.py").write_text("class Shield:\n    def train(self):\n        return 2\n")
    importlib.reload(module)
    after = code_fingerprint(module.Shield, "acme==1.0")
    assert before["package"] == after["package"] and before["modules"] != after["modules"]


def test_a_plugin_module_edited_after_it_was_loaded_is_refused_not_keyed_by_the_new_code(tmp_path, monkeypatch):
    """`inspect.getsource` reads the file on disk: an edit made while a run runs would key the
    run's later nodes (the adaptive stage's) by code the process is not running. Refused; a file
    touched but unchanged is fine, and a reloaded module is hashed afresh."""
    import os

    from bench.core.errors import BenchInputError
    from bench.plugins.registry import code_fingerprint

    path = tmp_path / "acme_fp_edit.py"
    path.write_text("class Shield:\n    def train(self):\n        return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("acme_fp_edit")
    before = code_fingerprint(module.Shield, "acme==1.0")
    later = os.stat(path).st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))  # touched: the same source
    assert code_fingerprint(module.Shield, "acme==1.0") == before
    path.write_text("class Shield:\n    def train(self):\n        return 2\n")
    os.utime(path, ns=(later + 10**9, later + 10**9))
    with pytest.raises(BenchInputError, match="changed on disk after this run loaded it"):
        code_fingerprint(module.Shield, "acme==1.0")
    importlib.reload(module)
    assert code_fingerprint(module.Shield, "acme==1.0")["modules"] != before["modules"]


# --- the command line over a real store -----------------------------------------------------
RUN = ["run", "--defense", "vanilla", "--attacks", "pgd,noise", "--norm", "linf", "--dataset", "digits",
       "--epochs", "2", "--n-eval", "30", "--no-adaptive"]


@pytest.fixture()
def small_store(tmp_path):
    out = tmp_path / "runs"
    assert bench(*RUN, "--out", out, "--quiet") == 0
    return out


def test_corrupt_weights_exit_2_in_eval_and_are_retrained_by_run(small_store, capsys):
    model_dir = next((small_store / "models").iterdir())
    weights = model_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0x10
    weights.write_bytes(bytes(data))
    capsys.readouterr()
    assert bench("store", "verify", "--out", small_store) == 1  # verify hashes every weights file
    assert f"model {model_dir.name} is corrupt" in capsys.readouterr().out
    code = bench("eval", "--model-id", model_dir.name, "--attacks", "pgd", "--norm", "linf", "--eps", "0.2",
                 "--out", small_store, "--dataset", "digits", "--n-eval", "30", "--quiet", "--no-adaptive")
    err = capsys.readouterr().err
    assert code == 2 and f"model {model_dir.name} is corrupt" in err and "Traceback" not in err
    assert bench(*RUN, "--out", small_store) == 0
    err = capsys.readouterr().err
    assert "trained 1 model(s)" in err and "is corrupt" in err
    assert Store(small_store).load_model(model_dir.name, _digits(), CPU) is not None


def _digits():
    from bench.plugins.datasets import load_dataset

    return load_dataset("digits")


def test_an_edited_record_stops_the_leaderboard_and_is_recomputed_by_run(small_store, capsys):
    rec_path = next((small_store / "records").glob("*/record.json"))
    rec = json.loads(rec_path.read_text())
    rec["metrics"]["robust_acc"] = 1.0
    rec_path.write_text(json.dumps(rec))
    capsys.readouterr()
    assert bench("leaderboard", "--out", small_store) == 2
    assert f"record {rec_path.parent.name} is corrupt" in capsys.readouterr().err
    assert bench(*RUN, "--out", small_store) == 0
    assert "ran 1 attack(s)" in capsys.readouterr().err
    assert bench("leaderboard", "--out", small_store, "--format", "json") == 0


def test_batch_size_is_in_the_key_and_force_recomputes(small_store, capsys):
    capsys.readouterr()
    assert bench(*RUN, "--out", small_store, "--attack-batch-size", "7") == 0
    assert "trained 0 model(s), reused 1; ran 2 attack(s)" in capsys.readouterr().err
    assert bench(*RUN, "--out", small_store, "--force", "noise") == 0
    assert "ran 1 attack(s), reused 1" in capsys.readouterr().err
    assert bench(*RUN, "--out", small_store, "--force") == 0
    assert "trained 1 model(s)" in capsys.readouterr().err
    assert bench("store", "verify", "--out", small_store) == 0


def test_crafted_model_ids_are_refused(small_store, capsys):
    for bad in ("../x", str(small_store / "models"), "./" + next((small_store / "models").iterdir()).name):
        assert bench("eval", "--model-id", bad, "--attacks", "pgd", "--out", small_store, "--dataset", "digits") == 2
        assert "is not a valid id" in capsys.readouterr().err


def test_two_concurrent_runs_compute_each_node_once(tmp_path):
    out = tmp_path / "runs"
    argv = [sys.executable, "-m", "bench.cli", "run", "--defense", "vanilla,defensive-distillation", "--attacks",
            "pgd,noise", "--norm", "linf", "--dataset", "digits", "--epochs", "2", "--n-eval", "30", "--no-adaptive",
            "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    logs = [p.communicate(timeout=600)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    trained = sum(line.startswith("train ") for log in logs for line in log.splitlines())
    attacked = sum(line.startswith("attack ") for log in logs for line in log.splitlines())
    store = Store(out)
    assert trained == len(list((out / "models").iterdir())) == 3  # vanilla, the T=100 teacher, the student
    assert attacked == len(list((out / "records").iterdir())) == 4
    from bench.core.files import sha256_file

    rows = dict(store.query("SELECT record_id, file_sha256 FROM records"))
    assert rows == {d.name: sha256_file(d / "record.json") for d in (out / "records").iterdir()}
    assert not store.problems and not list((out / "tmp").iterdir())


class SwapsTwo(Reorders):
    """Swaps the first two outputs and returns the rest untouched."""
    name = "swaps-two"

    def run(self, model, x, y, *, budget, num_classes, generator):
        out = x.clone()
        out[[0, 1]] = x[[1, 0]]
        return out


def test_swapped_minimal_norm_outputs_are_not_counted_as_successes(digits, digits_models):
    x, y = digits.eval_slice(20)
    keep = (y[0] != y[1]).item() and digits_models["vanilla"](x[:2]).argmax(1).tolist() == y[:2].tolist()
    assert keep  # the first two test digits are of different classes and both correctly classified
    outcome = _attack(digits_models["vanilla"], SwapsTwo(), x, y, Budget("l2", 0.5))
    assert outcome.metrics["unbounded_success_rate"] == 0.0
    assert any("nearer another input" in note for note in outcome.notes)


class HookCheat(Attack):
    """Leaves a forward hook that makes the model look robust to whatever attacks it next."""
    name, norms, role = "hook-cheat", frozenset({"linf"}), "black-box"

    def run(self, model, x, y, *, budget, num_classes, generator):
        model.register_forward_hook(lambda module, inputs, out: out * 0 + torch.nn.functional.one_hot(
            y[: len(out)] if len(out) == len(y) else out.argmax(1), out.shape[1]).float())
        return x


class ForwardCheat(Attack):
    """Assigns `forward` on the instance (a change no parameter check sees)."""
    name, norms, role = "forward-cheat", frozenset({"linf"}), "black-box"

    def run(self, model, x, y, *, budget, num_classes, generator):
        original = model.forward
        model.forward = lambda inp: original(inp) * 0
        return x


@pytest.mark.parametrize("cheat", [HookCheat, ForwardCheat])
def test_a_hook_or_an_assigned_forward_is_refused_and_never_reaches_the_model_others_attack(cheat, digits,
                                                                                          digits_models):
    from bench.plugins.attacks.pgd import PGD

    model = digits_models["vanilla"]
    x, y = digits.eval_slice(30)
    honest = _attack(model, PGD(PGD.Config(steps=5)), x, y)
    with pytest.raises(AttackContractError, match="changed the forward"):
        _attack(model, cheat(), x, y)
    assert not model._forward_hooks and "forward" not in vars(model)
    after = _attack(model, PGD(PGD.Config(steps=5)), x, y)
    assert after.per_example["adv_correct"].tolist() == honest.per_example["adv_correct"].tolist()
