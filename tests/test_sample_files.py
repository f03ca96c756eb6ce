"""Sample sets made elsewhere (genbench.api.sample_files): every format gives back the pixels
or vectors that were written, layouts are detected as documented, bad input fails naming the
file, and the content hash follows the content, not the path."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import genbench
from genbench.api import sample_files
from genbench.api.errors import ConfigError
from genbench.api.sample_files import (SampleSetError, content_sha256, open_sample_set)

N, H, W = 5, 6, 7
# Written in this order; items come back sorted by relative path: 0, 2, 1, 3, 4 below.
NAMES = ["a.png", "sub/c.png", "b10.png", "sub/d/e.png", "sub/f.png"]
SORTED = sorted(range(N), key=lambda i: NAMES[i])


@pytest.fixture
def images() -> np.ndarray:
    """Random uint8 images, NHWC."""
    return np.random.default_rng(0).integers(0, 256, (N, H, W, 3), dtype=np.uint8)


def nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def write_folder(folder, images, names=NAMES, fmt="PNG"):
    for name, image in zip(names, images):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / name, format=fmt)
    return folder


def message(exc_info) -> str:
    return str(exc_info.value)


# ---- each format gives back the exact pixels ----------------------------------------------

def test_png_folder_round_trip_sorted_by_relative_path(tmp_path, images):
    folder = write_folder(tmp_path / "samples", images)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden").mkdir()
    Image.fromarray(images[0]).save(folder / ".hidden" / "x.png")
    Image.fromarray(images[0]).save(folder / "sub" / ".y.png")

    s = open_sample_set(folder)
    expected = nchw(images[SORTED])
    assert len(s) == N and s.info.count == N
    assert s.info.format == "folder" and s.info.kind == "image"
    assert s.info.shape == (3, H, W) and s.info.dtype == "uint8" and s.info.scale == "uint8"
    assert s.read_uint8(0, N).dtype == torch.uint8
    assert np.array_equal(s.read_uint8(0, N).numpy(), expected)
    assert torch.equal(s.read(0, N), torch.from_numpy(expected).float() / 255)


def test_zip_round_trip_with_folders_inside(tmp_path, images):
    folder = write_folder(tmp_path / "samples", images)
    archive = tmp_path / "samples.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in reversed(NAMES):
            zf.write(folder / name, name)
        zf.writestr("__MACOSX/._a.png", b"resource fork")
        zf.writestr("readme.md", "samples")
    s = open_sample_set(archive)
    assert s.info.format == "zip" and s.info.count == N
    assert np.array_equal(s.read_uint8(0, N).numpy(), nchw(images[SORTED]))


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_nhwc_npz_round_trip(tmp_path, images, save):
    path = tmp_path / "samples.npz"
    save(path, images)
    s = open_sample_set(path)
    assert (s.info.format, s.info.shape, s.info.dtype, s.info.scale) == ("npz", (3, H, W),
                                                                          "uint8", "uint8")
    assert s.info.value_range == (float(images.min()), float(images.max()))
    assert np.array_equal(s.read_uint8(0, N).numpy(), nchw(images))
    assert torch.equal(s.read(0, N), torch.from_numpy(nchw(images)).float() / 255)


def test_nchw_float_npy_round_trip(tmp_path, images):
    stored = (nchw(images) / 255).astype(np.float32)
    np.save(tmp_path / "samples.npy", stored)
    s = open_sample_set(tmp_path / "samples.npy")
    assert (s.info.format, s.info.dtype, s.info.scale) == ("npy", "float32", "unit")
    assert np.array_equal(s.read_uint8(0, N).numpy(), nchw(images))
    assert torch.equal(s.read(0, N), torch.from_numpy(stored))


def test_jpeg_folder_decodes_as_pil_does(tmp_path, images):
    names = [f"{i}.jpg" for i in range(N)]
    folder = write_folder(tmp_path / "jpegs", images, names, fmt="JPEG")
    s = open_sample_set(folder)
    pil = np.stack([np.asarray(Image.open(folder / n).convert("RGB")) for n in names])
    assert np.array_equal(s.read_uint8(0, N).numpy(), nchw(pil))
    assert not np.array_equal(pil, images)  # JPEG is lossy: the comparison above is with PIL


@pytest.mark.parametrize("fmt", ["folder", "zip", "npz", "npz-compressed", "npy", "csv"])
def test_slices_equal_the_whole_read_sliced(tmp_path, images, fmt):
    if fmt in ("folder", "zip"):
        path = write_folder(tmp_path / "samples", images)
        if fmt == "zip":
            path = shutil.make_archive(str(tmp_path / "samples"), "zip", path)
    elif fmt.startswith("npz"):
        path = tmp_path / "samples.npz"
        (np.savez_compressed if fmt == "npz-compressed" else np.savez)(path, images)
    elif fmt == "npy":
        path = tmp_path / "samples.npy"
        np.save(path, (nchw(images) / 255).astype(np.float64))
    else:
        path = tmp_path / "samples.csv"
        np.savetxt(path, images.reshape(N, -1)[:, :4], delimiter=",")
    s = open_sample_set(path)
    whole = s.read(0, N)
    for start, stop in [(0, 2), (2, 5), (3, 4), (4, 5), (1, 1)]:
        assert torch.equal(s.read(start, stop), whole[start:stop])
    assert s.read(2, 2).shape == (0, *s.info.shape)
    if s.info.kind == "image":
        assert torch.equal(s.read_uint8(1, 4), s.read_uint8(0, N)[1:4])
    # a pickled set (sent to a worker process) reads the same
    assert torch.equal(pickle.loads(pickle.dumps(s)).read(1, 4), whole[1:4])


# ---- channels and modes of image files -----------------------------------------------------

def test_gray_folder_has_one_channel_and_mixed_gray_colour_become_rgb(tmp_path, images):
    gray = images[..., 0]
    folder = write_folder(tmp_path / "gray", gray, [f"{i}.png" for i in range(N)])
    s = open_sample_set(folder)
    assert s.info.shape == (1, H, W)
    assert np.array_equal(s.read_uint8(0, N).numpy(), gray[:, None])

    Image.fromarray(images[0]).save(folder / "9-colour.png")
    s = open_sample_set(folder)
    assert s.info.shape == (3, H, W) and len(s) == N + 1
    x = s.read_uint8(0, N + 1).numpy()
    assert np.array_equal(x[:N], np.repeat(gray[:, None], 3, axis=1))
    assert np.array_equal(x[N], nchw(images[:1])[0])


def test_rgba_and_palette_images_become_rgb(tmp_path, images):
    folder = tmp_path / "modes"
    folder.mkdir()
    alpha = np.random.default_rng(1).integers(0, 256, (H, W, 1), dtype=np.uint8)
    Image.fromarray(np.concatenate([images[0], alpha], axis=2), "RGBA").save(folder / "0.png")
    Image.fromarray(images[1]).quantize(16).save(folder / "1.png")
    Image.fromarray(images[2]).save(folder / "2.bmp")
    s = open_sample_set(folder)
    assert s.info.shape == (3, H, W)
    palette = np.asarray(Image.open(folder / "1.png").convert("RGB"))
    expected = np.stack([images[0], palette, images[2]])
    assert np.array_equal(s.read_uint8(0, 3).numpy(), nchw(expected))


def test_16_bit_gray_pngs_are_not_clipped(tmp_path):
    values = np.random.default_rng(2).integers(0, 65536, (3, H, W), dtype=np.uint16)
    values[0, 0, 0], values[0, 0, 1] = 65535, 300  # 300 would clip to 255 in 8 bits
    folder = write_folder(tmp_path / "deep", values, [f"{i}.png" for i in range(3)])
    s = open_sample_set(folder)
    assert (s.info.shape, s.info.dtype, s.info.scale) == ((1, H, W), "uint16", "uint16")
    x = s.read(0, 3)
    assert torch.allclose(x, torch.from_numpy(values[:, None].astype(np.float64) / 65535).float())
    assert x.max() == 1.0
    expected = np.round(values[:, None] / 257).astype(np.uint8)
    assert np.array_equal(s.read_uint8(0, 3).numpy(), expected)

    Image.fromarray(np.zeros((H, W), np.uint8)).save(folder / "8bit.png")
    with pytest.raises(SampleSetError) as e:
        open_sample_set(folder)
    assert "8bit.png" in message(e) and "16-bit" in message(e)


# ---- arrays: layouts and vectors ----------------------------------------------------------

@pytest.mark.parametrize("shape, dtype, layout", [
    ((N, H, W, 3), np.uint8, "NHWC"),
    ((N, 3, H, W), np.uint8, "NCHW"),
    ((N, 3, H, W), np.float32, "NCHW"),
    ((N, H, W, 3), np.float32, "NHWC"),  # float NHWC when unambiguous
    ((N, H, W, 1), np.uint8, "NHWC"),
    ((N, 1, H, W), np.float16, "NCHW"),
    ((N, 3, H, 3), np.uint8, "NHWC"),  # ambiguous: uint8 is NHWC (ADM)
    ((N, 3, H, 3), np.float32, "NCHW"),  # ambiguous: float is NCHW
    ((N, 1, H, 1), np.uint8, "NHWC"),
    ((N, 1, H, 3), np.float64, "NCHW"),
    ((N, H, W), np.uint8, "NHW"),
    ((N, H, W), ">f4", "NHW"),  # big-endian floats read too
])
def test_array_layouts(tmp_path, shape, dtype, layout):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, shape).astype(np.uint8)
    stored = data.astype(dtype) if np.dtype(dtype) == np.uint8 else (data / 255).astype(dtype)
    np.save(tmp_path / "x.npy", stored)
    s = open_sample_set(tmp_path / "x.npy")
    as_nchw = {"NHWC": lambda a: a.transpose(0, 3, 1, 2), "NCHW": lambda a: a,
               "NHW": lambda a: a[:, None]}[layout](data)
    assert s.info.kind == "image" and s.info.shape == as_nchw.shape[1:]
    assert s.info.dtype == np.dtype(dtype).name
    assert np.array_equal(s.read_uint8(0, N).numpy(), as_nchw)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("fmt", ["npy", "npz", "npz-compressed"])
def test_vectors_from_arrays(tmp_path, fmt, order):
    vectors = np.asarray(np.random.default_rng(4).normal(size=(N, 2)), order=order)
    path = tmp_path / f"v.{fmt[:3]}"
    {"npy": np.save, "npz": np.savez, "npz-compressed": np.savez_compressed}[fmt](path, vectors)
    s = open_sample_set(path)
    assert (s.info.kind, s.info.shape, s.info.dtype, s.info.scale) == ("vector", (2,),
                                                                        "float64", "none")
    assert s.info.value_range == (vectors.min(), vectors.max())
    assert torch.equal(s.read(0, N), torch.from_numpy(vectors.astype(np.float32)))
    with pytest.raises(SampleSetError) as e:
        s.read_uint8(0, 1)
    assert str(path) in message(e)


def test_integer_vectors_read_as_float(tmp_path):
    vectors = np.arange(12, dtype=np.int64).reshape(6, 2) - 5
    np.save(tmp_path / "v.npy", vectors)
    s = open_sample_set(tmp_path / "v.npy")
    assert s.info.kind == "vector" and s.info.value_range == (-5.0, 6.0)
    assert torch.equal(s.read(0, 6), torch.tensor(vectors, dtype=torch.float32))


@pytest.mark.parametrize("header", ["", "x,y,z\n", '"first", "second", "third"\n'])
def test_vectors_from_csv(tmp_path, header):
    vectors = np.random.default_rng(5).normal(size=(4, 3))
    path = tmp_path / "v.csv"
    rows = "\n".join(",".join(repr(float(v)) for v in row) for row in vectors)
    path.write_text(header + rows + "\n\n")
    s = open_sample_set(path)
    assert (s.info.format, s.info.kind, s.info.count, s.info.shape) == ("csv", "vector", 4, (3,))
    assert torch.equal(s.read(0, 4), torch.from_numpy(vectors.astype(np.float32)))


def test_npz_array_choice(tmp_path, images):
    np.savez(tmp_path / "one.npz", samples=images)
    assert np.array_equal(open_sample_set(tmp_path / "one.npz").read_uint8(0, N).numpy(),
                          nchw(images))
    np.savez(tmp_path / "adm.npz", images, labels=np.arange(N))  # arr_0 wins (ADM batches)
    assert open_sample_set(tmp_path / "adm.npz").info.shape == (3, H, W)
    np.savez(tmp_path / "two.npz", samples=images, labels=np.arange(N))
    with pytest.raises(SampleSetError) as e:
        open_sample_set(tmp_path / "two.npz")
    assert "two.npz" in message(e) and "labels" in message(e) and "samples" in message(e)


def test_value_range_is_scanned_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(sample_files, "_CHUNK_BYTES", 64)  # one row of 16 float32 at a time
    x = np.random.default_rng(6).uniform(0.2, 0.7, (10, 1, 4, 4)).astype(np.float32)
    x[7, 0, 1, 1], x[2, 0, 0, 0] = 0.9, 0.1
    np.save(tmp_path / "x.npy", x)
    s = open_sample_set(tmp_path / "x.npy")
    assert s.info.value_range == (np.float32(0.1), np.float32(0.9))
    x[3, 0, 0, :3], x[9, 0, 2, 2] = np.nan, np.inf
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(SampleSetError) as e:
        open_sample_set(tmp_path / "x.npy")
    assert "x.npy" in message(e) and "4 NaN or infinite" in message(e)


# ---- errors name the file -----------------------------------------------------------------

def test_missing_path_and_unknown_extension(tmp_path):
    with pytest.raises(SampleSetError) as e:
        open_sample_set(tmp_path / "nowhere.npz")
    assert "nowhere.npz" in message(e) and "does not exist" in message(e)
    (tmp_path / "samples.h5").write_bytes(b"\x00")
    with pytest.raises(SampleSetError) as e:
        open_sample_set(tmp_path / "samples.h5")
    assert "samples.h5" in message(e) and "'.h5'" in message(e)
    for supported in (".png", ".zip", ".npz", ".npy", ".csv"):
        assert supported in message(e)
    assert issubclass(SampleSetError, ConfigError)


def test_empty_sets(tmp_path):
    (tmp_path / "empty" / ".git").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    Image.new("RGB", (4, 4)).save(tmp_path / "empty" / ".git" / "x.png")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("readme.txt", "no images")
    np.save(tmp_path / "empty.npy", np.zeros((0, 8, 8, 3), np.uint8))
    np.savez(tmp_path / "empty.npz", np.zeros((0, 2)))
    (tmp_path / "empty.csv").write_text("x,y\n")
    for name in ("empty", "empty.zip", "empty.npy", "empty.npz", "empty.csv"):
        with pytest.raises(SampleSetError) as e:
            open_sample_set(tmp_path / name)
        assert str(tmp_path / name) in message(e), name


def test_undecodable_images_are_named(tmp_path, images):
    folder = write_folder(tmp_path / "samples", images)
    (folder / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(SampleSetError) as e:
        open_sample_set(folder)
    assert str(folder / "sub" / "broken.png") in message(e)

    with zipfile.ZipFile(tmp_path / "s.zip", "w") as zf:
        zf.writestr("ok.png", (folder / "a.png").read_bytes())
        zf.writestr("inner/bad.webp", b"RIFF0000WEBPjunk")
    with pytest.raises(SampleSetError) as e:
        open_sample_set(tmp_path / "s.zip")
    assert "inner/bad.webp" in message(e) and "s.zip" in message(e)

    # pixels are decoded when read: a file spoiled after the check fails then, named
    jpegs = write_folder(tmp_path / "jpegs", images[:2], ["0.jpg", "1.jpg"], fmt="JPEG")
    data = (jpegs / "1.jpg").read_bytes()
    s = open_sample_set(jpegs)
    (jpegs / "1.jpg").write_bytes(data[: len(data) // 2])
    s.read(0, 1)
    with pytest.raises(SampleSetError) as e:
        s.read(0, 2)
    assert str(jpegs / "1.jpg") in message(e)


def test_mixed_sizes_name_two_files(tmp_path, images):
    folder = write_folder(tmp_path / "samples", images[:2], ["a.png", "b.png"])
    Image.new("RGB", (W + 1, H)).save(folder / "c.png")
    with pytest.raises(SampleSetError) as e:
        open_sample_set(folder)
    assert "a.png" in message(e) and f"{W}x{H}" in message(e)
    assert "c.png" in message(e) and f"{W + 1}x{H}" in message(e)


@pytest.mark.parametrize("low, high, hint", [(-1.0, 1.0, "(x + 1) / 2"),
                                             (0.0, 255.0, "uint8"),
                                             (0.0, 1.001, "[0, 1]")])
def test_float_images_outside_unit_range(tmp_path, low, high, hint):
    x = np.linspace(low, high, N * 3 * 4 * 4).reshape(N, 3, 4, 4).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(SampleSetError) as e:
        open_sample_set(tmp_path / "x.npy")
    assert "x.npy" in message(e) and hint in message(e)


def test_float_images_within_tolerance_are_clamped(tmp_path):
    x = np.full((2, 1, 2, 2), 0.5)
    x[0, 0, 0, 0], x[1, 0, 1, 1] = -5e-7, 1 + 5e-7
    np.save(tmp_path / "x.npy", x)
    s = open_sample_set(tmp_path / "x.npy")
    assert s.read(0, 2).min() == 0.0 and s.read(0, 2).max() == 1.0
    assert s.read_uint8(0, 2).flatten().tolist() == [0, 128, 128, 128, 128, 128, 128, 255]


def test_nan_in_vectors_is_counted(tmp_path):
    (tmp_path / "v.csv").write_text("1,2\nnan,3\ninf,-inf\n")
    with pytest.raises(SampleSetError) as e:
        open_sample_set(tmp_path / "v.csv")
    assert "v.csv" in message(e) and "3 NaN or infinite" in message(e)


@pytest.mark.parametrize("shape", [(N, 4, H, W), (N, H, W, 4), (N, 2, H, 5), (N,), (N, 2, 3, 4, 5)])
def test_bad_array_shapes(tmp_path, shape):
    np.save(tmp_path / "x.npy", np.zeros(shape, np.uint8))
    with pytest.raises(SampleSetError) as e:
        open_sample_set(tmp_path / "x.npy")
    assert "x.npy" in message(e) and str(shape) in message(e)


def test_bad_csv_rows(tmp_path):
    (tmp_path / "ragged.csv").write_text("1,2\n3,4,5\n")
    (tmp_path / "words.csv").write_text("x,y\n1,2\na,b\n")
    for name, line in (("ragged.csv", "line 2"), ("words.csv", "line 3")):
        with pytest.raises(SampleSetError) as e:
            open_sample_set(tmp_path / name)
        assert name in message(e) and line in message(e)


def test_pickled_objects_are_never_loaded(tmp_path):
    objects = np.array([{"a": 1}, None], dtype=object)
    np.save(tmp_path / "o.npy", objects, allow_pickle=True)
    np.savez(tmp_path / "o.npz", objects)
    for name in ("o.npy", "o.npz"):
        with pytest.raises(SampleSetError) as e:
            open_sample_set(tmp_path / name)
        assert name in message(e) and "pickled" in message(e)


def test_bad_dtypes_and_files(tmp_path):
    np.save(tmp_path / "i.npy", np.zeros((N, H, W, 3), np.int32))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    np.save(tmp_path / "cut.npy", np.zeros((N, H, W, 3), np.uint8))
    data = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-10])
    with zipfile.ZipFile(tmp_path / "cut.npz", "w") as zf:
        zf.writestr("arr_0.npy", data[:-10])
    with zipfile.ZipFile(tmp_path / "cutz.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("arr_0.npy", data[:-10])
    for name in ("i.npy", "junk.npy", "junk.npz", "junk.zip", "cut.npy", "cut.npz", "cutz.npz"):
        with pytest.raises(SampleSetError) as e:
            open_sample_set(tmp_path / name)
        assert name in message(e)


def test_reading_past_the_end_says_how_many(tmp_path, images):
    np.savez(tmp_path / "s.npz", images)
    s = open_sample_set(tmp_path / "s.npz")
    for start, stop in [(0, N + 1), (-1, 2), (3, 2)]:
        with pytest.raises(SampleSetError) as e:
            s.read(start, stop)
        assert f"has {N} samples" in message(e) and "s.npz" in message(e)


# ---- content hash and provenance ----------------------------------------------------------

def test_content_sha256_follows_content_not_path(tmp_path, images):
    folder = write_folder(tmp_path / "samples", images)
    (folder / "notes.txt").write_text("ignored")
    first = content_sha256(folder)
    lines = "".join(f"{n}\0{hashlib.sha256((folder / n).read_bytes()).hexdigest()}\n"
                    for n in sorted(NAMES))
    assert first == hashlib.sha256(lines.encode()).hexdigest()
    assert open_sample_set(folder).info.sha256 == first

    copy = shutil.copytree(folder, tmp_path / "elsewhere" / "copy")
    assert content_sha256(copy) == first

    changed = images[0].copy()
    changed[0, 0, 0] ^= 1
    stat = os.stat(folder / "a.png")
    Image.fromarray(changed).save(folder / "a.png")
    # file hashes are remembered per (path, size, mtime); a clock tick can outlast the write
    os.utime(folder / "a.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert content_sha256(folder) != first
    assert content_sha256(copy) == first

    os.rename(copy / "b10.png", copy / "b11.png")
    assert content_sha256(copy) != first

    np.savez(tmp_path / "s.npz", images)
    assert content_sha256(tmp_path / "s.npz") == hashlib.sha256(
        (tmp_path / "s.npz").read_bytes()).hexdigest()


def test_info_to_dict_is_json(tmp_path, images):
    np.savez(tmp_path / "s.npz", images)
    info = open_sample_set(tmp_path / "s.npz").info
    d = json.loads(json.dumps(info.to_dict()))
    assert d == {"path": str((tmp_path / "s.npz").resolve()), "format": "npz", "kind": "image",
                 "count": N, "shape": [3, H, W], "dtype": "uint8",
                 "value_range": [float(images.min()), float(images.max())], "scale": "uint8",
                 "sha256": content_sha256(tmp_path / "s.npz")}


def test_public_names():
    assert genbench.open_sample_set is open_sample_set
    assert genbench.SampleSetError is SampleSetError
    assert genbench.SampleSet is sample_files.SampleSet
    assert genbench.SampleSetInfo is sample_files.SampleSetInfo
    assert genbench.content_sha256 is content_sha256
