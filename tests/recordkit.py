"""Fixed records for tests: record.json dicts and per-example frames made by hand (no training),
an in-memory ResultSet over them, and a writer that lays them out as a real store on disk."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.store.records import ModelInfo, Probes, Record, ResultSet
from bench.core.specs import content_hash


def model_spec(model_id: str, defense: str = "vanilla", config: dict | None = None, arch: str = "digits-cnn",
               dataset: str = "digits", seed: int = 0, upstream: dict | None = None) -> dict:
    return {"model_id": model_id, "defense": defense, "config": config or {"epochs": 5}, "arch": arch,
            "dataset": dataset, "seed": seed, "upstream": upstream or {}, "label": defense}


def make_record(spec: dict, attack: str, norm: str, eps: float, survived, *, clean=None, labels=None,
                attack_config: dict | None = None, start: int = 0, fooled_any_size=None,
                command: str = "bench run (test)", adaptive: list[str] | None = None,
                columns: dict | None = None) -> tuple[dict, pd.DataFrame]:
    """A record of `attack` on the model of `spec`: `survived[i]` is example start+i's adv_correct.
    `clean` defaults to all correct; `labels` to i % 10."""
    n = len(survived)
    clean = [True] * n if clean is None else list(clean)
    labels = [(start + i) % 10 for i in range(n)] if labels is None else list(labels)
    survived = [bool(s) and bool(c) for s, c in zip(survived, clean)]
    fooled = [c and not s for s, c in zip(survived, clean)] if fooled_any_size is None else list(fooled_any_size)
    adv_pred = [lab if not f else (lab + 1) % 10 for lab, f in zip(labels, fooled)]
    clean_pred = [lab if c else (lab + 1) % 10 for lab, c in zip(labels, clean)]
    frame = pd.DataFrame({"index": range(start, start + n), "label": labels, "clean_pred": clean_pred,
                          "adv_pred": adv_pred, "clean_correct": clean, "adv_correct": survived,
                          "perturbation": [0.1 if f else float("nan") for f in fooled], **(columns or {})})
    attack_config = attack_config or {}
    rid = content_hash({"model": spec["model_id"], "attack": attack, "config": attack_config, "norm": norm,
                        "eps": eps, "start": start, "n": n})
    n_clean = sum(clean)
    rec = {
        "schema_version": 1, "record_id": rid, "model_id": spec["model_id"],
        "spec": {"defense": {"name": spec["defense"], "label": spec["defense"], "config": spec["config"]},
                 "upstream": [], "arch": spec["arch"],
                 "dataset": {"name": spec["dataset"], "split": "test", "n": start + n, "seed": 0},
                 "attack": {"name": attack, "config": attack_config,
                            "library": "pyautoattack" if attack == "autoattack" else "test", "library_version": "0",
                            "minimal_norm": attack in ("cw", "ddn", "ddn-margin", "fmn")},
                 "budget": {"norm": norm, "eps": eps}, "seed": spec["seed"]},
        "metrics": {"n": n, "clean_acc": n_clean / n, "robust_acc": sum(survived) / n,
                    "success_rate": (n_clean - sum(survived)) / n_clean if n_clean else 0.0,
                    "unbounded_success_rate": sum(fooled) / n_clean if n_clean else 0.0, "perturbation": None},
        "attack_notes": [], "per_example": "per_example.csv",
        "provenance": {"distill_bench_version": "test", "torch_version": "test", "device": "cpu",
                       "wall_seconds": 1.0, "started_at": "2026-01-01T00:00:00+00:00", "command": command},
    }
    if adaptive:
        rec["adaptive"] = {"rules": list(adaptive)}
    return rec, frame


def probes(model_id: str, dataset: str = "digits", n: int = 100, zero=0.0, saturated=0.0, logit_l1=50.0,
           randomized=0.0, unavailable=0.0, nonfinite=0.0, instability=None) -> dict:
    return {"probe_id": content_hash({"p": model_id, "n": n}), "model_id": model_id, "label": "x", "arch": "digits-cnn",
            "dataset": dataset, "probe_version": 1, "n": n, "clean_acc": 0.9, "zero_grad_share": zero,
            "saturated_share": saturated, "logit_l1_median": logit_l1, "top2_gap_median": 5.0, "sensitivity": 0.5,
            "confidence_correct": 0.9, "ce_grad_l1": {"q10": 0.1, "median": 0.2, "q90": 0.3},
            "randomized_share": randomized, "grad_unavailable_share": unavailable, "grad_nonfinite_share": nonfinite,
            "ce_grad_l1_per_example": [0.2] * 4, "loss_instability": instability}


def result_set(records: list[tuple[dict, pd.DataFrame]], specs: list[dict] = (), probe_list: list[dict] = ()) -> ResultSet:
    frames = {rec["record_id"]: frame for rec, frame in records}
    return ResultSet([Record.from_json(rec) for rec, _ in records], [Probes.from_json(p) for p in probe_list],
                     {s["model_id"]: ModelInfo.from_spec(s) for s in specs}, lambda rid: frames[rid])


def write_store(root: Path, records: list[tuple[dict, pd.DataFrame]], specs: list[dict] = (),
                probe_list: list[dict] = ()) -> Path:
    """Lay the records out as a store on disk exactly as bench writes one, content hashes included
    (the weights are an empty safetensors file: nothing here loads a model)."""
    from safetensors.torch import save

    from bench.store.artifacts import seal

    for spec in specs:
        folder = root / "models" / spec["model_id"]
        folder.mkdir(parents=True, exist_ok=True)
        weights = save({})
        (folder / "model.safetensors").write_bytes(weights)
        (folder / "spec.json").write_text(json.dumps(seal(spec, {"model.safetensors": weights}), indent=2,
                                                     sort_keys=True))
    for rec, frame in records:
        folder = root / "records" / rec["record_id"]
        folder.mkdir(parents=True, exist_ok=True)
        csv = frame.to_csv(index=False).encode()
        (folder / "per_example.csv").write_bytes(csv)
        (folder / "record.json").write_text(json.dumps(seal(rec, {"per_example.csv": csv}), indent=2, sort_keys=True))
    for p in probe_list:
        folder = root / "probes"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{p['probe_id']}.json").write_text(json.dumps(seal(p, {}), indent=2, sort_keys=True))
    (root / "store.json").write_text(json.dumps({"store_id": "0" * 32}))
    return root
