"""The store: content-addressed artifacts, verified when read, an index that is a cache of the files,
atomic writes, leftovers removed, locks per node."""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import stat
import time

import pytest
import torch

from bench.plugins.archs import create_model
from bench.core.files import owner_tag
from bench.core.specs import Budget, ModelSpec, content_hash
from bench.store.artifacts import CorruptArtifact, Store
from recordkit import make_record, model_spec

CPU = torch.device("cpu")


def test_content_hash_is_stable_and_order_free():
    assert content_hash({"a": 1, "b": [1.5, "x"]}) == content_hash({"b": [1.5, "x"], "a": 1})
    a = ModelSpec("vanilla", {"epochs": 3, "lr": 0.1}, "digits-cnn", "digits", 0)
    b = ModelSpec("vanilla", {"lr": 0.1, "epochs": 3}, "digits-cnn", "digits", 0)
    c = ModelSpec("vanilla", {"lr": 0.1, "epochs": 4}, "digits-cnn", "digits", 0)
    assert a.model_id == b.model_id != c.model_id
    assert Budget("l2", 2.0) == Budget("l2", 2.0)


def _store_with_model(tmp_path, digits, seed=0):
    store = Store(tmp_path)
    torch.manual_seed(seed)
    model = create_model("digits-cnn", digits).eval()
    spec = ModelSpec("vanilla", {"seed": seed}, "digits-cnn", "digits", 0).to_json()
    store.save_model(model, spec)
    return store, model, spec["model_id"]


def _save_record(store, mid, survived=(True, False, True, True)):
    rec, frame = make_record(model_spec(mid), "pgd", "linf", 0.3, list(survived))
    return store.save_record(rec, frame)


def test_model_roundtrip_and_index_rebuilt_from_the_files(tmp_path, digits):
    store, model, mid = _store_with_model(tmp_path, digits)
    rec = _save_record(store, mid)
    loaded = store.load_model(mid, digits, CPU)
    x = digits.x_test[:5]
    assert torch.equal(loaded(x), model(x))
    (tmp_path / "index.sqlite").unlink()  # the index is a cache: reopening rebuilds it
    again = Store(tmp_path)
    assert [r["record_id"] for r in again.records(dataset="digits")] == [rec["record_id"]]
    assert again.query("SELECT robust_acc FROM records WHERE attack = 'pgd'") == [(0.75,)]
    assert [m["model_id"] for m in again.models()] == [mid]
    (tmp_path / "index.sqlite").write_bytes(b"garbage, not SQLite" * 100)  # a corrupt index is rebuilt
    assert [m["model_id"] for m in Store(tmp_path).models()] == [mid]


def test_a_flipped_bit_or_foreign_weights_are_never_used(tmp_path, digits):
    store, _, mid = _store_with_model(tmp_path, digits)
    weights = tmp_path / "models" / mid / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptArtifact, match="differs from the hash in spec.json"):
        store.load_model(mid, digits, CPU)
    _, _, other = _store_with_model(tmp_path / "other", digits, seed=1)
    shutil.copy(tmp_path / "other" / "models" / other / "model.safetensors", weights)  # another model's weights
    with pytest.raises(CorruptArtifact, match=mid):
        store.load_model(mid, digits, CPU)


@pytest.mark.parametrize("corrupt, why", [
    (lambda rec, csv: rec.write_text(rec.read_text().replace('"robust_acc": 0.75', '"robust_acc": 1.0')),
     "differs from its recorded hash"),
    (lambda rec, csv: csv.write_text("\n".join(csv.read_text().splitlines()[:3]) + "\n"), "per_example.csv"),
    (lambda rec, csv: rec.write_text(rec.read_text()[:50]), "not valid JSON"),
    (lambda rec, csv: csv.unlink(), "per_example.csv is missing"),
    (lambda rec, csv: rec.unlink(), "record.json is missing beside per_example.csv"),
])
def test_an_edited_or_truncated_record_is_reported_and_left_out(tmp_path, digits, corrupt, why):
    store, _, mid = _store_with_model(tmp_path, digits)
    rid = _save_record(store, mid)["record_id"]
    folder = tmp_path / "records" / rid
    corrupt(folder / "record.json", folder / "per_example.csv")
    again = Store(tmp_path)
    assert again.records() == [] and not again.has_record(rid)
    assert why in str(again.problems[f"record:{rid}"])


def test_a_model_folder_without_its_spec_is_reported(tmp_path, digits):
    _, _, mid = _store_with_model(tmp_path, digits)
    (tmp_path / "models" / mid / "spec.json").unlink()
    again = Store(tmp_path)
    assert again.models() == [] and "spec.json is missing" in str(again.problems[f"model:{mid}"])


def test_a_renamed_record_folder_is_corrupt_not_a_crash(tmp_path, digits):
    store, _, mid = _store_with_model(tmp_path, digits)
    rid = _save_record(store, mid)["record_id"]
    os.rename(tmp_path / "records" / rid, tmp_path / "records" / ("f" * 16))
    again = Store(tmp_path)
    problem = str(again.problems["record:" + "f" * 16])
    assert again.records() == [] and "differs from its folder name" in problem
    # never "`bench run` recomputes it": a run recomputes the record under its own id, not this folder
    assert "nothing recomputes a folder under another name: delete it" in problem and "recomputes it" not in problem


def test_the_index_follows_a_file_that_changed(tmp_path, digits):
    store, _, mid = _store_with_model(tmp_path, digits)
    rec = _save_record(store, mid)
    other = Store(tmp_path)  # a second process's view, opened before the change
    shutil.rmtree(tmp_path / "records" / rec["record_id"])
    rec2 = _save_record(store, mid, survived=(False, False, False, True))
    assert Store(tmp_path).query("SELECT record_id, robust_acc FROM records") == [(rec2["record_id"], 0.25)]
    other.refresh_index()
    assert [r["record_id"] for r in other.records()] == [rec2["record_id"]]


def test_a_half_present_artifact_is_replaced_by_the_next_save(tmp_path, digits):
    store, model, mid = _store_with_model(tmp_path, digits)
    (tmp_path / "models" / mid / "spec.json").unlink()  # killed between the weights and the spec
    assert not Store(tmp_path).has_model(mid)
    spec = ModelSpec("vanilla", {"seed": 0}, "digits-cnn", "digits", 0).to_json()
    store.save_model(model, spec)
    assert store.has_model(mid) and Store(tmp_path).models()[0]["model_id"] == mid


def test_leftovers_of_dead_writers_are_removed_and_live_ones_kept(tmp_path, digits):
    Store(tmp_path)
    host = owner_tag().rsplit("-", 1)[0]
    dead = subprocess_pid_that_exited()
    (tmp_path / "tmp" / f"{host}-{dead}.abc").mkdir()
    (tmp_path / "tmp" / f"{owner_tag()}.live").mkdir()  # ours: a run still going on
    (tmp_path / "probes" / f".x.json.{host}-{dead}.q1.tmp").write_text("{")
    Store(tmp_path)
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == [f"{owner_tag()}.live"]
    assert not list((tmp_path / "probes").glob("*.tmp"))


def subprocess_pid_that_exited() -> int:
    proc = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    proc.start()
    proc.join()
    return proc.pid


def test_artifacts_follow_the_umask(tmp_path, digits):
    old = os.umask(0o022)
    try:
        store, _, mid = _store_with_model(tmp_path, digits)
        rid = _save_record(store, mid)["record_id"]
    finally:
        os.umask(old)
    for path in [tmp_path / "models" / mid / "spec.json", tmp_path / "models" / mid / "model.safetensors",
                 tmp_path / "records" / rid / "record.json", tmp_path / "records" / rid / "per_example.csv"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def _compute_once(root: str, counter: str) -> None:
    store = Store(root)
    with store.lock("0123456789abcdef"):
        if not (store.root / "made").exists():
            with open(counter, "a") as fh:
                fh.write("x")
            time.sleep(0.5)
            (store.root / "made").write_text("1")


def test_a_node_lock_lets_one_process_compute_and_the_other_reuse(tmp_path):
    Store(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_compute_once, args=(str(tmp_path), str(tmp_path / "count"))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert (tmp_path / "count").read_text() == "x"


def test_ids_that_are_not_hex_digests_never_become_paths(tmp_path):
    store = Store(tmp_path)
    for bad in ("../x", "/etc", "./0123456789abcdef", "0123456789abcdef/"):
        with pytest.raises(Exception, match="not a valid id"):
            store.model_spec(bad)
        with pytest.raises(Exception, match="not a valid id"):
            store.load_record(bad)


def test_legacy_artifacts_are_sealed_on_request(tmp_path, digits):
    store, _, mid = _store_with_model(tmp_path, digits)
    path = tmp_path / "models" / mid / "spec.json"
    spec = json.loads(path.read_text())
    del spec["integrity"]
    path.write_text(json.dumps(spec))
    assert "no content hashes" in str(Store(tmp_path).problems[f"model:{mid}"])
    assert Store(tmp_path).seal_legacy() == 1
    assert Store(tmp_path).has_model(mid)


def test_records_of_replaced_weights_are_stale_and_removed(tmp_path, digits):
    store, _, mid = _store_with_model(tmp_path, digits)
    rec, frame = make_record(model_spec(mid), "pgd", "linf", 0.3, [True, False])
    rec["model_sha256"] = store.weights_sha256(mid)
    rid = store.save_record(rec, frame)["record_id"]
    assert store.has_record(rid)
    torch.manual_seed(7)
    other = create_model("digits-cnn", digits).eval()  # new weights under the same id (a forced retrain)
    store.save_model(other, ModelSpec("vanilla", {"seed": 0}, "digits-cnn", "digits", 0).to_json(), replace=True)
    assert not (tmp_path / "records" / rid).exists() and Store(tmp_path).records() == []
    # a record describing other weights than the stored model's is stale, never used
    rec2, frame2 = make_record(model_spec(mid), "noise", "linf", 0.3, [True, True])
    rec2["model_sha256"] = "0" * 64
    rid2 = store.save_record(rec2, frame2)["record_id"]
    again = Store(tmp_path)
    assert again.records() == [] and "stale: model" in str(again.problems[f"record:{rid2}"])



def test_probes_take_the_node_lock_a_concurrent_run_waits_and_reuses(tmp_path, digits):
    """While another run holds a probe's lock, probing the same model waits, then reuses what that
    run stored instead of computing it again (three concurrent runs used to probe three times)."""
    import threading

    from bench.core.specs import probe_id_of
    from bench.execute.runner import Runner
    from bench.plan.nodes import plan_model

    node = plan_model("vanilla", {}, arch="digits-cnn", dataset="digits", seed=0, epochs=1)
    store = Store(tmp_path / "runs")
    runner = Runner(store, digits, torch.device("cpu"), quiet=True, log=lambda m: None)
    runner.model(node)
    probe_id = probe_id_of(node.model_id, "digits", 20)
    got = {}
    with store.lock(probe_id):  # the other run, mid-computation
        worker = threading.Thread(target=lambda: got.setdefault("probes", runner.probes(node, 20)))
        worker.start()
        worker.join(2.0)
        assert worker.is_alive()  # waiting on the lock, not computing beside it
        theirs = {"probe_id": probe_id, "model_id": node.model_id, "dataset": "digits", "n": 20, "mark": "theirs"}
        store.save_probes(probe_id, theirs)
    worker.join(60)
    assert got["probes"]["mark"] == "theirs" and runner.probed == []


def _reseal(path, edit):
    """Edit a sealed artifact and seal it again, as someone who knows the format would."""
    from bench.store.integrity import seal

    obj = json.loads(path.read_text())
    files = obj.pop("integrity")["files"]
    edit(obj)
    path.write_text(json.dumps(seal(obj, {name: path.parent / name for name in files})))


@pytest.mark.parametrize("edit, why", [
    (lambda spec: spec["config"].update(source="factory", origin="os:abort"), "its config differ(s) from the key"),
    (lambda spec: spec.update(defense="external"), "its defense differ(s) from the key"),
])
def test_a_resealed_spec_off_its_key_is_corrupt(edit, why, tmp_path, digits):
    """A spec resealed with fields its key does not hold is never used: the fields a model is rebuilt
    from (a factory's name among them) are the ones its id was made of."""
    store, _, mid = _store_with_model(tmp_path, digits)
    _reseal(tmp_path / "models" / mid / "spec.json", edit)
    again = Store(tmp_path)
    assert not again.has_model(mid) and why in str(again.problems[f"model:{mid}"])


def test_a_resealed_spec_without_its_key_is_never_rebuilt_and_verify_says_so(tmp_path, digits, capsys):
    from bench.cli import main

    store, _, mid = _store_with_model(tmp_path, digits)
    _reseal(tmp_path / "models" / mid / "spec.json", lambda spec: spec.pop("key"))
    with pytest.raises(CorruptArtifact, match="no key: nothing ties its id to the fields it is rebuilt from"):
        Store(tmp_path).load_model(mid, digits, torch.device("cpu"))
    assert main(["store", "verify", "--out", str(tmp_path)]) == 1
    assert f"model {mid} is corrupt (no key" in capsys.readouterr().out
    code = main(["eval", "--model-id", mid, "--attacks", "fgsm", "--norm", "linf", "--dataset", "digits",
                 "--n-eval", "10", "--out", str(tmp_path), "--quiet"])
    assert code == 2 and "no key" in capsys.readouterr().err


def test_an_edited_probes_file_stops_the_leaderboard_and_run_recomputes_it(tmp_path, capsys):
    from bench.cli import main

    argv = ["--dataset", "digits", "--attacks", "fgsm", "--norm", "linf", "--n-eval", "20", "--epochs", "1",
            "--no-adaptive", "--quiet", "--out", str(tmp_path)]
    assert main(["run", "--defense", "vanilla", *argv]) == 0
    probe, = (tmp_path / "probes").glob("*.json")
    edited = json.loads(probe.read_text())
    edited["zero_grad_share"] = 0.9  # edited by hand, not resealed
    probe.write_text(json.dumps(edited))
    capsys.readouterr()
    assert main(["leaderboard", "--out", str(tmp_path)]) == 2
    assert f"probes {probe.stem} is corrupt (content hash mismatch)" in capsys.readouterr().err
    assert main(["run", "--defense", "vanilla", *argv]) == 0
    assert json.loads(probe.read_text())["zero_grad_share"] == 0.0
    assert main(["leaderboard", "--out", str(tmp_path)]) == 0
