"""Check: a run killed (SIGKILL) at any point and restarted with the same command ends with the
store an uninterrupted run makes: same models, records and metrics, an index equal to the files,
no leftovers, nothing corrupt (`bench store verify`).

    .venv/bin/python benchmarks/kill_resume.py --points 10
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN = ["run", "--defense", "vanilla,defensive-distillation", "--attacks", "pgd,noise,fgsm", "--norm", "linf",
       "--dataset", "digits", "--epochs", "3", "--n-eval", "60", "--quiet"]


def bench(*argv, out: Path, kill_after: float | None = None) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", *argv, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill_after is None:
        return proc.wait()
    time.sleep(kill_after)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    return proc.wait()


def contents(out: Path) -> dict:
    models = sorted(p.name for p in (out / "models").iterdir())
    records = {}
    for folder in sorted((out / "records").iterdir()):
        rec = json.loads((folder / "record.json").read_text())
        records[folder.name] = (rec["metrics"]["clean_acc"], rec["metrics"]["robust_acc"],
                                (folder / "per_example.csv").read_bytes())
    probes = sorted(p.name for p in (out / "probes").glob("*.json"))
    return {"models": models, "records": records, "probes": probes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10, help="kill points spread over one run's duration")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    t0 = time.perf_counter()
    assert bench(*RUN, out=root / "reference") == 0
    duration = time.perf_counter() - t0
    reference = contents(root / "reference")
    print(f"uninterrupted run: {duration:.1f} s, {len(reference['models'])} models, "
          f"{len(reference['records'])} records, {len(reference['probes'])} probe sets")
    survived = 0
    for i in range(1, args.points + 1):
        at = duration * i / (args.points + 1)
        out = root / f"killed-{i}"
        bench(*RUN, out=out, kill_after=at)
        code = bench(*RUN, out=out)
        verify = subprocess.run([sys.executable, "-m", "bench.cli", "store", "verify", "--out", str(out)],
                                capture_output=True, text=True)
        leftovers = list((out / "tmp").iterdir()) if (out / "tmp").exists() else []
        same = code == 0 and contents(out) == reference
        ok = same and verify.returncode == 0 and not leftovers
        survived += ok
        print(f"kill at {at:5.1f} s: resume exit {code}, store {'identical' if same else 'DIFFERENT'}, "
              f"verify exit {verify.returncode}, leftovers {len(leftovers)} -> {'ok' if ok else 'FAILED'}", flush=True)
    print(f"{survived} of {args.points} kill points resumed to the uninterrupted store")


if __name__ == "__main__":
    main()
