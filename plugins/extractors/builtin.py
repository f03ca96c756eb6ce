"""Registers the built-in feature extractors: ``inception-v3-compat``, ``digits-cnn``, ``raw``.

A light plugin module: the extractor modules import torch-fidelity (and torchvision), so they
are imported inside the hook, when the registries are built, not whenever the plugin manager
is created (``genbench --help`` stays fast).
"""

from __future__ import annotations

from genbench import hookimpl


@hookimpl
def register_feature_extractors(register):
    from .digits_cnn import DigitsCNNExtractor
    from .inception import InceptionV3Compat
    from .raw import RawFeatures

    register("inception-v3-compat", InceptionV3Compat)
    register("digits-cnn", DigitsCNNExtractor)
    register("raw", RawFeatures)
