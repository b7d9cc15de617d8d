"""Audit any model: through `distill_bench.audit` and `bench audit`, a model no plugin trained gets the
same assessment as the same weights trained by the `vanilla` plugin; bad models and bad input exit 2."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import distill_bench
from bench.plugins.archs import create_model
from bench.assess.assessment import assess
from bench.store.records import ResultSet
from bench.store.artifacts import Store

from test_cli import bench

PLUGINS = Path(__file__).parent / "plugins"
ATTACKS = "pgd,pgd-margin,autoattack,square"
COMMON = ["--dataset", "digits", "--attacks", ATTACKS, "--norm", "linf", "--n-eval", "40"]


@pytest.fixture(scope="module")
def vanilla_run(tmp_path_factory):
    """The vanilla plugin's model on digits, evaluated by `bench run`; its weights file and assessment."""
    out = tmp_path_factory.mktemp("audit") / "runs"
    assert bench("run", "--defense", "vanilla", "--epochs", "5", *COMMON, "--out", out, "--quiet") == 0
    store = Store(out)
    (spec,) = store.models()
    mid = spec["model_id"]
    return out, out / "models" / mid / "model.safetensors", assess(ResultSet.from_store(store, "digits"), {mid})[mid]


def _summary(m):
    return ({threat: (t.clean.correct, t.worst.correct, t.worst.n, sorted(a for a in t.attacks))
             for threat, t in m.threats.items()}, m.diagnosis.suspected, m.diagnosis.fired)


def test_api_audit_of_a_model_built_here_matches_the_vanilla_plugin(vanilla_run, digits):
    out, weights, reference = vanilla_run
    model = create_model("digits-cnn", digits)  # built here, not by a plugin
    model.load_state_dict(load_file(str(weights)))
    result = distill_bench.audit(model.eval(), dataset="digits", norm="linf", attacks=ATTACKS.split(","), n=40,
                                 store=out, epochs=5)
    assert _summary(result.assessment) == _summary(reference)
    assert result.model_id != reference.model_id and result.label.startswith("external")
    assert result.robust_accuracy[("linf", 0.3)] == reference.threats[("linf", 0.3)].worst.value
    assert "external" in result.markdown() and '"schema_version"' in result.json()
    again = distill_bench.audit(model.eval(), dataset="digits", norm="linf", attacks=ATTACKS.split(","), n=40,
                                store=out, epochs=5)  # cached by the hash of the weights and code
    assert again.model_id == result.model_id


def test_cli_audit_of_a_checkpoint_matches_the_vanilla_plugin(vanilla_run, tmp_path, capsys):
    out, weights, reference = vanilla_run
    bare = tmp_path / "bare.pt"  # the bare network's state dict, as torch.save writes it
    state = {k.removeprefix("body."): v for k, v in load_file(str(weights)).items() if k.startswith("body.")}
    torch.save(state, bare)
    capsys.readouterr()
    assert bench("audit", "--checkpoint", bare, "--arch", "digits-cnn", "--epochs", "5", *COMMON, "--out", out,
                 "--quiet") == 0
    assert "external: bare.pt" in capsys.readouterr().out
    store = Store(out)
    audited = [s for s in store.models() if s["defense"] == "external" and s["config"]["origin"] == "bare.pt"]
    (spec,) = audited
    m = assess(ResultSet.from_store(store, "digits"), {spec["model_id"]})[spec["model_id"]]
    assert _summary(m) == _summary(reference)
    # a registered architecture: `bench eval` can attack the stored external model further
    assert bench("eval", "--model-id", spec["model_id"], "--attacks", "noise", "--norm", "linf", "--dataset",
                 "digits", "--n-eval", "40", "--out", out, "--quiet") == 0


def test_eval_gives_the_verdict_run_gives_with_probes(vanilla_run, capsys):
    out, _, reference = vanilla_run
    for probe in (out / "probes").glob("*.json"):
        probe.unlink()  # `bench eval` must compute the probes itself
    capsys.readouterr()
    assert bench("eval", "--model-id", reference.model_id, *COMMON, "--out", out, "--quiet") == 0
    after = assess(ResultSet.from_store(Store(out), "digits"), {reference.model_id})[reference.model_id]
    assert _summary(after) == _summary(reference) and after.probes is not None


@pytest.fixture()
def plugins_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))


def test_factory_models_are_audited_and_rebuilt(tmp_path, plugins_on_path, capsys):
    out = tmp_path / "runs"
    assert bench("audit", "--model", "audit_models:tiny", *COMMON, "--attacks", "pgd", "--no-adaptive", "--out", out,
                 "--quiet") == 0
    assert "external: audit_models:tiny" in capsys.readouterr().out
    (spec,) = Store(out).models()
    assert spec["config"]["source"] == "factory" and len(spec["config"]["weights_sha256"]) == 64
    # the store names the factory, but never gets it run: the user names it
    assert bench("eval", "--model-id", spec["model_id"], "--attacks", "noise", "--norm", "linf", "--dataset", "digits",
                 "--n-eval", "20", "--out", out, "--quiet") == 2
    assert "a store never names code to run: pass `--factory audit_models:tiny`" in capsys.readouterr().err
    assert bench("eval", "--model-id", spec["model_id"], "--attacks", "noise", "--norm", "linf", "--dataset", "digits",
                 "--n-eval", "20", "--out", out, "--quiet", "--factory", "audit_models:tiny") == 0


def test_a_ray_worker_rebuilds_a_factory_model_only_from_the_factories_the_user_named(tmp_path, plugins_on_path):
    """`bench eval --executor ray --factory F`: the worker's store trusts F (it used to trust none and
    every node of a factory model failed there), and without it the worker refuses like the driver."""
    from bench.core.specs import probe_id_of
    from bench.execute.executors import TaskFailed, WorkerContext, run_in_worker
    from bench.plan.nodes import stored_node
    from bench.plan.tasks import ProbeTask

    out = tmp_path / "runs"
    assert bench("audit", "--model", "audit_models:tiny", *COMMON, "--attacks", "noise", "--no-adaptive",
                 "--out", out, "--quiet") == 0
    (spec,) = Store(out).models()
    node = stored_node(Store(out), spec["model_id"])
    task = ProbeTask(node, 20, probe_id_of(spec["model_id"], "digits", 20))
    untrusted = WorkerContext(str(out), "digits", None, "cpu", 100, None, "")
    with pytest.raises(TaskFailed, match="a store never names code to run"):
        run_in_worker(untrusted, task)
    trusted = WorkerContext(str(out), "digits", None, "cpu", 100, None, "", factories=frozenset({"audit_models:tiny"}))
    run_in_worker(trusted, task)
    assert Store(out).load_probes(task.probe_id)["clean_acc"] >= 0


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "missing.safetensors", "--arch", "digits-cnn"], "--checkpoint 'missing.safetensors' does not exist"),
    (["--checkpoint", "{truncated}", "--arch", "digits-cnn"], "the weights do not fit architecture 'digits-cnn'"),
    (["--checkpoint", "{pickled}", "--arch", "digits-cnn"], "cannot be read safely"),
    (["--checkpoint", "{truncated}"], "--checkpoint needs --arch"),
    (["--model", "audit_models:probabilities"], "returns probabilities"),
    (["--model", "audit_models:scaled_probabilities"], "returns probabilities times 100"),
    (["--model", "audit_models:in_train_mode"], "is in train mode"),
    (["--model", "audit_models:broken"], "the factory failed (RuntimeError: cannot build the model)"),
    (["--model", "audit_models:not_a_module"], "returned str, not a torch.nn.Module"),
    (["--model", "no_such_package.models:net"], "cannot be imported (ModuleNotFoundError"),
    (["--model", "no-colon"], "is not package.module:factory"),
    (["--model", "builtins:exit"], "the factory failed (SystemExit"),
    (["--model", "audit_models:tiny", "--weights", "{truncated}"], "the weights do not fit the module"),
])
def test_bad_models_and_bad_input_exit_2_with_one_line(argv, message, tmp_path, plugins_on_path, capsys, digits):
    model = create_model("digits-cnn", digits)
    state = model.state_dict()
    truncated = tmp_path / "truncated.safetensors"
    save_file({k: v.contiguous() for k, v in list(state.items())[:2]}, str(truncated))
    pickled = tmp_path / "pickled.pt"
    torch.save(model, pickled)  # a whole pickled module: never loaded
    argv = [a.format(truncated=truncated, pickled=pickled) for a in argv]
    code = bench("audit", *argv, *COMMON, "--out", tmp_path / "runs")
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_model_expecting_another_input_range_is_refused(digits, tmp_path):
    model = create_model("digits-cnn", digits)
    from defenses.vanilla import Vanilla
    from defenses.base import TrainContext

    trained = Vanilla().train(Vanilla.Config(epochs=5), TrainContext(digits, "digits-cnn", torch.device("cpu"), 0,
                                                                     quiet=True), {})

    class Expects255(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = trained

        def forward(self, x):
            return self.inner(x / 255)

    with pytest.raises(ValueError, match="expects inputs in another range.*on \\[0, 255\\]"):
        distill_bench.audit(Expects255().eval(), dataset="digits", attacks="pgd", n=40, store=tmp_path / "runs")
    del model


def test_the_zoo_says_it_needs_the_package_and_network(tmp_path, capsys):
    try:
        import robustbench  # noqa: F401
        pytest.skip("robustbench is installed here")
    except ImportError:
        pass
    code = bench("audit", "--model", "robustbench:Standard", "--dataset", "digits", "--out", tmp_path / "runs")
    err = capsys.readouterr().err
    assert code == 2 and "needs the robustbench package (pip install robustbench) and network access" in err
