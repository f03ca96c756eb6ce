"""Plugins declare how results are shown: a metric its keys' presentation (kept under any
label), a model that it is a reference row or a default baseline; core names no built-in."""

import ast
from pathlib import Path

import pytest
import torch

from genbench import GenerativeModel, Headline, KeyPresentation
from genbench.plan.spec import SuiteSpec
from genbench.results.boards import build_leaderboards
from genbench.results.sample_figures import _declared_modes
from genbench.results.records import JobRecord, MetricRecord
from genbench.results.store import ResultStore

def job(model, seed, metrics, *, family="vae", provenance=None, model_name=None):
    return JobRecord(fingerprint=f"{model}/{seed}", config_fingerprint=model,
                     job_key=f"{model}/{seed}",
                     suite="s", dataset="digits", dataset_name="digits", model=model,
                     model_name=model_name or model, model_family=family, seed=seed, status="ok",
                     provenance=provenance or {}, metrics=metrics)


def fid_and_kid(fid, kid, label="kid-1k"):
    return [MetricRecord("fid", "ok", {"fid": fid}, higher_is_better={"fid": False}, primary="fid"),
            MetricRecord(label, "ok", {"mean": kid}, higher_is_better={"mean": False})]


def kid_class(registries) -> str:
    cls = registries.metrics.get("kid")
    return f"{cls.__module__}:{cls.__qualname__}"


def test_a_relabelled_metric_keeps_its_headline_place_and_header(tmp_path, registries):
    # The worker records each metric label's class in the job's provenance.
    store = ResultStore(tmp_path / "results.db")
    prov = {"code": {"metrics": {"kid-1k": {"class": kid_class(registries)}}}}
    for seed in (0, 1):
        store.write(job("vae", seed, fid_and_kid(3.0 + seed, 0.01), provenance=prov))
    board = build_leaderboards(store)[("s", "digits")]
    assert [c.name for c in board.headline_columns()] == ["fid.fid", "kid-1k.mean"]
    assert list(board.display(short=True).columns) == ["model", "FID ↓", "KID ↓"]
    assert "KID ↓" in board.to_markdown() and "kid-1k.mean" in board.to_markdown(full=True)


def test_a_label_no_registry_knows_is_in_the_full_table_only(tmp_path):
    store = ResultStore(tmp_path / "results.db")
    store.write(job("vae", 0, fid_and_kid(3.0, 0.01, label="unknown-metric")))
    board = build_leaderboards(store)[("s", "digits")]
    assert [c.name for c in board.headline_columns()] == ["fid.fid"]
    assert [c.name for c in board.select(full=True)] == ["fid.fid", "unknown-metric.mean"]


def test_two_labels_of_one_metric_both_headline_under_their_own_names(tmp_path, registries):
    store = ResultStore(tmp_path / "results.db")
    prov = {"code": {"metrics": {"kid-1k": {"class": kid_class(registries)}}}}
    store.write(job("vae", 0, fid_and_kid(3.0, 0.01, label="kid") + fid_and_kid(3.0, 0.02)[1:],
                    provenance=prov))
    board = build_leaderboards(store)[("s", "digits")]
    assert [c.name for c in board.headline_columns()] == ["fid.fid", "kid.mean", "kid-1k.mean"]
    # they would share the short header "KID": each keeps its column name
    assert list(board.display(short=True).columns) == ["model", "FID ↓", "kid.mean ↓",
                                                        "kid-1k.mean ↓"]


def test_a_relabelled_modes_metric_keeps_a_mixture_board(tmp_path, registries, no_network):
    from helpers import run_inline, tiny_spec

    spec = tiny_spec(datasets=["ring8"], models=["uniform-noise"], num_samples=400,
                     metrics=[{"name": "modes", "label": "ring-modes"}, "speed"])
    report = run_inline(spec, tmp_path / "o", registries)
    assert [r.status for r in report.ran] == ["ok"]
    store = ResultStore(tmp_path / "o" / "results.db")
    board = build_leaderboards(store, registries=registries)[("t", "ring8")]
    assert board.kind == "mixture"
    assert [c.name for c in board.headline_columns()] == [
        "ring-modes.modes", "ring-modes.hq", "ring-modes.rkl", "speed.samples_per_s"]
    assert list(board.display(short=True).columns)[1:4] == ["modes ↑", "% HQ ↑", "rev. KL ↓"]
    # the sample figure still draws the mixture's centres and each row's mode count
    (found,) = _declared_modes(store.metric_values(), board).values()
    assert len(found["centres"]) == 8 and found["count"] is not None


def test_reference_rows_come_from_the_model_class_not_its_family(tmp_path):
    store = ResultStore(tmp_path / "results.db")
    store.write(job("floor", 0, fid_and_kid(0.1, 0.0), family="anything", model_name="train-data"))
    store.write(job("vae", 0, fid_and_kid(3.0, 0.01), family="reference"))
    board = build_leaderboards(store)[("s", "digits")]
    rows = board.rows.set_index("model")
    assert bool(rows.loc["floor", "reference"]) and not rows.loc["vae", "reference"]
    assert board.models == ["floor", "vae"]  # the reference row on top, unranked
    assert board.value("vae", "fid.fid", "rank") == 1.0


def test_default_baselines_are_the_models_that_declare_it(registries):
    class Floor(GenerativeModel):
        reference = True
        default_baseline = True

        def __init__(self, data_info):
            super().__init__()

        def sample(self, n, generator=None):  # registered only; never sampled here
            return torch.zeros(n, 1)

    spec = SuiteSpec.from_dict({"name": "b", "datasets": ["digits"], "models": ["vae"],
                                "metrics": ["recon"]})
    assert [e.name for e in spec.baseline_entries(registries)] == ["train-data"]
    registries.models.register("my-floor", Floor)
    assert [e.name for e in spec.baseline_entries(registries)] == ["my-floor", "train-data"]
    named = SuiteSpec.from_dict({"name": "b", "datasets": ["digits"], "models": ["vae"],
                                 "metrics": ["recon"], "baselines": ["uniform-noise"]})
    assert [e.name for e in named.baseline_entries(registries)] == ["uniform-noise"]


def test_presentation_declarations_are_checked():
    with pytest.raises(ValueError, match="role must be one of"):
        KeyPresentation(role="x-axis")
    shown = KeyPresentation(headlines=(Headline(10, board="mixture"), Headline(50, 3)))
    assert shown.headline("mixture").order == 10 and shown.headline("image").order == 50


# -- core names no built-in plugin --------------------------------------------------------

GENBENCH = Path(__file__).resolve().parent.parent / "genbench"

#: Identifiers that are English words before they are plugin names.
WORDS = {"modes", "speed", "digits"}
#: String literals naming a built-in in core, by file, and why each is not a special case.
ALLOWED = {
    ("api/model.py", "elbo"): "the optional model capability of the contract",
    ("cli/catalog.py", "modes"): "the DataInfo.modes column of `genbench list datasets`",
    ("results/figures.py", "modes"): "the legend entry of DataInfo.modes in a sample grid",
    **{("features/job_features.py", name): "torch-fidelity's name for the feature layer a "
       "metric reads" for name in ("fid", "isc", "kid", "prc")},
    ("evaluation/context.py", "fid"): "torch-fidelity's name for the pooled-feature layer",
    ("evaluation/reference_build.py", "fid"): "torch-fidelity's name for the pooled-feature "
    "layer whose moments a reference file holds",
}


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}


def _identifier(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, (ast.arg, ast.keyword)):
        return node.arg
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    return None


def builtin_names_in_core(names: set[str], root: Path = GENBENCH) -> list[str]:
    """``file:line: name`` wherever code under ``root`` names one of ``names``: a string
    literal (docstrings aside) that is the name or starts with ``name.`` (a metric column),
    or an identifier spelling it with ``_`` for ``-``."""
    identifiers = {n.replace("-", "_"): n for n in names if n.replace("-", "_") not in WORDS}
    found = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in docs:
                    continue
                hits = [n for n in names if node.value == n or node.value.startswith(n + ".")]
                hits = [n for n in hits if (where, n) not in ALLOWED]
            else:
                hits = [identifiers[i] for i in [_identifier(node)] if i in identifiers]
            found += [f"{root.name}/{where}:{node.lineno}: {n}" for n in sorted(hits)]
    return found


def test_core_code_names_no_builtin_model_dataset_or_metric(registries):
    names = {e.name for kind in ("models", "datasets", "metrics") for e in registries.by_kind(kind)}
    assert {"train-data", "fid", "modes", "speed", "ring8"} <= names
    assert builtin_names_in_core(names) == []


def test_the_scan_finds_what_the_old_core_named(tmp_path):
    # a table of metric columns, a default baseline, an identifier; docstrings may name them
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "tables.py").write_text(
        '"""Sorted by fid."""\nHEADLINE = ["fid.fid", "train-data", "modes"]\nfid_inf = 1\n'
        "speed = 2\n", encoding="utf-8")
    found = builtin_names_in_core({"fid", "train-data", "fid-inf", "modes", "speed"},
                                  tmp_path / "core")
    assert sorted(found) == ["core/tables.py:2: fid", "core/tables.py:2: modes",
                             "core/tables.py:2: train-data", "core/tables.py:3: fid-inf"]
