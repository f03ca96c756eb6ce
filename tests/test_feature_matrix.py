"""Features kept in files (genbench.features.feature_matrix) and the metrics that read them a
block at a time: the same numbers as torch-fidelity's own functions on the whole matrix."""

import numpy as np
import pytest
import torch

from genbench.features.feature_matrix import FeatureMatrix, FeatureMatrixWriter


def _write(path, x, block=7):
    w = FeatureMatrixWriter(path, len(x))
    for i in range(0, len(x), block):
        w.append(x[i:i + block])
    return w.close()


def test_rows_written_in_blocks_read_back_as_numpy_wrote_them(tmp_path):
    x = torch.randn(50, 6)
    m = _write(tmp_path / "f.npy", x)
    assert np.array_equal(np.load(tmp_path / "f.npy"), x.numpy())  # a standard .npy file
    assert len(m) == 50 and m.shape == (50, 6) and m.dtype == torch.float32
    assert torch.equal(m.load(), x)
    assert torch.equal(m[3], x[3]) and torch.equal(m[10:23], x[10:23])
    idx = torch.tensor([40, 2, 2, 17])
    assert torch.equal(m[idx], x[idx]) and torch.equal(m[idx.numpy()], x[idx])
    assert torch.equal(torch.cat(list(m.chunks(8))), x)
    assert torch.equal(m[-1], x[-1]) and torch.equal(m[1:40:3], x[1:40:3])
    assert torch.equal(m[torch.tensor([-1, 0, 5, 6, 7, 30])], x[torch.tensor([-1, 0, 5, 6, 7, 30])])
    assert m[7:7].shape == (0, 6) and m[torch.tensor([], dtype=torch.long)].shape == (0, 6)
    for bad in ([1.7, 2.2], [True, False], (1, 2)):
        with pytest.raises(TypeError):
            m[bad]
    with pytest.raises(IndexError):
        m[torch.tensor([50])]
    with pytest.raises(TypeError):
        m[torch.ones(50, dtype=torch.bool)]


def test_a_block_longer_than_one_read_is_read_whole(tmp_path, monkeypatch):
    """Linux's read() returns at most about 2 GiB: a short read is continued, not an error."""
    from genbench.features import feature_matrix

    x = torch.randn(40, 8)
    m = _write(tmp_path / "f.npy", x)

    class ShortReads:  # a file whose reads return at most 100 bytes
        def __init__(self, *args, **kwargs):
            self.f = open(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def seek(self, offset):
            return self.f.seek(offset)

        def readinto(self, buffer):
            return self.f.readinto(memoryview(buffer)[:100])

    monkeypatch.setattr(feature_matrix, "open", ShortReads, raising=False)
    assert torch.equal(m.load(), x) and torch.equal(m[torch.tensor([3, 39])], x[[3, 39]])


def test_a_writer_refuses_the_wrong_count_width_or_dtype_and_a_reader_a_truncated_file(tmp_path):
    w = FeatureMatrixWriter(tmp_path / "a.npy", 4)
    w.append(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="width"):
        w.append(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="dtype"):
        w.append(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="1 rows written where 4"):
        w2 = FeatureMatrixWriter(tmp_path / "b.npy", 4)
        w2.append(torch.zeros(1, 3))
        w2.close()
    assert not (tmp_path / "b.npy").exists()
    with pytest.raises(ValueError, match="more than the 4 rows"):
        w.append(torch.zeros(3, 3))
    m = _write(tmp_path / "c.npy", torch.randn(10, 4))
    data = (tmp_path / "c.npy").read_bytes()
    (tmp_path / "c.npy").write_bytes(data[:-4])
    with pytest.raises(ValueError, match="truncated"):
        FeatureMatrix(m.path)


def test_fid_is_and_kid_from_files_equal_torch_fidelity_on_the_whole_matrices(tmp_path):
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    from genbench import fid_from_statistics, fid_statistics, isc_from_logits, kid_from_features

    g = torch.Generator().manual_seed(0)
    gen, ref = torch.randn(300, 16, generator=g) + 0.3, torch.randn(200, 16, generator=g)
    logits = torch.randn(300, 10, generator=g) * 3
    mg, ml = _write(tmp_path / "g.npy", gen, 64), _write(tmp_path / "l.npy", logits, 64)

    fid_tf = fid_statistics_to_metric(fid_features_to_statistics(gen), fid_features_to_statistics(ref),
                                      False)["frechet_inception_distance"]
    from_file = fid_statistics(mg, chunk=50)
    in_memory = fid_statistics(gen, chunk=50)
    assert all(np.array_equal(from_file[k], in_memory[k]) for k in ("mu", "sigma"))
    # torch-fidelity keeps the mean in float32 (ours is float64): equal to float32's precision
    assert fid_from_statistics(from_file, fid_statistics(ref)) == pytest.approx(fid_tf, rel=1e-6)

    isc_tf = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    assert isc_from_logits(ml, 10, True, 2020) == (isc_tf["inception_score_mean"],
                                                   isc_tf["inception_score_std"])

    # splits larger than a block: two passes of 64 rows, equal to rounding
    isc_tf2 = isc_features_to_metric(logits, splits=2, shuffle=True, rng_seed=5)
    chunked = isc_from_logits(ml, 2, True, 5, chunk=64)
    assert chunked == pytest.approx((isc_tf2["inception_score_mean"],
                                     isc_tf2["inception_score_std"]), rel=1e-12)
    assert chunked[0] > 1.5  # far from the uniform logits' 1: the test can tell

    kid_tf = kid_features_to_metric(gen, ref, kid_subsets=20, kid_subset_size=50, rng_seed=3,
                                    verbose=False)
    mean, std, used = kid_from_features(mg, ref, subsets=20, subset_size=50, rng_seed=3)
    assert (mean, std, used) == (kid_tf["kernel_inception_distance_mean"],
                                 kid_tf["kernel_inception_distance_std"], 50)
    assert kid_from_features(gen, ref, subsets=20, subset_size=50, rng_seed=3) == (mean, std, used)


def test_shards_features_are_read_back_and_a_damaged_one_is_extracted_again(tmp_path):
    from genbench.evaluation.sample_shards import part_features

    class Ext:
        name, weights_sha256, requested_layers = "x", "abc", ["pool", "logits"]

    import json

    folders = []
    for i, n in enumerate((5, 3)):
        folder = tmp_path / f"part-{i}" / "features-x"
        folder.mkdir(parents=True)
        layers = {}
        for layer, d in (("pool", 4), ("logits", 2)):
            _write(folder / f"{layer}.npy", torch.full((n, d), float(i)))
            layers[layer] = f"{layer}.npy"
        (folder / "features.json").write_text(json.dumps(
            {"extractor": "x", "weights_sha256": "abc", "n": n, "layers": layers}))
        folders.append(tmp_path / f"part-{i}")
    parts = part_features(folders, Ext, 8)
    assert [len(p["pool"]) for p in parts] == [5, 3] and parts[1]["logits"].shape == (3, 2)
    assert part_features(folders, Ext, 9) is None  # not the row's count
    other = type("Other", (), {**vars(Ext), "weights_sha256": "def"})
    assert part_features(folders, other, 8) is None  # other weights
    path = folders[1] / "features-x" / "pool.npy"
    path.write_bytes(path.read_bytes()[:-4])
    assert part_features(folders, Ext, 8) is None  # truncated
