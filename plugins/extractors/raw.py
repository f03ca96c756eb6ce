"""``raw``: the data itself as features, for vector sets (FID on 2D points, and so on).

No uint8 conversion (``input_format = "float"``): an item ``(D,)`` is its own feature
vector, an image is flattened. There are no class logits, so the Inception Score is skipped.
"""

from __future__ import annotations

import torch

from genbench import FeatureExtractor


class RawFeatures(FeatureExtractor):
    """Identity extractor: float32 data flattened to ``(B, D)``; layer ``"raw"``."""

    description = "the data itself (flattened, float32) as features; no logits, so no Inception Score"
    input_format = "float"

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not torch.is_tensor(x) or x.dim() < 2:
            raise ValueError(f"raw expects a batch (B, ...) tensor, got {getattr(x, 'shape', type(x))}")
        return (x.flatten(1).to(torch.float32),)

    @staticmethod
    def get_provided_features_list():
        return ("raw",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"fid": "raw", "kid": "raw", "prc": "raw", "isc": None}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 2)
