"""The reference rows: train-data (memorised training split) and uniform-noise."""

from __future__ import annotations

import torch

from genbench import Budget, DataInfo, TensorSplit
from genbench.execution.training import Trainer


def test_train_data_is_refitted_not_checkpointed(registries, digits, tmp_path):
    info, split = digits.info(), digits.split("train")
    cls = registries.models.get("train-data")
    for _ in range(2):  # a rerun (e.g. after a crash) refits and gets the same data
        model = cls(info)
        result = Trainer("cpu", checkpoint_path=tmp_path / "ckpt.pt", progress=False).fit(
            model, split, Budget(steps=1))
        assert result.status == "ok" and torch.equal(model.data, split.x)
    assert not (tmp_path / "ckpt.pt").exists()  # nothing as large as the data is saved
    assert "data" not in model.state_dict()


def test_train_data_draws_without_replacement(registries):
    n = 50
    items = torch.arange(n, dtype=torch.float32)[:, None]           # every row distinct
    model = registries.models.get("train-data")(DataInfo("ids", "vector", (1,)))
    model.fit(TensorSplit(items), Budget(steps=1))
    s = model.sample(n - 7, generator=torch.Generator().manual_seed(0)).flatten().long()
    assert len(s.unique()) == n - 7                                   # no item twice
    assert not torch.equal(s, torch.arange(n - 7))                    # shuffled, not the head
    counts = torch.bincount(model.sample(2 * n + 3, generator=torch.Generator().manual_seed(1))
                            .flatten().long(), minlength=n)
    assert set(counts.tolist()) == {2, 3} and int((counts == 3).sum()) == 3


def test_uniform_noise_covers_the_data_range(registries):
    img = registries.models.get("uniform-noise")(DataInfo("i", "image", (1, 4, 4)))
    s = img.sample(500, generator=torch.Generator().manual_seed(0))
    assert s.shape == (500, 1, 4, 4) and 0.0 <= s.min() and s.max() < 1.0 and s.mean().sub(0.5).abs() < 0.02

    x = torch.tensor([[-2.0, 10.0], [3.0, 11.0], [0.0, 12.0]])
    vec = registries.models.get("uniform-noise")(DataInfo("v", "vector", (2,)))
    vec.fit(TensorSplit(x), Budget(steps=1))
    v = vec.sample(1000, generator=torch.Generator().manual_seed(0))
    assert (v[:, 0] >= -2).all() and (v[:, 0] <= 3).all() and (v[:, 1] >= 10).all() and (v[:, 1] <= 12).all()
    assert v[:, 0].min() < -1.9 and v[:, 0].max() > 2.9
