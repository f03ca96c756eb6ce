"""``genbench assets``: list and add extractor weights through the registry, offline."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from genbench import ExtractorMixin
from genbench.cli.assets import assets
from genbench.features.assets import (
    AssetChecksumError,
    add_asset,
    asset_status,
    list_assets,
    resolve_weights,
    sha256_file,
    weights_asset,
)
from genbench.api.errors import AssetMissingError


class _FileExtractor(ExtractorMixin, FeatureExtractorBase):
    """A throwaway extractor that needs one file (its sha256 set per test)."""

    weights_filename = "throwaway-weights.bin"
    weights_url = "https://example.invalid/throwaway-weights.bin"

    def forward(self, x):
        return (x.flatten(1).float(),)

    @staticmethod
    def get_provided_features_list():
        return ("flat",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": None}.get(metric, "flat")


@pytest.fixture
def with_throwaway(registries, tmp_path):
    payload = tmp_path / "download" / "weights.bin"
    payload.parent.mkdir()
    payload.write_bytes(b"throwaway weights v1")
    cls = type("Throwaway", (_FileExtractor,),
               {"weights_sha256": hashlib.sha256(payload.read_bytes()).hexdigest()})
    registries.extractors.register("throwaway", cls, plugin="test")
    return registries, cls, payload


def test_assets_list_reports_every_extractor(registries):
    runner = CliRunner()
    table = runner.invoke(assets, [], obj={"registries": registries})
    assert table.exit_code == 0, table.output
    lines = {line.split()[0]: line for line in table.output.splitlines() if line.strip()}
    assert " ok " in lines["digits-cnn"] and " missing " in lines["inception-v3-compat"]
    assert "none needed" in lines["raw"]
    assert "run `genbench assets add inception-v3-compat FILE`" in table.output

    as_json = runner.invoke(assets, ["list", "--json"], obj={"registries": registries})
    rows = {r["extractor"]: r for r in json.loads(as_json.output)}
    assert rows["digits-cnn"]["ok"] and rows["digits-cnn"]["sha256_actual"] == rows["digits-cnn"]["sha256_expected"]
    assert rows["inception-v3-compat"]["status"] == "missing" and not rows["inception-v3-compat"]["ok"]
    assert rows["inception-v3-compat"]["path"].endswith("hub/checkpoints/weights-inception-2015-12-05-6726825d.pth")
    assert [s.to_dict() for s in list_assets(registries)] == json.loads(as_json.output)


def test_assets_add_installs_a_verified_file(with_throwaway):
    registries, cls, payload = with_throwaway
    runner = CliRunner()
    assert next(s for s in list_assets(registries) if s.extractor == "throwaway").status == "missing"
    out = runner.invoke(assets, ["add", "throwaway", str(payload)], obj={"registries": registries})
    assert out.exit_code == 0, out.output
    dest = cls.default_weights_path()
    assert "installed" in out.output and str(dest) in out.output
    assert dest.read_bytes() == payload.read_bytes()
    assert next(s for s in list_assets(registries) if s.extractor == "throwaway").status == "ok"
    again = runner.invoke(assets, ["add", "throwaway", str(payload)], obj={"registries": registries})
    assert "already installed" in again.output


def test_assets_add_refuses_a_wrong_file(with_throwaway, tmp_path):
    registries, cls, _ = with_throwaway
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"something else")
    out = CliRunner().invoke(assets, ["add", "throwaway", str(wrong)], obj={"registries": registries})
    assert out.exit_code != 0
    assert "sha256" in out.output and cls.weights_sha256 in out.output and "not installed" in out.output
    assert not cls.default_weights_path().exists()
    raw = CliRunner().invoke(assets, ["add", "raw", str(wrong)], obj={"registries": registries})
    assert raw.exit_code != 0 and "loads no weights file" in raw.output
    unknown = CliRunner().invoke(assets, ["add", "nope", str(wrong)], obj={"registries": registries})
    assert unknown.exit_code != 0 and "digits-cnn" in unknown.output


def test_assets_add_of_the_shipped_digits_weights_is_a_no_op(registries, tmp_path):
    cls = registries.extractors.get("digits-cnn")
    copy = tmp_path / "digits_cnn.pt"
    copy.write_bytes(cls.default_weights_path().read_bytes())
    dest, sha, copied = add_asset("digits-cnn", copy, registries)
    assert dest == cls.default_weights_path() and sha == cls.weights_sha256 and not copied


def test_resolve_weights_checks_the_file_and_never_downloads(with_throwaway, tmp_path):
    registries, cls, payload = with_throwaway
    with pytest.raises(AssetMissingError) as missing:
        resolve_weights("throwaway", cls)
    assert not isinstance(missing.value, AssetChecksumError)
    assert str(cls.default_weights_path()) in str(missing.value)
    assert "genbench assets add throwaway FILE" in str(missing.value)

    dest = cls.default_weights_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(b"damaged")
    with pytest.raises(AssetChecksumError, match=f"expected {cls.weights_sha256}"):
        resolve_weights("throwaway", cls)
    assert asset_status("throwaway", cls).status == "checksum mismatch"

    add_asset("throwaway", payload, registries)
    assert resolve_weights("throwaway", cls) == (dest, cls.weights_sha256, True)
    other = tmp_path / "other.bin"   # an explicit file is used as given, its sha256 recorded
    other.write_bytes(b"another file")
    assert resolve_weights("throwaway", cls, other) == (other, sha256_file(other), False)
    assert weights_asset("raw", registries.extractors.get("raw")) is None
    assert resolve_weights("raw", registries.extractors.get("raw")) == (None, None, None)
