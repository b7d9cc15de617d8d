"""Publishing: the temperature sweep reproduces Papernot's trend and C&W's rebuttal on one page,
pages are byte-identical across publishes, and --check catches stale pages."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main


@pytest.fixture(scope="module")
def swept_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    argv = ["run", "--defense", "defensive-distillation", "--sweep", "temperature=1,100", "--attacks", "jsma,cw,pgd",
            "--norm", "l0,l2", "--dataset", "digits", "--epochs", "30", "--n-eval", "60", "--quiet", "--out", str(out),
            "--set", "cw.max_iterations=100", "--set", "cw.binary_search_steps=5", "--set", "cw.initial_const=0.1",
            "--set", "cw.learning_rate=0.1"]
    assert main(argv) == 0
    return out


def test_publish_is_idempotent_and_check_detects_staleness(swept_store, tmp_path, capsys):
    dest = tmp_path / "leaderboard"
    assert main(["leaderboard", "publish", "--out", str(swept_store), "--dest", str(dest)]) == 0
    first = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert main(["leaderboard", "publish", "--out", str(swept_store), "--dest", str(dest)]) == 0
    assert "published 0 changed file(s)" in capsys.readouterr().out
    assert first == {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    # no published file, the publish marker included, holds a folder of the machine that made it
    assert not [rel for rel, data in first.items() if str(swept_store).encode() in data or b"/tmp/" in data]
    assert main(["leaderboard", "publish", "--check", "--out", str(swept_store), "--dest", str(dest)]) == 0
    page = dest / "digits-l2.md"
    page.write_text(page.read_text() + "\nedited by hand\n")
    assert main(["leaderboard", "publish", "--check", "--out", str(swept_store), "--dest", str(dest)]) == 1
    assert "stale: " in capsys.readouterr().out


def test_temperature_sweep_page_shows_papernot_and_carlini_wagner(swept_store, tmp_path):
    dest = tmp_path / "pub"
    assert main(["leaderboard", "publish", "--out", str(swept_store), "--dest", str(dest)]) == 0
    page = (dest / "digits-defensive-distillation-temperature.md").read_text()
    rows = [line.split("|") for line in page.splitlines() if line.startswith("| 1 |") or line.startswith("| 100 |")]
    header = [h.strip() for h in next(l for l in page.splitlines() if l.startswith("| temperature")).split("|")]
    col = lambda row, name: float(row[header.index(name)].strip())
    t1, t100 = rows
    assert col(t1, "jsma success") > col(t100, "jsma success") + 20  # Papernot 2016: JSMA fails at high T
    assert col(t100, "cw success (any size)") >= 98  # Carlini & Wagner 2016: C&W does not
    assert (dest / "digits-defensive-distillation-temperature.png").read_bytes()[:4] == b"\x89PNG"
    l2 = (dest / "digits-l2.md").read_text()
    assert "masking suspected" in l2 and "bench run --defense defensive-distillation --sweep" in l2
    model_pages = list((dest / "models").glob("*.md"))
    assert len(model_pages) == 2 and "Masking diagnosis" in model_pages[0].read_text()


def test_published_pages_never_contradict_themselves(swept_store):
    from bench.report.publish import build_pages
    from bench.store.artifacts import Store
    from test_leaderboard import assert_pages_agree

    assert assert_pages_agree(build_pages(Store(swept_store))) >= 2


def test_the_store_published_beside_the_pages_verifies_and_reproduces_them(swept_store, tmp_path, capsys):
    """`--include-store`: DEST/store holds the sealed artifacts; it verifies, the pages published
    from the copy are byte-identical to those published from the original, `--check` against the
    copy passes, and the pages' commands name the copy."""
    import json

    dest = tmp_path / "leaderboard"
    assert main(["leaderboard", "publish", "--include-store", "--out", str(swept_store), "--dest", str(dest)]) == 0
    copy = dest / "store"
    assert (copy / "store.json").read_bytes() == (swept_store / "store.json").read_bytes()
    weights = sorted(p.relative_to(copy) for p in copy.glob("models/*/model.safetensors"))
    assert weights == sorted(p.relative_to(swept_store) for p in swept_store.glob("models/*/model.safetensors"))
    assert not (copy / "index.sqlite").exists() and "index.sqlite" in (copy / ".gitignore").read_text()
    marker = json.loads((dest / ".distill-bench-publish.json").read_text())
    assert "store/store.json" in marker["files"]
    page = (dest / "digits-l2.md").read_text()
    assert "--out DIR/store " in page and str(swept_store) not in page
    assert "`bench store verify --out DIR/store`" in (dest / "README.md").read_text()
    published = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    del published[Path(".distill-bench-publish.json")]  # it names the store that published: here the original

    capsys.readouterr()
    assert main(["store", "verify", "--out", str(copy)]) == 0
    assert "0 corrupt" in capsys.readouterr().out
    assert main(["leaderboard", "publish", "--check", "--include-store", "--out", str(copy), "--dest", str(dest)]) == 0
    again = tmp_path / "again" / "leaderboard"
    assert main(["leaderboard", "publish", "--include-store", "--out", str(copy), "--dest", str(again)]) == 0
    republished = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    del republished[Path(".distill-bench-publish.json")]
    assert published == republished
    # a record edited in the published copy: its verification fails and the board refuses it
    record = next(copy.glob("records/*/record.json"))
    record.write_text(record.read_text().replace('"robust_acc": 0', '"robust_acc": 1', 1))
    assert main(["store", "verify", "--out", str(copy)]) == 1
