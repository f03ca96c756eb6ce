"""image-folder: recursive scan, class labels, conversion, bad files, seeded split."""

from __future__ import annotations

import hashlib
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from genbench.api.errors import ConfigError, DataUnavailableError
from genbench_plugins.datasets.image_folder import ImageFolder


def save(path, array: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def item_of(ds, rel: str):
    """The item made from the file ``rel``, whichever split holds it."""
    for split in ("train", "test"):
        files = ds.split_files(split)
        if rel in files:
            return ds.split(split)[files.index(rel)]
    raise KeyError(rel)


def random_rgb(rng, h=20, w=24):
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.fixture
def classes_folder(tmp_path):
    """cats/ (6 png, 2 in a nested folder), dogs/ (5 jpg), owls/ (4 webp + 1 upper-case .PNG)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "animals"
    for i in range(6):
        save(root / "cats" / ("nested" if i < 2 else "") / f"c{i}.png", random_rgb(rng))
    for i in range(5):
        save(root / "dogs" / f"d{i}.jpg", random_rgb(rng))
    for i in range(4):
        save(root / "owls" / f"o{i}.webp", random_rgb(rng), fmt="WEBP")
    save(root / "owls" / "o4.PNG", random_rgb(rng))
    (root / "dogs" / "notes.txt").write_text("not an image")
    save(root / ".thumbnails" / "t.png", random_rgb(rng))  # hidden: left out
    return root


def test_nested_class_folders_become_sorted_labels(classes_folder):
    ds = ImageFolder(str(classes_folder), size=16, test_fraction=0.2)
    assert ds.classes == ("cats", "dogs", "owls")
    files = ds.split_files("train") + ds.split_files("test")
    assert len(files) == 16 and "cats/nested/c0.png" in files and "owls/o4.PNG" in files
    for split in ("train", "test"):
        s = ds.split(split)
        for rel, label in zip(ds.split_files(split), s.labels):
            assert label == ds.classes.index(rel.split("/")[0])
        x, y = s[0]
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.long
    # stratified: each class is in the test split
    assert {f.split("/")[0] for f in ds.split_files("test")} == {"cats", "dogs", "owls"}
    info = ds.info()
    assert (info.kind, info.shape, info.num_classes) == ("image", (3, 16, 16), 3)
    assert info.feature_extractor == "inception-v3-compat"
    x, y = ds.tensors("train")
    assert x.shape == (len(ds.split("train")), 3, 16, 16)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_images_outside_class_folders_mean_no_labels(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        save(tmp_path / f"top{i}.png", random_rgb(rng))
        save(tmp_path / "a" / "b" / f"deep{i}.png", random_rgb(rng))
    ds = ImageFolder(str(tmp_path), size=8, test_fraction=0.25)
    assert ds.classes == () and ds.info().num_classes is None
    item = ds.split("train")[0]
    assert isinstance(item, torch.Tensor) and item.shape == (3, 8, 8)
    assert len(ds.split("train")) + len(ds.split("test")) == 8


def test_split_is_seeded_fixed_and_disjoint(classes_folder):
    a = ImageFolder(str(classes_folder), size=8, test_fraction=0.3)
    b = ImageFolder(str(classes_folder), size=8, test_fraction=0.3)
    assert a.split_files("test") == b.split_files("test")
    assert a.info().fingerprint == b.info().fingerprint
    assert not set(a.split_files("train")) & set(a.split_files("test"))
    content = {s: {hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in a.tensors(s)[0]}
               for s in ("train", "test")}
    assert not content["train"] & content["test"]
    c = ImageFolder(str(classes_folder), size=8, test_fraction=0.3, split_seed=7)
    assert c.split_files("test") != a.split_files("test")
    assert c.info().fingerprint != a.info().fingerprint


def test_fingerprint_follows_files_and_options(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(5):
        save(tmp_path / f"{i}.png", random_rgb(rng))
    fp = ImageFolder(str(tmp_path), size=8).info().fingerprint
    assert ImageFolder(str(tmp_path), size=12).info().fingerprint != fp
    save(tmp_path / "0.png", random_rgb(rng, 30, 30))
    assert ImageFolder(str(tmp_path), size=8).info().fingerprint != fp


def test_fingerprint_hashes_file_content_not_metadata(tmp_path):
    """An edit that keeps the file's size and mtime still changes the fingerprint."""
    rng = np.random.default_rng(0)
    for i in range(6):
        save(tmp_path / f"{i}.png", random_rgb(rng))
    target, pixels = tmp_path / "3.png", random_rgb(rng)
    Image.fromarray(pixels).save(target, compress_level=0)  # stored: length fixed by the size
    ds = ImageFolder(str(tmp_path), size=8)
    fp = ds.fingerprint()
    assert ds.info().fingerprint == fp and ImageFolder(str(tmp_path), size=8).fingerprint() == fp

    st = target.stat()
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(target, compress_level=0)  # a valid PNG, one pixel changed
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    edited = ImageFolder(str(tmp_path), size=8)
    assert edited.split_files("test") == ds.split_files("test")
    assert edited.fingerprint() != fp
    assert ds.fingerprint() == fp  # cached on the instance


def test_centre_crop_and_resize(tmp_path):
    # 60 wide x 40 high: a red band (10 px), green centre (40 px), blue band (10 px)
    img = np.zeros((40, 60, 3), dtype=np.uint8)
    img[:, :10, 0] = 255
    img[:, 10:50, 1] = 255
    img[:, 50:, 2] = 255
    save(tmp_path / "a.png", img)
    save(tmp_path / "b.png", img)
    green = torch.zeros(3, 8, 8)
    green[1] = 1.0

    square = ImageFolder(str(tmp_path), size=8, test_fraction=0.5).split("train")[0]
    assert torch.allclose(square, green)  # the largest centred square is all green
    stretched = ImageFolder(str(tmp_path), size=8, crop="none", test_fraction=0.5).split("train")[0]
    assert stretched.shape == (3, 8, 8) and stretched[0, :, 0].min() > 0.9  # red at the left
    # a 20x20 centre crop of a 40x40 image with a white 20x20 centre is all white
    box = np.zeros((40, 40), dtype=np.uint8)
    box[10:30, 10:30] = 255
    save(tmp_path / "box" / "a.png", box)
    save(tmp_path / "box" / "b.png", box)
    white = ImageFolder(str(tmp_path / "box"), size=5, crop=20, test_fraction=0.5).split("test")[0]
    assert white.shape == (1, 5, 5) and torch.allclose(white, torch.ones(1, 5, 5))
    with pytest.raises(ConfigError, match="crop=50 is larger"):
        ImageFolder(str(tmp_path / "box"), crop=50)


def test_channel_conversion(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(10, 10), dtype=np.uint8)
    save(tmp_path / "g1.png", gray)
    save(tmp_path / "g2.png", gray)
    save(tmp_path / "rgb.png", random_rgb(rng, 10, 10))
    with pytest.raises(ConfigError, match="channels = 1"):
        ImageFolder(str(tmp_path))  # mixed 1- and 3-channel images, no rule given
    ds = ImageFolder(str(tmp_path), size=10, channels=3, test_fraction=0.34)
    assert ds.info().shape == (3, 10, 10)
    x = item_of(ds, "g1.png")
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert ImageFolder(str(tmp_path), size=10, channels=1).info().shape == (1, 10, 10)


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    half = np.full((6, 6), 32896, dtype=np.uint16)  # 128 * 257: mid-gray in 16 bits
    save(tmp_path / "a.png", half)
    save(tmp_path / "b.png", half)
    x = ImageFolder(str(tmp_path), size=6, test_fraction=0.5).split("train")[0]
    assert x.shape == (1, 6, 6) and torch.allclose(x, torch.full((1, 6, 6), 128 / 255))


@pytest.fixture
def folder_with_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        save(tmp_path / f"ok{i}.png", random_rgb(rng))
    good = (tmp_path / "ok0.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.jpg").write_bytes(b"this is not a jpeg")
    return tmp_path


def test_bad_files_fail_with_their_paths(folder_with_bad_files):
    with pytest.raises(DataUnavailableError) as err:
        ImageFolder(str(folder_with_bad_files))
    msg = str(err.value)
    assert str(folder_with_bad_files / "truncated.png") in msg
    assert str(folder_with_bad_files / "garbage.jpg") in msg
    assert 'on_error = "skip"' in msg


def test_bad_files_skipped_with_a_warning(folder_with_bad_files):
    with pytest.warns(UserWarning, match="skipped 2 unreadable") as record:
        ds = ImageFolder(str(folder_with_bad_files), size=8, on_error="skip")
    assert str(folder_with_bad_files / "truncated.png") in str(record[0].message)
    files = ds.split_files("train") + ds.split_files("test")
    assert sorted(files) == [f"ok{i}.png" for i in range(6)]
    assert ds.info().extra["skipped"] == ("garbage.jpg", "truncated.png")


def test_undecodable_pixels_fail_at_load_with_the_path(tmp_path):
    """A truncated JPEG passes the header check; decoding it names the file."""
    rng = np.random.default_rng(0)
    for i in range(3):
        save(tmp_path / f"{i}.jpg", random_rgb(rng, 32, 32))
    data = (tmp_path / "0.jpg").read_bytes()
    (tmp_path / "0.jpg").write_bytes(data[: len(data) // 2])
    ds = ImageFolder(str(tmp_path), size=8, test_fraction=0.34)
    split = "train" if "0.jpg" in ds.split_files("train") else "test"
    with pytest.raises(DataUnavailableError, match=re.escape(f"could not decode {tmp_path / '0.jpg'}")):
        ds.tensors(split)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DataUnavailableError, match="no images in"):
        ImageFolder(str(tmp_path / "empty"))
    with pytest.raises(DataUnavailableError, match="does not exist"):
        ImageFolder(str(tmp_path / "nowhere"))
    save(tmp_path / "one" / "a.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ConfigError, match="single image"):
        ImageFolder(str(tmp_path / "one"))


@pytest.mark.parametrize("options, match", [
    ({"size": 0}, r"'size' must be int >= 1 \(default 64\), got 0"),
    ({"channels": 2}, r"'channels' must be 1 \| 3 \| 4 \| None \(default None\), got 2"),
    ({"crop": -3}, r"'crop' must be int >= 1 \| 'none' \| None \(default None\), got -3"),
    ({"crop": "edges"}, r"'crop' must be int >= 1 \| 'none' \| None .*got 'edges'"),
    ({"on_error": "ignore"}, r"'on_error' must be 'fail' \| 'skip' \(default 'fail'\), got 'ignore'"),
    ({"test_fraction": 1.0}, r"'test_fraction' must be float in \(0, 1\) \(default 0.1\), got 1.0"),
])
def test_options_are_validated(tmp_path, options, match):
    with pytest.raises(ConfigError, match=match):
        ImageFolder(str(tmp_path), **options)


def test_streams_through_dataloader_workers(classes_folder):
    ds = ImageFolder(str(classes_folder), size=8, test_fraction=0.2)
    loader = torch.utils.data.DataLoader(ds.split("train"), batch_size=4, num_workers=2)
    xs, ys = zip(*loader)
    assert torch.cat(xs).shape == (len(ds.split("train")), 3, 8, 8)
    assert torch.equal(torch.cat(xs), ds.tensors("train")[0])


def test_describe_without_a_folder(registries):
    d = registries.datasets.get("image-folder").describe()
    assert d["kind"] == "image" and d["shape"] == ("C", 64, 64)
