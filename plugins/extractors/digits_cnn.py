"""``digits-cnn``: a small CNN classifier of 8x8 digits, as a feature extractor.

Trained by ``scripts/train_digits_classifier.py`` on the ``digits`` dataset's train split; the
weights ship in ``weights/digits_cnn.pt`` (a plain state_dict) with their sha256 recorded in
:data:`WEIGHTS_SHA256`. Features: ``penultimate`` (the 64 ReLU units before the classifier;
FID, KID, precision/recall) and ``logits`` (10 classes; Inception Score).

The penultimate features are multiplied by a fixed ``feature_scale`` stored in the weights
file (a buffer of :class:`DigitsNet`), chosen when the weights were trained so that the mean
of ``x.y / d`` over pairs of train-split features is :data:`FEATURE_PAIR_TARGET`. Raw ReLU
features sit far outside the regime KID's cubic kernel ``(x.y / d + 1) ** 3`` assumes (mean
``x.y / d`` about 20), which made KID values run into the thousands; FID scales by
``feature_scale ** 2``. The logits are computed from the unscaled features.

Gray digits (``digits``, 1x8x8) arrive as three identical uint8 channels (torch-fidelity's
input convention) and are classified once. Stacked digits (3x8x8, one digit per channel) are
classified channel by channel: ``penultimate`` concatenates the three 64-unit vectors (192)
and ``logits`` are the 1,000-way log-probabilities of the digit triple,
``log p(a) + log p(b) + log p(c)`` at index ``100 a + 10 b + c``, whose softmax is the product
of the per-channel class probabilities. genbench chooses the mode from the dataset's channel
count (:meth:`DigitsCNNExtractor.init_kwargs`); a direct torch-fidelity call (through
:func:`genbench.api.extractor.torch_fidelity_extractor`) passes ``digit_channels=3`` for stacked
digits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from genbench import AssetInvalidError, AssetMissingError, DataInfo, FeatureExtractor

#: The shipped weights file, next to this module.
WEIGHTS_PATH = Path(__file__).parent / "weights" / "digits_cnn.pt"
#: sha256 of the shipped weights file (checked by the tests and by ``genbench assets``).
WEIGHTS_SHA256 = "2450e13afd2f9e0936df88993e6b7e1a4f46cc063df717ca17297fd8f90b784e"
FEATURE_DIM = 64
NUM_CLASSES = 10
#: The mean of ``x.y / d`` over distinct train-split pairs that ``feature_scale`` is chosen for.
FEATURE_PAIR_TARGET = 0.5


class DigitsNet(nn.Module):
    """Conv 32-32-pool-64-pool, then a 64-unit ReLU layer (the features, times the stored
    ``feature_scale``) and 10 logits."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 32 x 4 x 4
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 64 x 2 x 2
            nn.Flatten(), nn.Linear(256, FEATURE_DIM), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)
        self.register_buffer("feature_scale", torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: (N, 1, 8, 8) in [0, 1]. Returns (features (N, 64), logits (N, 10))."""
        f = self.body(x)
        return f * self.feature_scale, self.head(f)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """What the extractor sees of [0, 1] images: ``round(x * 255) / 255``."""
    return (x * 255.0).round().clamp(0.0, 255.0) / 255.0


class DigitsCNNExtractor(FeatureExtractor):
    """Extractor over :class:`DigitsNet`; takes uint8 ``Bx3x8x8`` images."""

    description = ("CNN classifier of 8x8 digits (shipped, 99.7% test accuracy): 64 penultimate "
                   "features, 10 logits; stacked 3x8x8 digits per channel (192 features, 1,000 logits)")
    weights_filename = "digits_cnn.pt"
    weights_sha256 = WEIGHTS_SHA256
    weights_url = None  # shipped with genbench; retrain with scripts/train_digits_classifier.py

    def __init__(self, name, features_list, feature_extractor_weights_path=None,
                 digit_channels: Literal[1, 3] = 1, **kwargs):
        """``digit_channels``: 1 for gray digits, 3 for stacked ones (one digit per channel)."""
        super().__init__(name, features_list)
        self.digit_channels = digit_channels
        path = Path(feature_extractor_weights_path or WEIGHTS_PATH)
        if not path.is_file():
            raise AssetMissingError(
                f"digits-cnn weights {path} are missing; they ship with genbench (reinstall it) or "
                "can be rebuilt with `python scripts/train_digits_classifier.py`")
        self.net = DigitsNet()
        state = torch.load(path, map_location="cpu", weights_only=True)
        if "feature_scale" not in state:
            raise AssetInvalidError(
                f"digits-cnn weights {path} have no 'feature_scale' entry (written by a genbench "
                "before 0.2); rebuild them with `python scripts/train_digits_classifier.py --out "
                f"{path}` or use the weights that ship with genbench")
        self.net.load_state_dict(state)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def default_weights_path(cls) -> Path:
        return WEIGHTS_PATH

    @classmethod
    def supports(cls, data_info: DataInfo) -> str | None:
        if data_info.kind != "image" or data_info.shape not in ((1, 8, 8), (3, 8, 8)):
            return (f"it classifies 8x8 digits (1x8x8 gray or 3x8x8 stacked) and "
                    f"{data_info.name!r} is {data_info.kind} data of shape {data_info.shape}")
        return None

    @classmethod
    def init_kwargs(cls, data_info: DataInfo) -> dict:
        return {"digit_channels": data_info.shape[0]}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4
                and x.shape[1:] == (3, 8, 8)):
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"digits-cnn expects uint8 images of shape (B, 3, 8, 8), got {got}")
        x = x.float() / 255.0
        b = x.shape[0]
        if self.digit_channels == 1:
            feats, logits = self.net(x.mean(dim=1, keepdim=True))
        else:
            f, lg = self.net(x.reshape(b * 3, 1, 8, 8))
            feats = f.reshape(b, 3 * FEATURE_DIM)
            lp = F.log_softmax(lg, dim=1).reshape(b, 3, NUM_CLASSES)
            logits = (lp[:, 0, :, None, None] + lp[:, 1, None, :, None]
                      + lp[:, 2, None, None, :]).reshape(b, NUM_CLASSES ** 3)
        out = {"penultimate": feats, "logits": logits}
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "penultimate", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "penultimate", "kid": "penultimate",
                "prc": "penultimate"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
