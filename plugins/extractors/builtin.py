"""Registers the built-in feature extractors: ``inception-v3-compat``, ``dinov2-vitb14``,
``dinov2-vitl14``, ``digits-cnn``, ``raw``.

A light plugin module: the extractor modules import torch, so they are imported inside the
hook, when the registries are built, not whenever the plugin manager is created
(``genbench --help`` stays fast). None of them imports torch-fidelity at import time
(``inception-v3-compat`` builds torch-fidelity's network when it is constructed), so listing
and describing extractors stays fast too. The DINOv2 extractors are registered without their
optional dependency (timm, imported when an extractor is built), so ``genbench assets`` lists
them anyway.
"""

from __future__ import annotations

from genbench import hookimpl


@hookimpl
def register_feature_extractors(register):
    from .digits_cnn import DigitsCNNExtractor
    from .dinov2 import DINOv2ViTB14, DINOv2ViTL14
    from .inception import InceptionV3Compat
    from .raw import RawFeatures

    register("inception-v3-compat", InceptionV3Compat)
    register("dinov2-vitb14", DINOv2ViTB14)
    register("dinov2-vitl14", DINOv2ViTL14)
    register("digits-cnn", DigitsCNNExtractor)
    register("raw", RawFeatures)
