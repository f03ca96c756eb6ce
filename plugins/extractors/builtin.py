"""Registers the built-in feature extractors: ``inception-v3-compat``, ``dinov2-vitb14``,
``digits-cnn``, ``raw``.

A light plugin module: the extractor modules import torch, so they are imported inside the
hook, when the registries are built, not whenever the plugin manager is created
(``genbench --help`` stays fast). None of them imports torch-fidelity at import time
(``inception-v3-compat`` builds torch-fidelity's network when it is constructed), so listing
and describing extractors stays fast too. ``dinov2-vitb14`` is registered without its optional
dependency (timm, imported when the extractor is built), so ``genbench assets`` lists it anyway.
"""

from __future__ import annotations

from genbench import hookimpl


@hookimpl
def register_feature_extractors(register):
    from .digits_cnn import DigitsCNNExtractor
    from .dinov2 import DINOv2ViTB14
    from .inception import InceptionV3Compat
    from .raw import RawFeatures

    register("inception-v3-compat", InceptionV3Compat)
    register("dinov2-vitb14", DINOv2ViTB14)
    register("digits-cnn", DigitsCNNExtractor)
    register("raw", RawFeatures)
