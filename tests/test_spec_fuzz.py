"""Property-based tests (hypothesis): whatever a spec file or `genbench run`'s options hold,
the outcome is a parsed spec or an exit-2 message, never a traceback.

Specs are generated as TOML text (serialised here, checked to parse back to what was
generated): well-formed ones, which must parse and keep every value; ones with keys replaced
by arbitrary TOML values (every TOML type: strings, integers beyond 64 bits, floats with
nan/inf, booleans, dates and times, arrays, tables); and broken documents. The command line
gets every option of `genbench run` with generated text; ``SuiteRunner.run`` is replaced by a
sentinel, so nothing trains.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import tomllib
from pathlib import Path
from unittest import mock

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from genbench.api.budget import Budget
from genbench.cli.commands import cli
from genbench.api.errors import USER_ERRORS, SpecError
from genbench.registry.manager import build_registries, create_plugin_manager
from genbench.execution.runner import SuiteRunner
from genbench.plan.spec import MAX_SEED, SuiteSpec
from helpers import tiny_spec_toml

# No example database: it would be written into the working tree (.hypothesis/); a failure
# prints its falsifying example instead.
# derandomize: the same examples on every run, so a failure reproduces and CI never flakes.
FUZZ = settings(max_examples=500, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- TOML text from Python values ------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def toml_str(s: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F
                                             else c) for c in s) + '"'


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(map(toml_value, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_str(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML form for {v!r}")


def toml_document(d: dict) -> str:
    return "".join(f"{toml_str(k)} = {toml_value(v)}\n" for k, v in d.items())


def canonical(obj) -> str:
    """Equal for equal TOML values, nan included."""
    return json.dumps(obj, sort_keys=True, default=lambda o: f"{type(o).__name__}:{o}")


# -- strategies ------------------------------------------------------------------------

text = st.text(max_size=12)
#: Table keys: the spec's own words (so nested tables look like entries) or any text.
keys = st.sampled_from(["name", "label", "params", "budget", "sampling", "steps", "epochs",
                        "batch_size", "max_seconds", "temperature"]) | text
scalars = st.one_of(
    st.booleans(), st.integers(-2**70, 2**70), st.integers(-3, 70), st.floats(), text,
    st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)), st.dates(), st.times())
toml_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12)

# Names and labels of well-formed entries: distinct, and no default label (name[k=v]) can
# equal a given label (those contain '#', param values below never do).
ident = st.text("abcdefghij0123456789-_", min_size=1, max_size=8)
#: Entry names: registered ones (so that the registry checks go deep) or made up.
REGISTERED = {"datasets": ["ring8", "digits", "swissroll"],
              "models": ["vae", "ae", "gan", "ddpm", "latent-diffusion", "train-data"],
              "metrics": ["recon", "speed", "modes", "fid", "prdc", "ndb", "fid-inf"]}
param_values = st.one_of(st.booleans(), st.integers(-5, 10**6), st.floats(-1e6, 1e6),
                         st.text("abcxyz ._", max_size=6))
plain_params = st.dictionaries(ident, param_values | st.lists(param_values, max_size=3),
                               max_size=3)
# A model-valued hyper-parameter given as a table (`autoencoder = { name = "ae", ... }`).
references = st.fixed_dictionaries({"name": ident}, optional={"params": plain_params})
param_names = st.sampled_from(["latent_dim", "beta", "lr", "k", "steps", "autoencoder",
                               "num_samples", "extractor"]) | ident
params = st.dictionaries(param_names,
                         param_values | st.lists(param_values, max_size=3) | references,
                         max_size=3)


@st.composite
def entries(draw, section: str):
    """A well-formed ``datasets``/``models``/``metrics`` value in one of its three forms."""
    section_budget = section == "models"
    names = draw(st.lists(st.sampled_from(REGISTERED[section]) | ident, min_size=1, max_size=3,
                          unique=True))
    form = draw(st.sampled_from(["names", "name", "tables", "array"]))
    if form == "names":
        return names
    if form == "name":
        return names[0]
    if form == "tables":
        return {n: draw(params) for n in names}
    items = []
    for i, n in enumerate(names):
        item = {"name": n}
        if draw(st.booleans()):
            item["label"] = f"{n}#{i}"
        if draw(st.booleans()):
            item["params"] = draw(params)
        if section_budget and draw(st.booleans()):
            item["budget"] = draw(budget_tables(entry=True))
        if section_budget and draw(st.booleans()):
            values = draw(st.lists(st.integers(0, 9), min_size=1, max_size=3, unique=True))
            item["sampling"] = ({"steps": values[0]} if len(values) == 1 and draw(st.booleans())
                                else [{"steps": v} for v in values])
        items.append(item)
    return items


@st.composite
def budget_tables(draw, entry: bool = False):
    b = {}
    length = draw(st.sampled_from(["steps", "epochs"] + (["neither"] if entry else [])))
    if length != "neither":
        b[length] = draw(st.integers(1, 10**6))
    for key, value in (("batch_size", st.integers(1, 4096)), ("checkpoint_every", st.integers(0, 100)),
                       ("max_seconds", st.floats(1e-3, 1e9) | st.integers(1, 10**6))):
        if draw(st.booleans()):
            b[key] = draw(value)
    return b


#: A value that parses, for each spec key.
WELL_FORMED = {
    # a name that can name the leaderboards folder (not empty, "." or "..")
    "name": st.text(max_size=20).filter(lambda s: s.strip() not in ("", ".", "..")),
    "datasets": entries("datasets"),
    "models": entries("models"),
    "metrics": entries("metrics"),
    "seeds": st.lists(st.integers(0, MAX_SEED), min_size=1, max_size=4, unique=True)
    | st.integers(0, MAX_SEED),
    "budget": budget_tables(),
    "num_samples": st.integers(1, 10**6),
    "eval_batch_size": st.integers(1, 10**4),
    "device": text, "data_root": text, "feature_extractor": text, "feature_weights": text,
    "primary_metric": text, "protocol": text,
    "download": st.booleans(),
    "baselines": st.lists(text, max_size=3),
    # where and how jobs run (SuiteSpec.RUN_KEYS)
    "executor": st.sampled_from(["local", "ray"]),
    "executor_options": st.just({}),
    "train": st.fixed_dictionaries({}, optional={"nproc": st.integers(1, 8)}),
    "job_timeout": st.floats(1e-3, 1e9) | st.integers(1, 10**6),
    "eval_shards": st.integers(1, 64),
}
ALL_KEYS = (*SuiteSpec.KEYS, *getattr(SuiteSpec, "RUN_KEYS", ()))

well_formed_specs = st.fixed_dictionaries(
    {k: WELL_FORMED[k] for k in ("datasets", "models")},
    optional={k: v for k, v in WELL_FORMED.items() if k not in ("datasets", "models")})


def _nodes(obj, path=()):
    """Every (container, key) pair in a nest of tables and arrays."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield obj, k
        yield from _nodes(v, path + (k,))


@st.composite
def perturbed_specs(draw):
    """A well-formed spec with values anywhere in it replaced by arbitrary TOML values or
    removed, and top-level keys added."""
    d = draw(well_formed_specs)
    for _ in range(draw(st.integers(1, 3))):
        nodes = list(_nodes(d))
        if not nodes or draw(st.integers(0, 3)) == 0:  # a top-level key, known or not
            d[draw(st.sampled_from([*ALL_KEYS, "steps", "model", ""]) | text)] = \
                draw(toml_values)
            continue
        container, key = draw(st.sampled_from(nodes))
        if draw(st.integers(0, 4)) == 0:
            del container[key]
        else:
            container[key] = draw(toml_values)
    return d


def broken_documents():
    """Text that is rarely TOML: arbitrary text, and a well-formed document cut or spliced."""
    cut = st.tuples(well_formed_specs.map(toml_document), st.integers(0, 400), text).map(
        lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:])
    return st.one_of(st.text(max_size=200), cut)


# -- the parser -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def regs():
    return build_registries(create_plugin_manager(load_entrypoints=False))


def parse_text(folder: Path, text_or_bytes) -> SuiteSpec | Exception:
    """The spec parsed from a file, or the user error it raised (SpecError, or ConfigError /
    UnknownNameError for executor settings): what the command line turns into exit 2."""
    path = folder / "spec.toml"
    if isinstance(text_or_bytes, bytes):
        path.write_bytes(text_or_bytes)
    else:
        path.write_text(text_or_bytes, encoding="utf-8")
    try:
        return SuiteSpec.from_toml(path)
    except USER_ERRORS as exc:
        assert str(exc).strip(), "an empty error message"
        return exc


def test_every_spec_key_has_a_well_formed_strategy():
    assert sorted(WELL_FORMED) == sorted(ALL_KEYS)


@FUZZ
@given(d=well_formed_specs)
def test_well_formed_specs_parse_and_keep_their_values(d, regs, tmp_path_factory):
    document = toml_document(d)
    assert canonical(tomllib.loads(document)) == canonical(d)  # the generator writes TOML
    spec = parse_text(tmp_path_factory.getbasetemp(), document)
    assert isinstance(spec, SuiteSpec), f"{spec}\n{document}"
    seeds = d.get("seeds", [0])
    assert spec.seeds == tuple(seeds if isinstance(seeds, list) else [seeds])
    assert spec.budget == Budget(**d.get("budget", {"steps": 600}))
    for key in ("name", "num_samples", "eval_batch_size", "device", "data_root", "download",
                "feature_extractor", "feature_weights", "primary_metric", "protocol"):
        if key in d:
            assert getattr(spec, key) == d[key], key
    if "baselines" in d:
        assert spec.baselines == tuple(d["baselines"])
    assert spec.executor == d.get("executor", "local")
    assert spec.nproc == d.get("train", {}).get("nproc", 1)
    assert spec.job_timeout == d.get("job_timeout")
    assert spec.eval_shards == d.get("eval_shards", 1)
    for section in ("datasets", "models", "metrics"):
        given = d.get(section, [])
        names = [given] if isinstance(given, str) else [
            e["name"] if isinstance(e, dict) else e for e in given] if isinstance(given, list) \
            else list(given)
        parsed = getattr(spec, section)
        assert list(dict.fromkeys(e.name for e in parsed)) == names
        assert len({e.label for e in parsed}) == len(parsed)  # every row its own label
    for given in d["models"] if isinstance(d["models"], list) else []:
        if isinstance(given, dict) and "budget" in given:  # merged over the suite's budget
            for entry in (e for e in spec.models if e.name == given["name"]):
                assert all(getattr(entry.budget, k) == v for k, v in given["budget"].items())
                assert (entry.budget.steps is None) != (entry.budget.epochs is None)
    spec.hash()  # every parsed spec has a fingerprint
    validate(spec, regs)


def validate(spec: SuiteSpec, regs) -> None:
    """The registry checks the command line runs next: a user error, or nothing."""
    try:
        spec.validate(regs)
        event("validate: ok")
    except USER_ERRORS as exc:
        assert str(exc).strip()
        event(f"validate: {type(exc).__name__}")


@FUZZ
@given(d=perturbed_specs())
def test_any_spec_values_parse_or_are_user_errors(d, regs, tmp_path_factory):
    document = toml_document(d)
    assert canonical(tomllib.loads(document)) == canonical(d)
    spec = parse_text(tmp_path_factory.getbasetemp(), document)
    event(type(spec).__name__)
    if isinstance(spec, SuiteSpec):
        spec.hash()
        validate(spec, regs)


@FUZZ
@given(document=broken_documents() | st.binary(max_size=200))
def test_broken_documents_are_user_errors(document, tmp_path_factory):
    outcome = parse_text(tmp_path_factory.getbasetemp(), document)
    event(type(outcome).__name__)


def test_the_fuzzers_reach_both_outcomes(tmp_path):
    """Guards the strategies: malformed input must not be so rare, nor so common, that one
    outcome is never exercised."""
    outcomes = {"parsed": 0, "error": 0}

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(d=perturbed_specs())
    def count(d):
        parsed = parse_text(tmp_path, toml_document(d))
        outcomes["parsed" if isinstance(parsed, SuiteSpec) else "error"] += 1

    count()
    assert outcomes["parsed"] >= 10 and outcomes["error"] >= 10, outcomes
    assert isinstance(parse_text(tmp_path, b'name = "\xff"\n'), SpecError)  # not UTF-8
    ref = parse_text(tmp_path, 'datasets = ["d"]\n[[models]]\nname = "m"\n'
                               'params = { ae = { name = 3 }, b = { name = "x", params = [1] } }\n')
    assert isinstance(ref, SuiteSpec) and ref.models[0].label == \
        "m[ae={'name': 3},b={'name': 'x', 'params': [1]}]"


# -- the command line --------------------------------------------------------------------

class ReachedRun(BaseException):
    """Raised instead of running: the command line parsed and validated everything."""


VALID_SPEC = tiny_spec_toml(name="fuzz", dataset="ring8", steps=5)

NAMES = ["vae", "ae", "gan", "digits", "ring8", "swissroll", "recon", "speed", "fid", "modes",
         "train-data", "nope", ""]
# Real argv never holds NUL (execve cannot pass it).
arg_text = st.text(st.characters(exclude_characters="\x00"), max_size=12)
name_lists = st.lists(st.sampled_from(NAMES) | arg_text, max_size=4).map(",".join) | arg_text
int_text = st.integers(-3, 2**40).map(str) | arg_text | st.sampled_from(["1e3", "0x10", " 2 ", "٣"])
#: Generated values per option of `genbench run`; an option not named gets arbitrary text.
OPTION_VALUES = {
    "models": name_lists, "datasets": name_lists, "metrics": name_lists,
    "seeds": st.lists(st.integers(-2, 2**32).map(str) | arg_text, max_size=4).map(",".join),
    "jobs": int_text, "threads": int_text,
    "device": st.sampled_from(["auto", "cpu", "cuda", "cuda:1", "mps", "cpu:0", "meta", "tpu"])
    | arg_text,
    "extractor": st.sampled_from(["raw", "digits-cnn", "inception-v3-compat", "nope"]) | arg_text,
}
SPEC_FILES = {
    "valid.toml": VALID_SPEC,
    "unknown-model.toml": VALID_SPEC.replace('"vae"', '"vea"'),
    "bad-value.toml": VALID_SPEC.replace("num_samples = 64", "num_samples = -1"),
    "broken.toml": "datasets = [ring8\n",
}


@st.composite
def run_arguments(draw, folder: Path):
    args = ["run"]
    spec = draw(st.sampled_from([*SPEC_FILES, "valid.toml", "valid.toml", "binary.toml",
                                 "missing.toml", "a-folder", None])
                | well_formed_specs | perturbed_specs())
    generated = None
    if isinstance(spec, dict):
        generated, spec = toml_document(spec), "generated.toml"
    if spec is not None:
        args.append(spec)
    # Outputs stay inside the folder: relative names without "..", or the spec file itself.
    out = draw(st.sampled_from(["out", "out/nested", "valid.toml", "a-folder"]) | ident)
    args += ["--out", out]
    run = cli.commands["run"]
    options = [p for p in run.params if isinstance(p, click.Option) and p.name != "out_dir"]
    for option in draw(st.lists(st.sampled_from(options), max_size=6, unique_by=lambda o: o.name)):
        flag = max(option.opts, key=len)
        if option.is_flag:
            args.append(flag)
        elif isinstance(option.type, click.Choice):
            args += [flag, draw(st.sampled_from(list(option.type.choices)) | arg_text)]
        elif option.name in ("tensorboard_dir", "data_root", "feature_weights"):
            args += [flag, draw(st.sampled_from(["tb", "a-folder", "valid.toml", "missing"]) | ident)]
        else:
            args += [flag, draw(OPTION_VALUES.get(option.name, arg_text))]
    return args, generated


@pytest.fixture(scope="module")
def cli_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-fuzz")
    for name, body in SPEC_FILES.items():
        (folder / name).write_text(body)
    (folder / "binary.toml").write_bytes(b"\x00\xff\xfe garbage")
    (folder / "a-folder").mkdir()
    return folder


@FUZZ
@given(data=st.data())
def test_run_options_parse_or_exit_2(data, cli_folder):
    args, generated = data.draw(run_arguments(cli_folder))
    if generated is not None:
        (cli_folder / "generated.toml").write_text(generated, encoding="utf-8")

    def reached(self, *a, **k):
        raise ReachedRun

    with contextlib.chdir(cli_folder), mock.patch.object(SuiteRunner, "run", reached):
        try:
            result = CliRunner().invoke(cli, args)  # standalone_mode, as `genbench` runs it
        except ReachedRun:
            event("parsed: run reached")
            return
    event(f"exit {result.exit_code}")
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (
        f"genbench {' '.join(map(repr, args))} -> exit {result.exit_code}\n{result.output}",
        result.exc_info)
    assert "Traceback" not in result.output and "Error" in result.output, result.output
