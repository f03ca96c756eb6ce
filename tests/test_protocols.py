"""Named evaluation protocols: registered through a hook, listed and shown, applied to a suite
or to `genbench eval` (extractor, metrics with their options, sample count), recorded in
every value and in the evaluation's identity, and never mixed in one leaderboard column."""

import csv
import io
import json

import numpy as np
import pytest

from genbench import Protocol, hookimpl
from genbench.api.errors import RegistrationError, SpecError, UnknownNameError
from genbench.plan.spec import SuiteSpec
from genbench.registry.manager import default_registries
from helpers import invoke_cli, registries_with, run_inline, tiny_spec


class SmallDigits(Protocol):
    """A third-party protocol: FID and KID (subsets of 50) on 96 samples of digits."""

    description = "FID and KID on 96 digits samples"
    source = "a test"
    extractor = "digits-cnn"
    resize = "none"
    num_samples = 96
    metrics = {"fid": {}, "kid": {"subsets": 20, "subset_size": 50}}


class NoExtractor(Protocol):
    metrics = {"fid": {}}


class Plugin:
    @hookimpl
    def register_protocols(self, register):
        register("small-digits", SmallDigits)


@pytest.fixture(scope="module")
def regs():
    return registries_with(Plugin())


def test_builtins_are_listed_and_shown_with_everything_they_fix():
    listed = invoke_cli("list", "protocols").output
    assert "torch-fidelity" in listed and "inception-v3-compat" in listed
    assert "genbench-digits" in listed and "digits-cnn" in listed
    shown = json.loads(invoke_cli("show", "protocol", "torch-fidelity", "--json").output)
    assert shown["extractor"] == "inception-v3-compat" and shown["num_samples"] is None
    assert shown["metrics"]["kid"] == {"max_reference": 10_000, "subsets": 100,
                                       "subset_size": 1000, "rng_seed": 2020}
    assert "299 x 299" in shown["resize"] and shown["source"]
    text = invoke_cli("show", "protocol", "genbench-digits").output
    assert "prdc(k=5, max_reference=10000)" in text and "num samples  1000" in text
    # every built-in protocol names a registered extractor and metrics with valid options
    r = default_registries()
    for entry in r.protocols:
        r.extractors.get(entry.obj.extractor)
        spec = SuiteSpec.from_dict({"datasets": ["digits"], "models": ["vae"],
                                    "protocol": entry.name}).with_protocol(r)
        spec.validate(r)


def test_a_protocol_without_an_extractor_is_refused_naming_the_plugin():
    class Bad:
        @hookimpl
        def register_protocols(self, register):
            register("bad", NoExtractor)

    regs = registries_with(Bad())
    assert "bad" not in regs.protocols
    broken = {name: str(b) for name, b in regs.broken.items()}
    assert any("names no extractor" in why for why in broken.values()), broken
    with pytest.raises(RegistrationError, match="names no extractor"):
        regs.protocols.register("bad", NoExtractor)


def test_a_spec_gets_the_protocols_choices_and_may_not_set_them(regs, tmp_path):
    spec = tiny_spec(metrics=[], protocol="small-digits")
    assert "metrics" in spec.given  # tiny_spec sets them: refused
    with pytest.raises(SpecError, match="fixes metrics, num_samples"):
        spec.with_protocol(regs)
    spec = SuiteSpec.from_dict({"datasets": ["digits"], "models": ["vae"],
                                "protocol": "small-digits"})
    applied = spec.with_protocol(regs)
    assert applied.feature_extractor == "digits-cnn" and applied.num_samples == 96
    assert [(m.name, m.label, m.params) for m in applied.metrics] == [
        ("fid", "fid", {}), ("kid", "kid", {"subsets": 20, "subset_size": 50})]
    assert applied.with_protocol(regs) is applied
    same = SuiteSpec.from_dict({"datasets": ["digits"], "models": ["vae"], "num_samples": 96,
                                "protocol": "small-digits"})
    assert same.with_protocol(regs).num_samples == 96  # the protocol's own count is allowed
    with pytest.raises(UnknownNameError, match="small-digits"):
        SuiteSpec.from_dict({"datasets": ["digits"], "models": ["vae"],
                             "protocol": "nope"}).with_protocol(regs)
    # changed after the protocol was filled in: refused, never recorded under its name
    import dataclasses

    for change in ({"num_samples": 50}, {"protocol": "torch-fidelity"},
                   {"metrics": applied.metrics[:1] + tiny_spec(metrics=["recon"]).metrics}):
        with pytest.raises(SpecError, match="does not follow protocol"):
            dataclasses.replace(applied, **change).with_protocol(regs)
    assert applied.select(regs, metrics=["kid"]).with_protocol(regs).metrics[0].name == "kid"
    for narrowed in ({"metrics": ["recon"]}, {"feature_extractor": "raw"}, {"num_samples": 5}):
        with pytest.raises(SpecError, match="does not follow protocol"):
            spec.select(regs, **narrowed)  # what --metrics / --extractor would ask
    # other weights than the extractor's published ones
    weights = tmp_path / "other.pt"
    weights.write_bytes(b"not the published file")
    published = dataclasses.replace(SuiteSpec.from_dict(
        {"datasets": ["digits"], "models": ["vae"], "protocol": "torch-fidelity",
         "feature_weights": str(weights)}))
    with pytest.raises(SpecError, match="not the published weights of inception-v3-compat"):
        published.with_protocol(regs)
    # without a protocol, the spec's dict (and hash) is what it was before protocols
    assert "protocol" not in tiny_spec().to_dict()


def test_a_suite_under_a_protocol_records_it_and_computes_what_the_same_metrics_do(regs, tmp_path):
    common = {"datasets": ["digits"], "models": ["vae"], "seeds": [0], "baselines": [],
              "budget": {"steps": 20, "batch_size": 64}}
    under = run_inline(SuiteSpec.from_dict({**common, "protocol": "small-digits"}),
                       tmp_path / "p", regs)
    plain = run_inline(SuiteSpec.from_dict({
        **common, "feature_extractor": "digits-cnn", "num_samples": 96,
        "metrics": ["fid", {"name": "kid", "label": "kid",
                            "params": {"subsets": 20, "subset_size": 50}}]}),
        tmp_path / "q", regs)
    (a,), (b,) = under.ran, plain.ran
    assert a.status == b.status == "ok"
    values = {(m.metric, k): v for m in a.metrics for k, v in m.values.items()}
    assert values == {(m.metric, k): v for m in b.metrics for k, v in m.values.items()}
    assert all(m.details["protocol"] == "small-digits" for m in a.metrics)
    assert all("protocol" not in m.details for m in b.metrics)
    assert a.fingerprint != b.fingerprint  # the protocol is part of the identity
    assert next(m for m in a.metrics if m.metric == "kid").details["kid_subset_size"] == 50


def _digits_file(path, n):
    x = default_registries().datasets.get("digits")().split("train").x[:n]
    np.save(path, (x.numpy() * 255).round().astype("uint8"))
    return path


def test_eval_under_a_protocol_heads_every_column_with_it_and_never_mixes_two(tmp_path):
    samples = _digits_file(tmp_path / "digits.npy", 1100)
    out = tmp_path / "out"
    result = invoke_cli("eval", str(samples), "--reference", "digits:test", "--protocol",
                        "genbench-digits", "--out", str(out), "--label", "p", "-q")
    assert result.exit_code == 0, result.output
    assert "FID [genbench-digits]" in result.output and "coverage [genbench-digits]" in result.output
    result = invoke_cli("eval", str(samples), "--reference", "digits:test", "--metrics", "fid",
                        "--extractor", "digits-cnn", "--out", str(out), "--label", "plain", "-q")
    assert result.exit_code == 0, result.output
    board = invoke_cli("leaderboard", "--out", str(out), "--format", "csv").output
    cells = list(csv.DictReader(io.StringIO(board)))
    fid = {c["model"]: c["column"] for c in cells if c["metric"] == "fid"}
    assert fid == {"p": "fid.fid [genbench-digits, n 1000]", "plain": "fid.fid [n 1100]"}, board
    for column in {c["column"] for c in cells}:  # one protocol (or none) per column
        assert len({"protocol=" in c["protocol"] and c["protocol"].split(",")[0]
                    for c in cells if c["column"] == column}) == 1, column


def test_eval_under_a_protocol_refuses_what_contradicts_it(tmp_path):
    small = _digits_file(tmp_path / "small.npy", 500)
    out = tmp_path / "out"
    cases = [
        ((str(small),), "scores 1,000 samples, but"),
        ((str(small), "--metrics", "fid"), "chooses the metrics"),
        ((str(small), "--extractor", "inception-v3-compat"), "reads 'digits-cnn' features"),
        ((str(small), "--num-samples", "10"), "leave --num-samples out"),
    ]
    for args, message in cases:
        result = invoke_cli("eval", *args, "--reference", "digits:test", "--protocol",
                            "genbench-digits", "--out", str(out))
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    result = invoke_cli("eval", str(small), "--reference", "digits:test", "--protocol", "nope",
                        "--out", str(out))
    assert result.exit_code == 2 and "valid protocols: genbench-digits" in result.output
    assert not out.exists()  # nothing created
