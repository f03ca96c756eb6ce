"""``inception-v3-compat``: torch-fidelity's InceptionV3 (the standard FID/IS network).

The weights are torch-fidelity's own file, looked up where torch hub keeps it
(``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``) or taken from an
explicit path (spec ``feature_weights`` / ``--feature-weights``). They are never downloaded:
when absent, :class:`~genbench.api.errors.AssetMissingError` names the file, its sha256, its URL
and where to put it.

:data:`WEIGHTS_SHA256` is not shipped by torch-fidelity, which loads the file without a hash
check. The URL's file name follows torch hub's ``name-<sha256 prefix>.ext`` convention
(prefix ``6726825d``), and the full digest is the one published for this file by projects that
pin it (it starts with that prefix and is the same as pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth``, 95,628,359 bytes).

The class wraps torch-fidelity's ``FeatureExtractorInceptionV3``, built (and torch-fidelity
imported) only when the extractor is constructed; its layer names and metric layers are
written out here (a test checks them against torch-fidelity's), so registering, listing and
checking the extractor before training never import torch-fidelity. Beside torch-fidelity's
layers it provides ``mixed_6/conv``, the spatial features of sFID (:data:`SPATIAL_LAYER`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from genbench import FeatureExtractor, resolve_weights

#: torch-fidelity's ``URL_INCEPTION_V3`` (a test checks they agree), written out so that
#: describing the extractor does not import torch-fidelity.
WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth")
WEIGHTS_FILENAME = WEIGHTS_URL.rsplit("/", 1)[-1]
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
#: torch-fidelity's InceptionV3 layers: pooled features of 64, 192, 768 and 2048 channels,
#: then the 1008 logits without and with the bias.
FIDELITY_LAYERS = ("64", "192", "768", "2048", "logits_unbiased", "logits")
#: The spatial features of sFID (Nash et al. 2021) as OpenAI's ADM evaluator reads them: the
#: TF graph's tensor ``mixed_6/conv:0``, its first 7 channels, flattened in TF's
#: height-width-channel order (17 x 17 x 7 = 2,023 values). The TF graph's ``mixed``,
#: ``mixed_1``, ... ``mixed_10`` are this network's ``Mixed_5b`` ... ``Mixed_7c``, so
#: ``mixed_6`` is ``Mixed_6d``, and its ``conv`` scope (convolution, batch norm, ReLU; the
#: scope's output carries its name) is ``Mixed_6d.branch1x1``, the block's 1x1 branch.
SPATIAL_LAYER = "mixed_6/conv"
SPATIAL_CHANNELS = 7
#: torch-fidelity's layers that come before ``Mixed_6d`` (its forward stops after the last
#: layer asked for).
EARLY_LAYERS = ("64", "192")
LAYERS = (*FIDELITY_LAYERS, SPATIAL_LAYER)
#: The layer each metric reads: torch-fidelity's ``get_default_feature_layer_for_metric``,
#: and the spatial features (sFID's).
METRIC_LAYERS = {"fid": "2048", "isc": "logits_unbiased", "kid": "2048", "prc": "2048",
                 "spatial": SPATIAL_LAYER}


def _network_class() -> type:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3


class InceptionV3Compat(FeatureExtractor):
    """torch-fidelity's ``inception-v3-compat``, loading its weights only from disk."""

    description = ("torch-fidelity's InceptionV3 (TF-compatible): 2048 pool features, 1008 logits, "
                   "sFID's 2023 mixed_6/conv spatial features; weights from torch hub's cache or "
                   "--feature-weights, never downloaded")
    weights_filename = WEIGHTS_FILENAME
    weights_sha256 = WEIGHTS_SHA256
    weights_url = WEIGHTS_URL

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        # Resolve before torch-fidelity's constructor, which would download when given None.
        path, _, _ = resolve_weights(name, type(self), feature_extractor_weights_path)
        # the network computes its own layers; the spatial ones are read on the way, from a
        # hook (torch-fidelity's forward stops after its last requested layer: "768" lies
        # past Mixed_6d)
        self._fidelity_layers = [f for f in features_list if f != SPATIAL_LAYER]
        if SPATIAL_LAYER in features_list and set(self._fidelity_layers) <= set(EARLY_LAYERS):
            self._fidelity_layers.append("768")  # computed, not returned
        self.network = _network_class()(name, self._fidelity_layers,
                                        feature_extractor_weights_path=str(path), **kwargs)
        self._spatial: torch.Tensor | None = None
        if SPATIAL_LAYER in features_list:
            self.network.Mixed_6d.branch1x1.register_forward_hook(self._keep_spatial)

    def _keep_spatial(self, module, inputs, output: torch.Tensor) -> None:
        nhwc = output[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1)
        self._spatial = nhwc.reshape(len(output), -1).to(torch.float32)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = dict(zip(self._fidelity_layers, self.network(x)))
        if SPATIAL_LAYER in self.features_list:
            if self._spatial is None:
                raise RuntimeError("inception-v3-compat: the network stopped before Mixed_6d, "
                                   "so the spatial features were not computed")
            out[SPATIAL_LAYER], self._spatial = self._spatial, None
        return tuple(out[f] for f in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return LAYERS

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return METRIC_LAYERS[metric]

    @staticmethod
    def can_be_compiled():
        return _network_class().can_be_compiled()

    @staticmethod
    def get_dummy_input_for_compile():
        return _network_class().get_dummy_input_for_compile()

    @classmethod
    def default_weights_path(cls) -> Path:
        """torch hub's checkpoint cache, where torch-fidelity itself would put the file."""
        return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILENAME
