"""The paper-scale path on real images: `--dataset cifar10 --arch resnet18` at the CIFAR budgets
(L∞ 8/255, L2 0.5) through training, the suite and the board, from a CIFAR-10 folder in
torchvision's own format built from the 20 real CIFAR-10 test images Foolbox ships."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torchvision
import torchvision.datasets.cifar

from bench.cli import main


def cifar_folder(root: Path) -> Path:
    """`root/cifar-10-batches-py/` as torchvision writes it: five training batches and a test batch
    of pickled {data: N×3072 uint8 in CHW order, labels}, and batches.meta. Foolbox's files are
    named `cifar10_<index>_<label>.png`."""
    import foolbox
    from PIL import Image

    files = sorted((Path(foolbox.__file__).parent / "data").glob("cifar10_*.png"))
    assert len(files) == 20
    images = np.stack([np.asarray(Image.open(f).convert("RGB")).transpose(2, 0, 1).reshape(-1) for f in files])
    labels = [int(f.stem.split("_")[-1]) for f in files]
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": images, "labels": labels}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                     "truck"]}, fh)
    return root


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    # torchvision checks each file's md5 against the official archive, which a folder built from
    # other real images cannot match; everything else is torchvision's loader as users run it
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())
    return cifar_folder(tmp_path / "data")


def test_cifar10_resnet18_trains_is_attacked_and_reported_at_the_cifar_budgets(cifar_root, tmp_path):
    """L∞ 8/255 with the L∞ minimum suite (AutoAttack standard among it), then L2 0.5 through
    `bench eval` on the same model with the attacks that are cheap on a CPU (AutoAttack's FAB-T
    at L2 takes minutes on a ResNet-18 here): that row says it lacks AutoAttack."""
    out = tmp_path / "store"
    common = ["--dataset", "cifar10", "--arch", "resnet18", "--data-root", str(cifar_root), "--epochs", "1",
              "--n-eval", "12", "--set", "square.n_queries=100", "--set", "pgd-margin.steps=10", "--no-adaptive",
              "--quiet", "--out", str(out)]
    assert main(["run", "--defense", "vanilla", "--attacks", "pgd-margin,autoattack,square", "--norm", "linf",
                 *common]) == 0
    assert main(["eval", "--defense", "vanilla", "--attacks", "pgd-margin,square,ddn-margin", "--norm", "l2",
                 *common]) == 0
    assert main(["leaderboard", "--out", str(out), "--dataset", "cifar10", "--format", "json",
                 "--output", str(tmp_path / "board.json")]) == 0
    board = json.loads((tmp_path / "board.json").read_text())
    (model,) = board["models"].values()
    assert model["arch"] == "resnet18" and model["dataset"] == "cifar10"
    rows = {(table["norm"], round(table["eps"], 6)): table["rows"] for page in board["pages"] for table in page["tables"]}
    assert set(rows) == {("linf", round(8 / 255, 6)), ("l2", 0.5)}
    for (norm, _), (row,) in rows.items():
        assert row["n"] == 12 and row["clean"]["n"] == 12
        assert row["robust"]["value"] <= row["clean"]["value"]
        assert ("AutoAttack" in " ".join(row["reasons"])) == (norm == "l2")
    records = [json.loads(p.read_text()) for p in (out / "records").glob("*/record.json")]
    assert {r["spec"]["attack"]["name"] for r in records} == {"pgd-margin", "autoattack", "square", "ddn-margin"}
