"""Benchmark: the dry run's estimates against the measured run, node by node, on an empty store.

Runs `bench run ARGS --dry-run` on a fresh store, then `bench run ARGS --no-adaptive` (the adaptive
stage is planned after the assessment, so the dry run cannot estimate it), and prints per node the
estimate, where it came from (history or the cost model, bench/plan/costs.py), the wall seconds the
store recorded, and their ratio; then the totals. Not a test: the numbers depend on the machine.

    .venv/bin/python benchmarks/estimates.py -- --defense vanilla,defensive-distillation --attacks all \\
        --dataset digits --n-eval 100 --epochs 10 --set cw.max_iterations=100
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from bench.cli import main as bench

UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}


def estimates(args: list[str], out: Path) -> dict[str, tuple[float, str, str]]:
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert bench(["run", *args, "--no-adaptive", "--out", str(out), "--dry-run"]) == 0
    found = {}
    for line in text.getvalue().splitlines():
        m = re.match(r"run\s+(\S+)\s+([0-9a-f]{16})\s+([0-9.]+) (s|min|h)\s+(\S+)\s+(.*)", line)
        if m:
            found[m.group(2)] = (float(m.group(3)) * UNITS[m.group(4)], m.group(5), f"{m.group(1)} {m.group(6)}")
    return found


def measured(out: Path) -> dict[str, float]:
    walls = {}
    for spec in out.glob("models/*/spec.json"):
        walls[spec.parent.name] = json.loads(spec.read_text())["provenance"]["wall_seconds"]
    for rec in out.glob("records/*/record.json"):
        walls[rec.parent.name] = json.loads(rec.read_text())["provenance"]["wall_seconds"]
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the bench run arguments, after --")
    args = [a for a in parser.parse_args().args if a != "--"]
    out = Path(tempfile.mkdtemp(prefix="estimates-")) / "store"
    planned = estimates(args, out)
    started = time.perf_counter()
    assert bench(["run", *args, "--no-adaptive", "--quiet", "--out", str(out)]) == 0
    total = time.perf_counter() - started
    walls = measured(out)
    print(f"{'node':<60} {'estimate':>9} {'from':<8} {'measured':>9} {'ratio':>6}")
    est_sum = wall_sum = 0.0
    for node_id, (seconds, source, label) in sorted(planned.items(), key=lambda kv: -kv[1][0]):
        wall = walls.get(node_id)
        if wall is None:
            continue
        est_sum, wall_sum = est_sum + seconds, wall_sum + wall
        print(f"{label[:60]:<60} {seconds:9.1f} {source:<8} {wall:9.1f} {wall / max(seconds, 1e-9):6.2f}")
    print(f"\nnodes: estimate {est_sum:.0f} s, measured {wall_sum:.0f} s (ratio {wall_sum / est_sum:.2f}); "
          f"the whole command {total:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
