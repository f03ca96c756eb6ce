"""mnist, fashion-mnist, stacked-mnist and cifar10, read offline by torchvision from files
the tests write in the exact on-disk formats torchvision reads."""

from __future__ import annotations

import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch

from genbench.api.errors import DataUnavailableError

ALLOW_DOWNLOAD = False  # tests never fetch anything
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_idx(path, array: np.ndarray) -> None:
    """IDX ("ubyte") file: magic 0x0000 0x08 (uint8) ndim, big-endian uint32 sizes, data."""
    path.write_bytes(bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
                     + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(root, folder: str = "MNIST", n_train: int = 120, n_test: int = 40, seed: int = 0):
    """Random uint8 images and labels as ``<root>/<folder>/raw/*-ubyte``; returns the arrays."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        out["train" if prefix == "train" else "test"] = (images, labels)
    return out


def write_cifar(root, per_batch: int = 12, seed: int = 0):
    """CIFAR-10 python batches: pickled dicts with ``data`` uint8 (n, 3072) (channel planes,
    rows) and ``labels``, plus ``batches.meta`` with ``label_names``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {"train": [], "test": []}
    for name in CIFAR_BATCHES:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels,
                         "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}, f)
        out["test" if name == "test_batch" else "train"].append((data, labels))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072}, f)
    return {k: (np.concatenate([d for d, _ in v]), np.concatenate([l for _, l in v]))
            for k, v in out.items()}


def hashes(x: torch.Tensor) -> set[str]:
    return {hashlib.sha256(row.numpy().tobytes()).hexdigest() for row in x}


def test_describe_needs_no_files(registries, tmp_path):
    expected = {"mnist": ((1, 28, 28), 10, None), "fashion-mnist": ((1, 28, 28), 10, None),
                "cifar10": ((3, 32, 32), 10, None), "stacked-mnist": ((3, 28, 28), 1000, 1000)}
    for name, (shape, classes, modes) in expected.items():
        d = registries.datasets.get(name).describe()
        assert (d["kind"], tuple(d["shape"]), d["classes"], d["modes"]) == \
            ("image", shape, classes, modes), name


# -- MNIST and Fashion-MNIST ------------------------------------------------------------------

@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_sets_load_through_torchvision(registries, tmp_path, name, folder):
    written = write_mnist(tmp_path, folder)
    ds = registries.datasets.get(name)(root=str(tmp_path), download=ALLOW_DOWNLOAD)
    for split, n in (("train", 120), ("test", 40)):
        s = ds.split(split)
        images, labels = written[split]
        assert s.x.shape == (n, 1, 28, 28) and s.x.dtype == torch.float32
        assert 0.0 <= s.x.min() and s.x.max() <= 1.0
        assert torch.equal(s.x[:, 0], torch.from_numpy(images).float() / 255)
        assert torch.equal(s.labels, torch.from_numpy(labels).long())
    assert not hashes(ds.split("train").x) & hashes(ds.split("test").x)
    info = ds.info()
    assert (info.kind, info.shape, info.num_classes) == ("image", (1, 28, 28), 10)
    assert info.feature_extractor == "inception-v3-compat"
    # the fingerprint is the content's: equal for a second instance, not for other files
    again = registries.datasets.get(name)(root=str(tmp_path))
    assert again.info().fingerprint == info.fingerprint
    other = tmp_path / "other"
    write_mnist(other, folder, seed=1)
    assert registries.datasets.get(name)(root=str(other)).info().fingerprint != info.fingerprint


def test_mnist_reads_the_data_root_from_the_environment(registries, tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path))
    write_mnist(tmp_path)
    ds = registries.datasets.get("mnist")(limit=25)
    assert len(ds.split("train")) == 25 and len(ds.split("test")) == 25


@pytest.mark.parametrize("name, folder, cls", [("mnist", "MNIST", "MNIST"),
                                               ("fashion-mnist", "FashionMNIST", "FashionMNIST"),
                                               ("stacked-mnist", "MNIST", "MNIST")])
def test_missing_idx_files_name_files_directory_and_command(registries, tmp_path, name, folder, cls):
    ds = registries.datasets.get(name)(root=str(tmp_path), download=False)
    with pytest.raises(DataUnavailableError) as err:
        ds.info()
    msg = str(err.value)
    for f in IDX_FILES:
        assert f in msg
    assert str(tmp_path / folder / "raw") in msg
    assert "genbench run --download" in msg and f"torchvision.datasets.{cls}(" in msg


def test_compressed_idx_files_are_pointed_out(registries, tmp_path):
    write_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    (raw / "t10k-images-idx3-ubyte").rename(raw / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataUnavailableError, match="t10k-images-idx3-ubyte.gz found but not decompressed"):
        registries.datasets.get("mnist")(root=str(tmp_path)).info()


def test_truncated_idx_file_is_reported(registries, tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(DataUnavailableError, match="could not read the files in"):
        registries.datasets.get("mnist")(root=str(tmp_path)).info()


def test_limit_is_validated(registries):
    from genbench.api.errors import ConfigError

    with pytest.raises(ConfigError, match=r"mnist: hyper-parameter 'limit' must be int >= 1 \| None "
                                          r"\(default None\), got 0"):
        registries.datasets.get("mnist")(limit=0)


# -- Stacked MNIST --------------------------------------------------------------------------

def test_stacked_mnist(registries, tmp_path):
    written = write_mnist(tmp_path)
    cls = registries.datasets.get("stacked-mnist")
    ds = cls(root=str(tmp_path), n_train=600, n_test=200)
    for split, n in (("train", 600), ("test", 200)):
        s, idx = ds.split(split), ds.source_indices(split)
        images, labels = (torch.from_numpy(a) for a in written[split])
        assert s.x.shape == (n, 3, 28, 28) and 0.0 <= s.x.min() and s.x.max() <= 1.0
        d = labels.long()[idx]
        assert torch.equal(s.labels, 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2])
        for k in range(3):
            assert torch.equal(s.x[:, k], images[idx[:, k]].float() / 255)
    # train digits come from the train file only, test digits from the t10k file only
    train_digits = hashes(ds.split("train").x.reshape(-1, 28, 28))
    test_digits = hashes(ds.split("test").x.reshape(-1, 28, 28))
    assert train_digits <= hashes(torch.from_numpy(written["train"][0]).float() / 255)
    assert test_digits <= hashes(torch.from_numpy(written["test"][0]).float() / 255)
    assert not train_digits & test_digits
    info = ds.info()
    assert (info.shape, info.num_classes, info.feature_extractor) == ((3, 28, 28), 1000, "inception-v3-compat")
    same = cls(root=str(tmp_path), n_train=600, n_test=200)
    assert torch.equal(same.split("train").x, ds.split("train").x)
    assert same.info().fingerprint == info.fingerprint
    assert cls(root=str(tmp_path), n_train=600, n_test=200, seed=1).info().fingerprint != info.fingerprint


# -- CIFAR-10 -------------------------------------------------------------------------------

def test_cifar10_unofficial_files_need_verify_false(registries, tmp_path):
    write_cifar(tmp_path)
    with pytest.raises(DataUnavailableError) as err:
        registries.datasets.get("cifar10")(root=str(tmp_path)).info()
    msg = str(err.value)
    assert "checksum mismatch" in msg and "data_batch_1" in msg and "verify = false" in msg


def test_cifar10_loads_through_torchvision(registries, tmp_path):
    written = write_cifar(tmp_path)
    ds = registries.datasets.get("cifar10")(root=str(tmp_path), download=ALLOW_DOWNLOAD, verify=False)
    for split, n in (("train", 60), ("test", 12)):
        s = ds.split(split)
        data, labels = written[split]
        assert s.x.shape == (n, 3, 32, 32) and 0.0 <= s.x.min() and s.x.max() <= 1.0
        # rows of 3072 bytes are the R, G and B planes, each 32 rows of 32 pixels
        assert torch.equal(s.x, torch.from_numpy(data.reshape(n, 3, 32, 32)).float() / 255)
        assert s.labels.tolist() == list(labels)
    assert not hashes(ds.split("train").x) & hashes(ds.split("test").x)
    info = ds.info()
    assert (info.shape, info.num_classes, info.feature_extractor) == ((3, 32, 32), 10, "inception-v3-compat")
    assert info.extra["class_names"][0] == "airplane"
    limited = registries.datasets.get("cifar10")(root=str(tmp_path), verify=False, limit=5)
    assert len(limited.split("train")) == 5


def test_cifar10_verified_files_take_torchvisions_own_path(registries, tmp_path, monkeypatch):
    """When every md5 matches, the stock torchvision CIFAR10 class reads the files."""
    import torchvision
    from torchvision.datasets.utils import calculate_md5

    write_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    tv = torchvision.datasets.CIFAR10
    md5 = {f: calculate_md5(str(folder / f)) for f in CIFAR_BATCHES + ["batches.meta"]}
    monkeypatch.setattr(tv, "train_list", [[f, md5[f]] for f in CIFAR_BATCHES[:5]])
    monkeypatch.setattr(tv, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(tv, "meta", {**tv.meta, "md5": md5["batches.meta"]})
    opened = []
    real_init = tv.__init__

    def spy(self, *args, **kwargs):
        opened.append(type(self))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(tv, "__init__", spy)
    ds = registries.datasets.get("cifar10")(root=str(tmp_path))
    assert ds.split("train").x.shape == (60, 3, 32, 32)
    assert opened == [tv, tv] and ds.info().extra["verified"] is True


def test_cifar10_missing_files(registries, tmp_path):
    with pytest.raises(DataUnavailableError) as err:
        registries.datasets.get("cifar10")(root=str(tmp_path), download=False).info()
    msg = str(err.value)
    for f in CIFAR_BATCHES + ["batches.meta"]:
        assert f in msg
    assert str(tmp_path / "cifar-10-batches-py") in msg
    assert "genbench run --download" in msg and "torchvision.datasets.CIFAR10(" in msg
