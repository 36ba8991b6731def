"""Data: the embedded shapes, CIFAR-10 through torchvision's real loader on files in the real format, images."""

from __future__ import annotations

import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch

from vdm import data as datasets
from vdm.data import cifar10, load, load_image, shapes, to_float, to_uint8


def test_shapes_is_deterministic_and_well_formed():
    x, y = shapes(64, "train")
    x2, y2 = shapes(64, "train")
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.dtype == torch.uint8 and x.shape == (64, 3, 32, 32)
    assert y.dtype == torch.int64 and set(y.tolist()) == {0, 1, 2}
    assert len(torch.unique(x)) > 50  # colours and gradients, not a constant
    xt, _ = shapes(64, "test")
    assert not torch.equal(x, xt)
    assert not any(torch.equal(a, b) for a in x[:16] for b in xt[:16])
    assert not torch.equal(shapes(8, "train", seed=1)[0], x[:8])
    with pytest.raises(ValueError, match="'val'"):
        shapes(4, "val")


def test_shapes_image_i_does_not_depend_on_n():
    # --limit N must mean "the first N images", and eval subsets must be the same images
    small, ys = shapes(10, "test")
    big, yb = shapes(300, "test")
    assert torch.equal(small, big[:10]) and torch.equal(ys, yb[:10])
    assert torch.equal(load("shapes", "train", limit=12), shapes(40, "train")[0][:12])


def test_to_float_and_back():
    levels = torch.arange(256, dtype=torch.uint8)
    f = to_float(levels)
    assert float(f.min()) == -1.0 and float(f.max()) == 1.0
    assert torch.equal(to_uint8(f), levels)
    assert torch.equal(to_uint8(torch.tensor([-3.0, 7.0])), torch.tensor([0, 255], dtype=torch.uint8))


# -- CIFAR-10 in its on-disk format -------------------------------------------------------------------

def _py2_pickle(obj: dict, keys) -> bytes:
    """Pickle as the CIFAR-10 archive does (Python 2): its string keys are byte strings (opcode 'U').

    Loaded with encoding="bytes" (the dataset page's recipe) they are b"data", b"labels";
    with encoding="latin1" (torchvision) they are "data", "labels".
    """
    raw = pickle.dumps(obj, protocol=2)
    for k in keys:
        b = k.encode()
        old, new = b"X" + struct.pack("<I", len(b)) + b, b"U" + bytes([len(b)]) + b
        assert raw.count(old) == 1
        raw = raw.replace(old, new)
    return raw


def _write_cifar(root, n_per_batch=3, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    keys = ("batch_label", "labels", "data", "filenames")
    batches = {}
    for name, n in [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        entry = {"batch_label": f"{name} of 5", "labels": labels, "data": data,
                 "filenames": [f"img_{name}_{i}.png" for i in range(n)]}
        (d / name).write_bytes(_py2_pickle(entry, keys))
        batches[name] = data
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    meta = {"num_cases_per_batch": n_per_batch, "label_names": names, "num_vis": 3072}
    (d / "batches.meta").write_bytes(_py2_pickle(meta, ("num_cases_per_batch", "label_names", "num_vis")))
    return d, batches


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    """A tiny CIFAR-10 in the real layout; torchvision's md5 lists point at these files (test only)."""
    from torchvision.datasets import CIFAR10

    d, batches = _write_cifar(tmp_path)
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", _md5(d / f"data_batch_{i}")] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(d / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", dict(CIFAR10.meta, md5=_md5(d / "batches.meta")))
    return tmp_path, batches


def test_fake_archive_is_in_the_real_format(tmp_path):
    d, batches = _write_cifar(tmp_path)
    with open(d / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="bytes")  # the dataset page's own unpickle recipe
    assert set(entry) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert entry[b"data"].dtype == np.uint8 and entry[b"data"].shape == (3, 3072)
    assert np.array_equal(entry[b"data"], batches["data_batch_1"])


def test_cifar10_through_torchvision(cifar_dir):
    root, batches = cifar_dir
    train = cifar10(root, "train", download=False)
    want = np.concatenate([batches[f"data_batch_{i}"] for i in range(1, 6)])
    assert train.dtype == torch.uint8 and train.shape == (15, 3, 32, 32)
    # a row is 1024 red, 1024 green, 1024 blue values, each row-major 32x32
    assert torch.equal(train, torch.from_numpy(want.reshape(15, 3, 32, 32)))
    assert int(train[4, 0, 0, 0]) == int(want[4, 0]) and int(train[4, 1, 0, 0]) == int(want[4, 1024])
    assert int(train[4, 2, 31, 31]) == int(want[4, 3071]) and int(train[4, 0, 1, 0]) == int(want[4, 32])
    test = load("cifar10", "test", data_dir=root)
    assert torch.equal(test, torch.from_numpy(batches["test_batch"].reshape(4, 3, 32, 32)))
    assert torch.equal(load("cifar10", "test", data_dir=root, limit=2), test[:2])


def test_cifar10_missing_or_corrupt(tmp_path):
    with pytest.raises(ValueError, match="'val'"):
        cifar10(tmp_path, "val", download=False)
    with pytest.raises(ValueError, match="not found"):
        cifar10(tmp_path / "nowhere", "train", download=False)
    # files whose md5 sums are not CIFAR-10's are refused the same way
    _write_cifar(tmp_path)
    with pytest.raises(ValueError, match="CIFAR-10"):
        cifar10(tmp_path, "test", download=False)


# -- single images --------------------------------------------------------------------------------------

def _png(path, arr):
    from PIL import Image

    Image.fromarray(arr).save(path)
    return path


def test_load_image_crops_resizes_and_keeps_channels(tmp_path):
    # 48 high, 64 wide: the centre crop drops 8 columns each side, painted red
    arr = np.zeros((48, 64, 3), np.uint8)
    arr[:, :8] = (255, 0, 0)
    arr[:, 56:] = (255, 0, 0)
    arr[:24, 8:56] = (0, 200, 0)    # top half green
    arr[24:, 8:56] = (0, 0, 150)    # bottom half blue
    x = load_image(_png(tmp_path / "a.png", arr))
    assert x.dtype == torch.uint8 and x.shape == (3, 32, 32)
    assert torch.all(x[0] < 10), "the red side bars must be cropped away"
    assert torch.all(x[:, :12] == torch.tensor([0, 200, 0], dtype=torch.uint8).view(3, 1, 1))
    assert torch.all(x[:, 20:] == torch.tensor([0, 0, 150], dtype=torch.uint8).view(3, 1, 1))
    # a greyscale image becomes three equal channels
    g = load_image(_png(tmp_path / "g.png", np.full((10, 10), 77, np.uint8)))
    assert g.shape == (3, 32, 32) and torch.all(g == 77)


def test_load_image_bad_input(tmp_path):
    txt = tmp_path / "notes.png"
    txt.write_text("not an image")
    with pytest.raises(ValueError, match="not an image"):
        load_image(txt)
    with pytest.raises(ValueError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="not a file"):
        load_image(tmp_path)


def test_folder_and_unknown_dataset(tmp_path):
    _png(tmp_path / "b.png", np.full((32, 32, 3), 9, np.uint8))
    _png(tmp_path / "a.png", np.full((40, 40, 3), 200, np.uint8))
    (tmp_path / "readme.txt").write_text("skip me")
    x = load("folder", data_dir=tmp_path)
    assert x.shape == (2, 3, 32, 32) and int(x[0, 0, 0, 0]) == 200 and int(x[1, 0, 0, 0]) == 9
    with pytest.raises(ValueError, match="'imagenet'"):
        load("imagenet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .png"):
        datasets.folder(tmp_path / "empty")
    with pytest.raises(ValueError, match="does not exist"):
        datasets.folder(tmp_path / "missing")
