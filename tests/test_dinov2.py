"""``dinov2-vitb14``: weights never downloaded (a clear error naming file, sha256 and place),
``genbench assets`` lists it, and with random weights of the real architecture (written by
the test in the official checkpoint's layout) it embeds small gray and RGB images into 768-d
features deterministically, gives a FID, and runs in a suite on a 28x28 image folder.

ViT-B at 224 px costs about half a second per image on one CPU core, so every set is tiny.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch.nn import functional as F

from genbench import DataInfo, EvalContext
from genbench.cli.assets import assets
from genbench.features.assets import AssetChecksumError, resolve_weights
from genbench.api.errors import AssetMissingError, ConfigError, MissingDependencyError
from genbench.features.job_features import feature_layer, load_extractor
from genbench.api.paths import sha256_file
from genbench_plugins.extractors.dinov2 import (
    CHECKPOINT_GRID,
    FEATURE_DIM,
    GRID,
    TIMM_MODEL,
    WEIGHTS_FILENAME,
    WEIGHTS_URL,
    convert_checkpoint,
    resize_like_pil,
)
from helpers import FixedSamples, run_inline, tiny_spec

NAME = "dinov2-vitb14"
GRAY28 = DataInfo("gray28", "image", (1, 28, 28), fingerprint="gray28-test")
RGB32 = DataInfo("rgb32", "image", (3, 32, 32), fingerprint="rgb32-test")


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """A weights file laid out as Meta's ``dinov2_vitb14_pretrain.pth``: timm's key names plus
    ``mask_token``, position embedding on the 37 x 37 grid of 518 px; random values (seeded).

    The layer scales are set to 1: at their initial 1e-5 every block is nearly the identity
    and all images get almost the same class token."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(TIMM_MODEL, pretrained=False, num_classes=0, img_size=518)
    state = model.state_dict()
    for key in state:
        if key.endswith(("ls1.gamma", "ls2.gamma")):
            state[key] = torch.ones_like(state[key])
    assert state["pos_embed"].shape == (1, 1 + CHECKPOINT_GRID ** 2, FEATURE_DIM)
    state["mask_token"] = torch.zeros(1, FEATURE_DIM)
    path = tmp_path_factory.mktemp("dinov2") / WEIGHTS_FILENAME
    torch.save(state, path)
    yield path
    path.unlink()  # 346 MB: not left behind in pytest's kept temp folders


def u8(n, c, size, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=g)


# -- without weights (no timm needed) -------------------------------------------------------

def test_missing_weights_error_names_file_sha256_and_destination(registries, no_network, tmp_path):
    cls = registries.extractors.get(NAME)
    expected = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / WEIGHTS_FILENAME
    assert cls.default_weights_path() == expected
    with pytest.raises(AssetMissingError) as err:
        load_extractor(NAME, cls, GRAY28)
    msg = str(err.value)
    assert not isinstance(err.value, AssetChecksumError)
    assert WEIGHTS_FILENAME in msg and "sha256 not recorded" in msg
    assert WEIGHTS_URL in msg and str(expected) in msg
    assert f"genbench assets add {NAME} FILE" in msg and "--feature-weights" in msg
    assert not expected.exists()
    # preflight fails the same way before anything trains, for every feature metric but IS
    for metric in ("fid", "kid", "prc"):
        with pytest.raises(AssetMissingError, match=WEIGHTS_FILENAME):
            registries.metrics.get(metric)().preflight(
                GRAY28, feature_extractor=NAME, feature_weights=None, registries=registries)
    with pytest.raises(AssetMissingError, match="does not exist"):
        load_extractor(NAME, cls, GRAY28, weights=tmp_path / "nope.pth")


def test_assets_lists_the_file_without_a_recorded_sha256(registries, tmp_path):
    runner = CliRunner()
    rows = {r["extractor"]: r for r in json.loads(
        runner.invoke(assets, ["list", "--json"], obj={"registries": registries}).output)}
    row = rows[NAME]
    assert row["status"] == "missing" and not row["ok"] and row["url"] == WEIGHTS_URL
    assert row["filename"] == WEIGHTS_FILENAME and row["sha256_expected"] is None
    assert row["path"].endswith(f"hub/checkpoints/{WEIGHTS_FILENAME}")
    table = runner.invoke(assets, [], obj={"registries": registries}).output
    line = next(s for s in table.splitlines() if s.startswith(NAME))
    assert " missing " in line and line.rstrip().endswith("not recorded")
    assert f"get it from {WEIGHTS_URL}" in table
    # no digest to check against: any file is accepted, and its own digest is reported
    weights = tmp_path / WEIGHTS_FILENAME
    weights.write_bytes(b"stand-in")
    added = runner.invoke(assets, ["add", NAME, str(weights)], obj={"registries": registries})
    assert added.exit_code == 0, added.output
    rows = {r["extractor"]: r for r in json.loads(
        runner.invoke(assets, ["list", "--json"], obj={"registries": registries}).output)}
    assert rows[NAME]["status"] == "present (sha256 not recorded)" and rows[NAME]["ok"]
    assert rows[NAME]["sha256_actual"] == sha256_file(weights)
    path, sha, verified = resolve_weights(NAME, registries.extractors.get(NAME))
    assert sha == sha256_file(weights) and verified is False


def test_no_inception_score_and_images_only(registries, tmp_path):
    cls = registries.extractors.get(NAME)
    assert feature_layer(cls, "isc") is None
    assert {m: feature_layer(cls, m) for m in ("fid", "kid", "prc")} == dict.fromkeys(("fid", "kid", "prc"), "cls")
    x = torch.rand(4, 1, 28, 28)
    ctx = EvalContext(model=FixedSamples(GRAY28, x), model_name="m", data_info=GRAY28,
                      train=(x, None), test=(x, None), device=torch.device("cpu"), seed=0,
                      num_samples=4, cache_dir=tmp_path, feature_extractor=NAME,
                      registries=registries)
    assert "no class logits" in registries.metrics.get("isc")().skip_reason(ctx)
    assert "embeds images" in cls.supports(DataInfo("pts", "vector", (2,)))
    assert "4 channels" in cls.supports(DataInfo("rgba", "image", (4, 8, 8)))


def test_without_timm_the_error_says_how_to_install_it(registries, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError
    weights = tmp_path / WEIGHTS_FILENAME
    weights.write_bytes(b"never read")
    with pytest.raises(MissingDependencyError, match=r'genbench\[dinov2\]'):
        load_extractor(NAME, registries.extractors.get(NAME), GRAY28, weights=weights)
    # ... and the preflight says so before any training, whether the weights are there or not
    for path in (weights, None):
        for metric in ("fid", "prdc", "memorization"):
            with pytest.raises(MissingDependencyError, match=r'genbench\[dinov2\]'):
                registries.metrics.get(metric)().preflight(
                    GRAY28, feature_extractor=NAME, feature_weights=path, registries=registries)


def test_resize_matches_pil_bicubic():
    """dgm-eval resizes PIL images to 224 x 224 with BICUBIC; the tensor path agrees to within
    PIL's fixed-point rounding. Square images only: for non-square ones, which pass PIL runs
    first has differed between Pillow builds."""
    rng = np.random.default_rng(0)
    for h, w in ((28, 28), (32, 32), (8, 8), (300, 300), (224, 224)):
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pil = np.asarray(Image.fromarray(a).resize((224, 224), Image.BICUBIC), dtype=np.float32)
        ours = resize_like_pil(torch.from_numpy(a).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
        diff = np.abs(ours - pil)
        assert diff.max() <= 2 and (diff > 0).mean() < 0.01, (h, w)


def test_checkpoint_conversion_resamples_the_position_grid():
    dim = FEATURE_DIM
    pos = torch.cat([torch.full((1, 1, dim), 7.0), torch.full((1, CHECKPOINT_GRID ** 2, dim), 0.25)], 1)
    state = {"mask_token": torch.zeros(1, dim), "pos_embed": pos,
             "blocks.0.3.norm1.weight": torch.ones(dim)}  # a chunked checkpoint's block name
    out = convert_checkpoint(state)
    assert set(out) == {"pos_embed", "blocks.3.norm1.weight"}
    assert out["pos_embed"].shape == (1, 1 + GRID ** 2, dim)
    assert torch.all(out["pos_embed"][:, 0] == 7.0)
    assert torch.allclose(out["pos_embed"][:, 1:], torch.tensor(0.25), atol=1e-6)  # constant stays
    same = convert_checkpoint({"pos_embed": out["pos_embed"]})["pos_embed"]  # timm's 224 px layout
    assert torch.equal(same, out["pos_embed"])


# -- random weights of the real architecture ---------------------------------------------------

def test_random_weights_give_deterministic_768d_features(registries, random_weights, no_network, tmp_path):
    cls = registries.extractors.get(NAME)
    gray = load_extractor(NAME, cls, GRAY28, weights=random_weights)
    assert gray.weights_sha256 == sha256_file(random_weights) and gray.weights_verified is None
    assert gray.requested_layers == ["cls"] and gray.layers["isc"] is None
    x_gray = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    f1 = gray.features(x_gray, batch_size=2)["cls"]
    assert f1.shape == (2, FEATURE_DIM) and f1.dtype == torch.float32 and torch.isfinite(f1).all()
    assert torch.equal(gray.features(x_gray, batch_size=2)["cls"], f1)        # deterministic
    assert torch.allclose(gray.features(x_gray, batch_size=1)["cls"], f1, atol=1e-4)  # per item
    assert (f1[0] - f1[1]).norm() > 1.0                                        # inputs matter

    rgb = load_extractor(NAME, cls, RGB32, weights=random_weights)
    f2 = rgb.features(u8(2, 3, 32, seed=2), batch_size=2)["cls"]
    assert f2.shape == (2, FEATURE_DIM) and torch.isfinite(f2).all()
    # a gray image is the RGB image with its channel repeated (and the same network)
    as_rgb = x_gray.mul(255).round().to(torch.uint8).expand(-1, 3, -1, -1)
    assert torch.equal(rgb.module(as_rgb)[0], f1)
    with pytest.raises(ValueError, match="uint8 images"):
        rgb.module(torch.rand(1, 3, 32, 32))

    # the model's own state dict (timm's layout, 224 px grid) loads to the same network
    timm_layout = tmp_path / "timm-layout.pth"
    torch.save(gray.module.model.state_dict(), timm_layout)
    again = load_extractor(NAME, cls, GRAY28, weights=timm_layout)
    assert torch.equal(again.features(x_gray, batch_size=2)["cls"], f1)
    timm_layout.unlink()  # 346 MB


def official_forward(state: dict[str, torch.Tensor], images: torch.Tensor,
                     heads: int = 12) -> torch.Tensor:
    """The class token of DINOv2 ViT-B/14 (ViT-L/14: ``heads=16``) written out in float64 from
    the official checkpoint's tensors, as facebookresearch/dinov2's
    ``DinoVisionTransformer.forward`` computes it (not through timm, which the extractor uses):
    14 px patches by a strided convolution, the class token, the 37 x 37 position grid resampled
    at run time (``interpolate_pos_encoding``: bicubic, scale factor ``(16 + 0.1) / 37``, no
    antialiasing), the checkpoint's pre-norm blocks (12 in ViT-B/14, 24 in ViT-L/14) of
    ``heads``-head attention and a GELU MLP, each scaled by its layer scale, LayerNorms with
    eps 1e-6, and the final LayerNorm's class token."""
    w = {k: v.double() for k, v in state.items()}
    x = images.double()
    b, _, height, width = x.shape
    x = F.conv2d(x, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=14)
    x = torch.cat([w["cls_token"].expand(b, -1, -1), x.flatten(2).transpose(1, 2)], 1)
    pos, dim = w["pos_embed"], w["cls_token"].shape[-1]
    m = math.isqrt(pos.shape[1] - 1)
    grid = pos[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((width // 14 + 0.1) / m, (height // 14 + 0.1) / m),
                         mode="bicubic", antialias=False)
    x = x + torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, dim)], 1)
    n, depth = x.shape[1], len({k.split(".")[1] for k in w if k.startswith("blocks.")})
    for i in range(depth):
        p = f"blocks.{i}."
        y = F.layer_norm(x, (dim,), w[p + "norm1.weight"], w[p + "norm1.bias"], eps=1e-6)
        qkv = F.linear(y, w[p + "attn.qkv.weight"], w[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(b, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        attention = (q @ k.transpose(-2, -1) / math.sqrt(dim // heads)).softmax(-1)
        y = (attention @ v).transpose(1, 2).reshape(b, n, dim)
        y = F.linear(y, w[p + "attn.proj.weight"], w[p + "attn.proj.bias"])
        x = x + w[p + "ls1.gamma"] * y
        y = F.layer_norm(x, (dim,), w[p + "norm2.weight"], w[p + "norm2.bias"], eps=1e-6)
        y = F.gelu(F.linear(y, w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"]))
        x = x + w[p + "ls2.gamma"] * F.linear(y, w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"])
    return F.layer_norm(x, (dim,), w["norm.weight"], w["norm.bias"], eps=1e-6)[:, 0]


def dgm_eval_preprocess(images: torch.Tensor) -> torch.Tensor:
    """dgm-eval's input: each uint8 image as a PIL image, ``Resize((224, 224), BICUBIC)``,
    ``ToTensor`` (/ 255) and ``Normalize`` with ImageNet's mean and std."""
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    out = []
    for a in images.permute(0, 2, 3, 1).numpy():
        resized = np.asarray(Image.fromarray(a).resize((224, 224), Image.BICUBIC), np.float64)
        out.append(((resized / 255 - mean) / std).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


def test_features_equal_an_independent_forward_of_the_official_model(registries, random_weights):
    """The extractor (timm's network, the converted checkpoint, its own resize) against the
    official architecture written out in the test on the checkpoint as saved, after dgm-eval's
    PIL preprocessing. On the extractor's own network input the two agree to float32's
    precision (measured: 7e-7 relative); from the uint8 images, through PIL, to within what
    PIL's fixed-point rounding leaves: one grey level on 0.02% of the pixels, 8e-5 relative
    in the features (two images differ by 28%)."""
    state = torch.load(random_weights, map_location="cpu", weights_only=True)
    module = load_extractor(NAME, registries.extractors.get(NAME), RGB32,
                            weights=random_weights).module
    images = u8(2, 3, 32, seed=2)
    reference_input = dgm_eval_preprocess(images)
    with torch.no_grad():
        network_input = module.preprocess(images)
        features = module(images)[0].double()
    gap = (network_input.double() - reference_input).abs()
    assert gap.max() <= 2 / 255 / 0.224 + 1e-6 and (gap > 1e-5).double().mean() < 0.01
    # image 0 on the extractor's network input, image 1 from the uint8 pixels through PIL
    inputs = torch.stack([network_input[0].double(), reference_input[1]])
    expected = official_forward(state, inputs)
    relative = (features - expected).norm(dim=1) / expected.norm(dim=1)
    assert relative[0] < 1e-5 and relative[1] < 1e-3, relative
    assert (expected[0] - expected[1]).norm() > 0.1 * expected[0].norm()  # the images differ


def test_a_foreign_checkpoint_is_a_clear_error(registries, random_weights, tmp_path):
    wrong = tmp_path / "vits14.pth"
    torch.save({"cls_token": torch.zeros(1, 1, 384), "pos_embed": torch.zeros(1, 1370, 384)}, wrong)
    with pytest.raises(ConfigError, match="not a DINOv2 ViT-B/14 checkpoint"):
        load_extractor(NAME, registries.extractors.get(NAME), GRAY28, weights=wrong)


def test_fid_between_two_small_sets(registries, random_weights, no_network, tmp_path):
    g = torch.Generator().manual_seed(3)
    ref = torch.rand(4, 3, 32, 32, generator=g)
    gen = (ref + 0.5 * torch.rand(4, 3, 32, 32, generator=g)).clamp(0, 1)

    ctx = EvalContext(model=FixedSamples(RGB32, gen), model_name="m", data_info=RGB32,
                      train=(ref, None), test=(ref, None), device=torch.device("cpu"), seed=0,
                      num_samples=len(gen), cache_dir=tmp_path, feature_extractor=NAME,
                      feature_weights=str(random_weights), registries=registries)
    # one FID only: the matrix square root of 768 x 768 covariances takes seconds on one core
    r = registries.metrics.get("fid")().compute(ctx)
    assert r.details["feature_extractor"] == NAME and r.details["n_reference"] == 4
    assert r.details["weights_sha256"] == sha256_file(random_weights)
    value = r.values["fid"]
    assert math.isfinite(value) and value > 0


def test_runs_in_a_suite_on_a_28x28_image_folder(registries, random_weights, tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{i}.png")
    spec = tiny_spec(
        datasets=[{"name": "image-folder",
                   "params": {"path": str(folder), "size": 28, "channels": 1, "test_fraction": 0.5}}],
        models=["train-data"], metrics=["kid", "prc"], num_samples=4,
        budget={"steps": 1, "batch_size": 4},
        feature_extractor=NAME, feature_weights=str(random_weights))
    # no class logits, so the Inception Score applies to no pair: refused before training
    with pytest.raises(ConfigError, match="'isc' applies to no .* has no class logits"):
        run_inline(spec.select(registries, metrics=["kid", "prc", "isc"]), tmp_path / "out",
                   registries)
    report = run_inline(spec, tmp_path / "out", registries)
    (job,) = report.ran
    assert job.status == "ok", job.error
    by_name = {m.metric: m for m in job.metrics}
    for metric in ("kid", "prc"):  # FID: test_fid_between_two_small_sets
        m = by_name[metric]
        assert m.status == "ok", (metric, m.message)
        assert m.values and all(math.isfinite(v) for v in m.values.values())
        assert m.details["feature_extractor"] == NAME
        assert m.details["weights_sha256"] == sha256_file(random_weights)
