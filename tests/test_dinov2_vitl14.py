"""``dinov2-vitl14`` (dgm-eval's recommended backbone, EDM2's FD_DINOv2): listed with its
weights file, never downloaded, refuses ViT-B/14's weights in one line, and with random
weights of the real ViT-L/14 (written by the test in the official checkpoint's layout) gives
deterministic 1024-d features equal to the official model's forward.

ViT-L is 300M parameters (a 1.2 GB checkpoint, seconds per image on one core): one weights
file for the module and two tiny images through the network. The code both DINOv2 variants
share is tested on ViT-B/14 in test_dinov2.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from genbench import DataInfo
from genbench.api.errors import AssetMissingError, ConfigError
from genbench.cli.assets import assets
from genbench.features.job_features import load_extractor
from genbench_plugins.extractors.dinov2 import CHECKPOINT_GRID, DINOv2ViTB14, DINOv2ViTL14
from helpers import invoke_cli
from test_dinov2 import dgm_eval_preprocess, official_forward, u8

NAME = "dinov2-vitl14"
FILENAME = "dinov2_vitl14_pretrain.pth"
URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth"
RGB32 = DataInfo("rgb32", "image", (3, 32, 32), fingerprint="rgb32-test")


def official_layout(timm_model: str, values) -> dict[str, torch.Tensor]:
    """A state dict laid out as Meta's checkpoint of ``timm_model``: timm's key names and
    shapes at 518 px (a 37 x 37 position grid) plus ``mask_token``; ``values(key, shape)``
    makes each tensor. The network is built on the meta device: shapes only, no memory."""
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        model = timm.create_model(timm_model, pretrained=False, num_classes=0, img_size=518)
    shapes = model.state_dict()
    state = {key: values(key, meta.shape) for key, meta in shapes.items()}
    width = state["cls_token"].shape[-1]
    assert state["pos_embed"].shape == (1, 1 + CHECKPOINT_GRID ** 2, width)
    state["mask_token"] = torch.zeros(1, width)
    return state


@pytest.fixture(scope="module")
def vitl14_weights(tmp_path_factory):
    """``(path, state)``: seeded random weights of DINOv2 ViT-L/14 saved as Meta's
    ``dinov2_vitl14_pretrain.pth``. Every tensor is random (biases and LayerNorms too, so each
    one's place is checked); norm weights and layer scales are near 1, the rest small."""
    g = torch.Generator().manual_seed(0)

    def values(key, shape):
        noise = torch.randn(shape, generator=g)
        near_one = key.endswith(("norm1.weight", "norm2.weight", "norm.weight", ".gamma"))
        return noise.mul_(0.1).add_(1.0) if near_one else noise.mul_(0.02)

    state = official_layout(DINOv2ViTL14.timm_model, values)
    path = tmp_path_factory.mktemp("dinov2-vitl14") / FILENAME
    torch.save(state, path)
    yield path, state
    path.unlink()  # 1.2 GB: not left behind in pytest's kept temp folders


def test_listed_with_its_file_which_is_never_downloaded(registries, no_network, tmp_path):
    cls = registries.extractors.get(NAME)
    assert (cls.weights_filename, cls.weights_url, cls.weights_sha256) == (FILENAME, URL, None)
    expected = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / FILENAME
    assert cls.default_weights_path() == expected
    with pytest.raises(AssetMissingError) as err:
        load_extractor(NAME, cls, RGB32)
    msg = str(err.value)
    assert FILENAME in msg and URL in msg and str(expected) in msg and "sha256 not recorded" in msg
    assert f"genbench assets add {NAME} FILE" in msg and not expected.exists()
    with pytest.raises(AssetMissingError,
                       match=f"{NAME} weights .* do not exist; get {FILENAME} from {URL}"):
        cls(NAME, ["cls"], feature_extractor_weights_path=str(tmp_path / "nope.pth"))

    listed = CliRunner().invoke(assets, ["list", "--json"], obj={"registries": registries})
    assert listed.exit_code == 0, listed.output
    rows = {r["extractor"]: r for r in json.loads(listed.output)}
    assert rows[NAME]["status"] == "missing" and rows[NAME]["url"] == URL
    assert rows[NAME]["filename"] == FILENAME and rows[NAME]["sha256_expected"] is None
    assert rows[NAME]["path"].endswith(f"hub/checkpoints/{FILENAME}")
    listed = invoke_cli("list", "extractors")
    assert listed.exit_code == 0, listed.output
    row = " ".join(listed.stdout[listed.stdout.index(f"\n{NAME} "):].split())
    assert "DINOv2 ViT-L/14 (dgm-eval's recommended backbone, EDM2's FD_DINOv2): 1024-d" in row
    assert FILENAME in row


def test_a_vitb14_checkpoint_is_refused_in_one_line(registries, tmp_path):
    """Meta's ViT-B/14 file (its layout and shapes; zeros) given to ViT-L/14."""
    state = official_layout(DINOv2ViTB14.timm_model, lambda key, shape: torch.zeros(shape))
    wrong = tmp_path / "dinov2_vitb14_pretrain.pth"
    torch.save(state, wrong)
    with pytest.raises(ConfigError) as err:
        load_extractor(NAME, registries.extractors.get(NAME), RGB32, weights=wrong)
    assert str(err.value) == (f"{NAME}: {wrong} is not a DINOv2 ViT-L/14 checkpoint ({FILENAME}): "
                              "it holds a 768-wide ViT with 12 blocks, and DINOv2 ViT-L/14 is "
                              "1024-wide with 24 blocks")
    wrong.unlink()  # 346 MB


@pytest.mark.slow
def test_random_weights_give_deterministic_1024d_features_of_the_official_model(
        registries, vitl14_weights, no_network):
    """The extractor (timm's network, the converted checkpoint, its own resize) against the
    official architecture written out in float64 on the checkpoint as saved
    (test_dinov2.official_forward), after dgm-eval's PIL preprocessing, as for ViT-B/14:
    image 0 on the extractor's own network input, image 1 from the uint8 pixels through PIL."""
    path, state = vitl14_weights
    extractor = load_extractor(NAME, registries.extractors.get(NAME), RGB32, weights=path)
    assert extractor.weights_verified is None and extractor.requested_layers == ["cls"]
    assert extractor.layers["isc"] is None
    images = u8(2, 3, 32, seed=2)
    features = extractor.features(images.float() / 255, batch_size=2)["cls"]
    assert features.shape == (2, 1024) and features.dtype == torch.float32
    assert torch.isfinite(features).all()
    module = extractor.module
    with torch.no_grad():
        network_input = module.preprocess(images)
        assert torch.equal(module(images)[0], features)  # deterministic; same as the pipeline's
    del extractor, module  # 1.2 GB, before the float64 copy of the weights (2.4 GB)

    reference_input = dgm_eval_preprocess(images)
    gap = (network_input.double() - reference_input).abs()
    assert gap.max() <= 2 / 255 / 0.224 + 1e-6 and (gap > 1e-5).double().mean() < 0.01
    inputs = torch.stack([network_input[0].double(), reference_input[1]])
    expected = official_forward(state, inputs, heads=16)
    relative = (features.double() - expected).norm(dim=1) / expected.norm(dim=1)
    assert relative[0] < 1e-5 and relative[1] < 1e-3, relative
    assert (expected[0] - expected[1]).norm() > 0.1 * expected[0].norm()  # the images differ
