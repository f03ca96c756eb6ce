"""The built-in feature extractors: digits-cnn (shipped weights), raw, registration."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest
import torch

from genbench import DataInfo, FeatureExtractor
from genbench.api.errors import ConfigError, RegistrationError
from genbench.features.job_features import load_extractor, to_uint8_images

REPO = Path(__file__).resolve().parents[1]



def _train_script():
    spec = importlib.util.spec_from_file_location(
        "train_digits_classifier", REPO / "scripts" / "train_digits_classifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_builtin_extractors_are_registered_genbench_extractors(registries):
    assert {"inception-v3-compat", "digits-cnn", "raw", "dinov2-vitb14"} <= set(registries.extractors.names())
    for name in ("inception-v3-compat", "digits-cnn", "raw", "dinov2-vitb14"):
        assert issubclass(registries.extractors.get(name), FeatureExtractor)


def test_shipped_digits_weights_match_their_recorded_sha256(registries):
    cls = registries.extractors.get("digits-cnn")
    path = cls.default_weights_path()
    assert path.is_file() and path.stat().st_size < 1_000_000
    assert hashlib.sha256(path.read_bytes()).hexdigest() == cls.weights_sha256
    state = torch.load(path, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_digits_cnn_features_sit_in_kids_kernel_regime(registries, digits):
    """The stored scale puts the mean of x.y / d over distinct train pairs in [0.1, 1] (it is
    about 20 in the raw ReLU features); the logits do not depend on it."""
    from genbench_plugins.extractors.digits_cnn import DigitsNet, quantize

    cls = registries.extractors.get("digits-cnn")
    x = digits.tensors("train")[0]
    feats = load_extractor("digits-cnn", cls, digits.info()).features(x)["penultimate"].double()
    n, d = feats.shape
    gram = feats @ feats.T / d
    pair_mean = (gram.sum() - gram.diagonal().sum()) / (n * (n - 1))
    assert 0.1 <= pair_mean <= 1.0, pair_mean

    state = torch.load(cls.default_weights_path(), weights_only=True)
    scale = float(state["feature_scale"])
    net = DigitsNet()
    net.load_state_dict(state)
    net.feature_scale.fill_(1.0)
    with torch.no_grad():
        raw, raw_logits = net(quantize(x))
    assert torch.allclose(feats, scale * raw.double(), rtol=1e-5, atol=1e-6)
    assert torch.allclose(load_extractor("digits-cnn", cls, digits.info()).features(x)["logits"],
                          raw_logits, atol=1e-5)


def test_digits_weights_without_a_feature_scale_are_refused(registries, digits, tmp_path):
    from genbench.api.errors import AssetInvalidError

    cls = registries.extractors.get("digits-cnn")
    state = torch.load(cls.default_weights_path(), weights_only=True)
    del state["feature_scale"]
    old = tmp_path / "old-digits-cnn.pt"
    torch.save(state, old)
    with pytest.raises(AssetInvalidError, match=r"feature_scale.*train_digits_classifier\.py"):
        load_extractor("digits-cnn", cls, digits.info(), weights=old)


def test_digits_cnn_is_at_least_97_percent_accurate_on_the_test_split(registries, digits):
    ext = load_extractor("digits-cnn", registries.extractors.get("digits-cnn"), digits.info())
    x, y = digits.tensors("test")
    feats = ext.features(x)   # through torch-fidelity's input convention: uint8 3x8x8
    assert feats["penultimate"].shape == (len(x), 64) and feats["logits"].shape == (len(x), 10)
    accuracy = (feats["logits"].argmax(1) == y).float().mean().item()
    assert accuracy >= 0.97, accuracy


def test_training_script_reaches_97_percent(digits):
    # The shipped weights use 40 epochs (99.7%, ~20 s here); 20 epochs keep the test short.
    net, accuracy = _train_script().train_digits_classifier(epochs=20, seed=0)
    assert accuracy >= 0.97, accuracy
    x, y = digits.tensors("test")
    with torch.no_grad():
        pred = net(to_uint8_images(x)[:, :1].float() / 255.0)[1].argmax(1)
    assert (pred == y).float().mean().item() == pytest.approx(accuracy)
    # the script calibrates the feature scale on the train split to the documented target
    from genbench_plugins.extractors.digits_cnn import FEATURE_PAIR_TARGET

    with torch.no_grad():
        feats = net(to_uint8_images(digits.tensors("train")[0])[:, :1].float() / 255.0)[0].double()
    gram = feats @ feats.T / feats.shape[1]
    n = len(feats)
    assert ((gram.sum() - gram.diagonal().sum()) / (n * (n - 1))).item() == pytest.approx(
        FEATURE_PAIR_TARGET, rel=1e-4)


def test_stacked_digits_classify_each_channel(registries, digits):
    cls = registries.extractors.get("digits-cnn")
    x, y = digits.tensors("test")
    x, y = x[:60], y[:60]
    stacked = torch.cat([x[:20], x[20:40], x[40:60]], dim=1)            # (20, 3, 8, 8)
    info = DataInfo("stacked", "image", (3, 8, 8), num_classes=1000)
    stacked_feats = load_extractor("digits-cnn", cls, info).features(stacked)
    gray_feats = load_extractor("digits-cnn", cls, digits.info()).features(x)

    per_channel = [gray_feats["penultimate"][i * 20:(i + 1) * 20] for i in range(3)]
    assert torch.allclose(stacked_feats["penultimate"], torch.cat(per_channel, dim=1), atol=1e-5)
    probs = [gray_feats["logits"][i * 20:(i + 1) * 20].softmax(1) for i in range(3)]
    joint = torch.einsum("na,nb,nc->nabc", *probs).reshape(20, 1000)
    assert torch.allclose(stacked_feats["logits"].softmax(1), joint, atol=1e-5)
    triple = 100 * y[:20] + 10 * y[20:40] + y[40:60]
    assert (stacked_feats["logits"].argmax(1) == triple).float().mean() >= 0.9


def test_digits_cnn_declines_other_data(registries):
    cls = registries.extractors.get("digits-cnn")
    assert "8x8 digits" in cls.supports(DataInfo("c", "image", (3, 32, 32)))
    assert cls.supports(DataInfo("v", "vector", (2,))) is not None
    with pytest.raises(ValueError, match="uint8"):
        load_extractor("digits-cnn", cls, DataInfo("d", "image", (1, 8, 8))).module(torch.rand(2, 3, 8, 8))


def test_raw_features_are_the_data_itself(registries):
    cls = registries.extractors.get("raw")
    x = torch.randn(10, 2) * 100.0   # far outside [0, 1]: no uint8 conversion
    ext = load_extractor("raw", cls, DataInfo("pts", "vector", (2,)))
    assert ext.input_format == "float" and ext.layers["isc"] is None
    assert torch.equal(ext.features(x, batch_size=3)["raw"], x)
    img = torch.rand(4, 1, 8, 8)
    assert torch.equal(load_extractor("raw", cls, DataInfo("i", "image", (1, 8, 8))).features(img)["raw"],
                       img.flatten(1))


# -- the extractor contract ------------------------------------------------------------------

class _Pairs(FeatureExtractor):
    """Two layers of a flattened input: its sum and its mean."""

    input_format = "float"

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    def forward(self, x):
        out = {"sum": x.flatten(1).sum(1, keepdim=True), "mean": x.flatten(1).mean(1, keepdim=True)}
        return tuple(out[k] for k in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "sum", "mean"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"fid": "mean", "kid": "mean", "prc": "sum"}.get(metric)


def test_feature_extractor_checks_layers_and_forward_output():
    ext = _Pairs("pairs", ["mean", "sum"])
    x = torch.arange(6.0).reshape(2, 3)
    feats = ext.convert_features_tuple_to_dict(ext(x))
    assert list(feats) == ["mean", "sum"] and feats["sum"].flatten().tolist() == [3.0, 12.0]
    assert ext.get_name() == "pairs" and not ext.can_be_compiled()
    for bad in (["logits"], [], ["sum", "sum"], "sum"):
        with pytest.raises(ConfigError, match="pairs"):
            _Pairs("pairs", bad)
    with pytest.raises(ValueError, match="tuple of 2 tensors"):
        ext.convert_features_tuple_to_dict([feats["mean"], feats["sum"]])


def test_registration_accepts_both_bases_and_names_them_when_neither(registries):
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class TorchFidelityStyle(FeatureExtractorBase):
        def forward(self, x):
            return (x.flatten(1),)

        @staticmethod
        def get_provided_features_list():
            return ("f",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return "f"

    class NoLayers(FeatureExtractor):  # forgot the layer methods
        def forward(self, x):
            return (x,)

    class NoForward(TorchFidelityStyle):
        forward = torch.nn.Module.forward

    registries.extractors.register("tf-style", TorchFidelityStyle, plugin="test")
    registries.extractors.register("pairs", _Pairs, plugin="test")
    for cls, missing in ((NoLayers, "get_provided_features_list, "
                                    "get_default_feature_layer_for_metric"),
                         (NoForward, "forward")):
        with pytest.raises(RegistrationError, match=f"but it does not define {missing}$"):
            registries.extractors.register("incomplete", cls, plugin="test")
    assert "incomplete" not in registries.extractors
    with pytest.raises(RegistrationError) as err:
        registries.extractors.register("module", torch.nn.Linear, plugin="test")
    assert ("not a subclass of genbench.api.extractor.FeatureExtractor or "
            "torch_fidelity.feature_extractor_base.FeatureExtractorBase") in str(err.value)


def _tf_mixed_6_conv(net, x: torch.Tensor) -> torch.Tensor:
    """The ADM evaluator's sFID features computed step by step on torch-fidelity's network:
    TF's ``mixed_6`` is the 7th mixed block (``Mixed_6d``; ``mixed`` is ``Mixed_5b``), its
    ``conv`` the 1x1 branch with batch norm and ReLU; its first 7 channels, NHWC-flattened as
    ``spatial[..., :7].reshape(N, -1)`` reads TF's tensor."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    h = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(299, 299), align_corners=False)
    h = (h - 128) / 128
    blocks = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1",
              "Conv2d_4a_3x3", "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
              "Mixed_6b", "Mixed_6c"]
    for name in blocks:
        h = getattr(net, name)(h)
    conv = net.Mixed_6d.branch1x1
    h = torch.relu(conv.bn(conv.conv(h)))
    assert h.shape[1:] == (192, 17, 17)
    return h.permute(0, 2, 3, 1)[..., :7].reshape(len(h), -1)


def test_inception_is_torch_fidelity_network_with_its_layers(registries, tmp_path, no_network):
    """Random weights of torch-fidelity's InceptionV3, written by the test, loaded through
    the wrapper: same layers, same outputs as torch-fidelity's own module."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    cls = registries.extractors.get("inception-v3-compat")
    tf_cls = tf_inception.FeatureExtractorInceptionV3
    assert cls.weights_url == tf_inception.URL_INCEPTION_V3
    assert tuple(cls.get_provided_features_list()) == (*tf_cls.get_provided_features_list(),
                                                       "mixed_6/conv")
    for metric in ("fid", "isc", "kid", "prc"):
        assert cls.get_default_feature_layer_for_metric(metric) == \
            tf_cls.get_default_feature_layer_for_metric(metric)

    class RandomInit(tf_cls):  # torch-fidelity's network, its weight loading skipped
        def load_state_dict(self, *args, **kwargs):
            return None

    path = tmp_path / "random-inception.pth"
    torch.save({"unused": torch.zeros(1)}, path)
    torch.manual_seed(0)
    reference = RandomInit("inception-v3-compat", ["2048", "logits_unbiased"],
                           feature_extractor_weights_path=str(path)).eval()
    torch.save(reference.state_dict(), path)

    info = DataInfo("rgb", "image", (3, 16, 16))
    ext = load_extractor("inception-v3-compat", cls, info, weights=path)
    assert ext.weights_verified is False  # not the published file: recorded, not trusted
    assert ext.layers == {"fid": "2048", "isc": "logits_unbiased", "kid": "2048", "prc": "2048",
                          "spatial": "mixed_6/conv"}
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ours = ext.features(x)
    with torch.no_grad():
        theirs = reference.convert_features_tuple_to_dict(reference(to_uint8_images(x)))
        theirs["mixed_6/conv"] = _tf_mixed_6_conv(reference, to_uint8_images(x))
    assert set(ours) == {"2048", "logits_unbiased", "mixed_6/conv"}
    for layer in ours:
        torch.testing.assert_close(ours[layer], theirs[layer], rtol=1e-5, atol=1e-6)
    assert ours["2048"].shape == (3, 2048) and ours["logits_unbiased"].shape == (3, 1008)
    assert ours["mixed_6/conv"].shape == (3, 17 * 17 * 7)
    assert ours["mixed_6/conv"].std() > 0  # not a constant the test could not tell apart
    # the spatial layer alone, or with a layer before it: the network still runs to Mixed_6d
    for layers in (["mixed_6/conv"], ["64", "mixed_6/conv"]):
        alone = cls("inception-v3-compat", layers, feature_extractor_weights_path=str(path))
        with torch.no_grad():
            spatial = alone(to_uint8_images(x))[-1]
        torch.testing.assert_close(spatial, theirs["mixed_6/conv"], rtol=1e-5, atol=1e-6)
    # torch-fidelity's own keywords reach its network (which checks this one)
    with pytest.raises(Exception, match="Only 32 and 64 bit floats"):
        cls("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path),
            feature_extractor_internal_dtype="float16")


def test_sfid_is_the_frechet_distance_of_the_adm_spatial_features(registries, tmp_path, no_network):
    """sFID through genbench.evaluate (random Inception weights written by the test) equals the
    Frechet distance computed directly on features taken step by step from the network."""
    import genbench
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    from genbench import BenchmarkDataset, TensorSplit
    from genbench_plugins.models.reference import TrainingData

    class RandomInit(tf_inception.FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):
            return None

    path = tmp_path / "random-inception.pth"
    torch.save({"unused": torch.zeros(1)}, path)
    torch.manual_seed(0)
    net = RandomInit("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)).eval()
    torch.save(net.state_dict(), path)
    g = torch.Generator().manual_seed(2)
    train, test = torch.rand(12, 3, 16, 16, generator=g), torch.rand(12, 3, 16, 16, generator=g) ** 2

    class Rgb16(BenchmarkDataset):
        def info(self):
            return DataInfo("rgb16", "image", (3, 16, 16), fingerprint="rgb16-sfid")

        def split(self, name):
            return TensorSplit({"train": train, "test": test}[name])

    model = TrainingData(Rgb16().info())
    model.fit(TensorSplit(train), None)
    scored = genbench.evaluate(model, Rgb16(), metrics=["sfid", "fid"], num_samples=12,
                               feature_extractor="inception-v3-compat", feature_weights=str(path),
                               registries=registries, cache_dir=tmp_path / "cache")
    sfid = next(m for m in scored.metrics if m.metric == "sfid")
    assert sfid.status == "ok", sfid.message
    with torch.no_grad():
        gen = _tf_mixed_6_conv(net, to_uint8_images(scored.samples))
        ref = _tf_mixed_6_conv(net, to_uint8_images(test))
    expected = fid_statistics_to_metric(fid_features_to_statistics(gen.double()),
                                        fid_features_to_statistics(ref.double()), False)
    assert sfid.values["sfid"] == pytest.approx(expected["frechet_inception_distance"], rel=1e-4)
    fid = next(m for m in scored.metrics if m.metric == "fid").values["fid"]
    assert abs(sfid.values["sfid"] - fid) > 1e-3 * fid  # another layer, another number
