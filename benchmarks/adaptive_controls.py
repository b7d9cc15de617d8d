"""The adaptive evaluation on its controls, end to end on real digits: for each family of gradient
masking (tests/plugins/masking_controls.py) and the reference defenses, `bench run --attacks all`
at L∞ 0.3, then one line per model: claimed (PGD-CE), worst case before the adaptive stage, worst
case after it, the verdict, the attacks the adaptive stage added and the seconds they took.

    python benchmarks/adaptive_controls.py --out /tmp/controls [--n 100] [--epochs 30]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = (ROOT / "tests" / "test_controls.py").read_text().split('ENTRY_POINTS = """\\\n')[1].split('"""')[0]

CASES = [  # (label, defense, arch, extra args)
    ("vanilla", "vanilla", "digits-cnn", []),
    ("defensive distillation", "defensive-distillation", "digits-cnn", []),
    ("PGD adversarial training", "adversarial-training", "digits-cnn", ["--set", "eps=0.2", "--set", "pgd_steps=10",
                                                                         "--set", "pgd_step_size=0.05"]),
    ("(a) input binarization", "vanilla", "binarized-digits-cnn", []),
    ("(b) noise at inference", "vanilla", "noisy-digits-cnn", []),
    ("(c) noisy backward", "vanilla", "shattered-digits-cnn", []),
    ("(d) noise in training only", "gaussian-augmentation", "digits-cnn", []),
]


def install_controls(site: Path) -> None:
    info = site / "masking_controls-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: masking-controls\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path[:0] = [str(site), str(ROOT / "tests" / "plugins")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="store folder (reused between runs)")
    parser.add_argument("--n", type=int, default=100, help="test examples (default 100)")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    out = Path(args.out)
    install_controls(out / "site")
    from bench.cli import main as bench

    print(f"{'control':<28} {'claimed':>8} {'before':>8} {'after':>8}  {'adaptive s':>10}  verdict; adaptive attacks")
    for label, defense, arch, extra in CASES:
        board = out / f"{defense}-{arch}.md"
        argv = ["run", "--defense", defense, "--arch", arch, "--attacks", "all", "--norm", "linf", "--eps", "0.3",
                "--dataset", "digits", "--epochs", str(args.epochs), "--n-eval", str(args.n), "--out", str(out / "runs"),
                "--quiet", "--leaderboard", str(board), *extra]
        with contextlib.redirect_stdout(io.StringIO()):  # the board bench prints; we print one line
            assert bench(argv) == 0, label
        data = json.loads(board.with_suffix(".json").read_text())
        row = next(r for r in data["pages"][0]["tables"][0]["rows"] if r["arch"] == arch and r["defense"] == defense)
        seconds = 0.0
        for rid in data["models"][row["model_ids"][0]]["records"]:
            rec = json.loads((out / "runs" / "records" / rid / "record.json").read_text())
            if rec.get("adaptive") and rec["spec"]["budget"]["norm"] == "linf":
                seconds += rec["provenance"]["wall_seconds"]
        pct = lambda cell: "—" if cell is None else f"{100 * cell['value']:.1f}"
        status = "ranked" if row["ranked"] else "not ranked"
        print(f"{label:<28} {pct(row['claimed']):>8} {pct(row['robust_before_adaptation']):>8} {pct(row['robust']):>8}"
              f"  {seconds:>10.1f}  {row['verdict']} ({status}); {', '.join(row['adaptive_attacks']) or '—'}",
              flush=True)


if __name__ == "__main__":
    main()
