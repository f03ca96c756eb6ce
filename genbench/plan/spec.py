"""Suite specs: which datasets, models, metrics and seeds to run, read from TOML.

A spec is validated in two stages, both before anything trains: its structure when it is
read (:meth:`SuiteSpec.from_dict`), and its names and hyper-parameters against the
registries (:meth:`SuiteSpec.validate`).

Entries (datasets, models, metrics) take three forms::

    models = ["vae", "ae"]                      # names, default hyper-parameters
    [models.vae]                                # a table per name
    latent_dim = 16
    [[models]]                                  # an array of tables: repeat a model
    name = "beta-vae"
    label = "beta-vae-4"                        # optional; defaults to name[k=v,...]
    params = { beta = 4.0 }
    budget = { steps = 2000 }                   # optional, models only
    sampling = [{ steps = 10 }, { steps = 50 }] # optional, models only: one row per setting

A model entry's ``sampling`` (a table, or a list of tables) gives the keyword-only
arguments of the model's ``sample``; every setting is its own leaderboard row, labelled
``name[params][sampling]`` unless a label is given, and all of them share one training.
A hyper-parameter whose default is a :class:`genbench.ModelRef` takes a model name or a
table ``{ name = "ae", params = { ... }, budget = { ... } }``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from genbench.api.budget import Budget
from genbench.registry.parameters import validate_config, validate_run_sampling
from genbench.api.errors import ConfigError, SpecError
from genbench.api.paths import sha256_file
from genbench.registry.identity import canonical_hash
from genbench.plan.labels import bracket, default_label
from genbench.plan.references import ModelConfig, resolve_model

MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class SpecEntry:
    """One entry of a suite spec's datasets, models or metrics: a registered name, its
    parameters and a display label (not a registry's :class:`~genbench.registry.Entry`)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    budget: Budget | None = None
    #: The entry's own budget keys, merged over the suite's budget (models only).
    budget_overrides: dict[str, Any] | None = None
    #: Sampling settings of this row (models only): keyword arguments of ``sample``.
    sampling: dict[str, Any] = field(default_factory=dict)
    #: A reference statistics file (``genbench reference build``) whose features stand for
    #: the dataset's test split in every feature metric (datasets only).
    reference: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "label": self.label, "params": self.params}
        if self.budget_overrides is not None:
            d["budget"] = self.budget_overrides
        if self.sampling:
            d["sampling"] = self.sampling
        if self.reference is not None:
            d["reference"] = self.reference
        return d


def _sampling_list(value: Any, where: str) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(s, dict) for s in items):
        raise SpecError(f"{where}.sampling must be a table such as {{ steps = 50 }} or a "
                        f"non-empty list of such tables, got {value!r}")
    return [dict(s) for s in items]


def _budget(value: Any, where: str) -> Budget:
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be a table such as {{ steps = 600, batch_size = 64 }}")
    valid = set(Budget.__dataclass_fields__)
    unknown = sorted(set(value) - valid)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(valid))}")
    try:
        return Budget(**value)
    except ConfigError as exc:
        raise SpecError(f"{where}: {exc}") from None


def _entries(value: Any, section: str, allow_budget: bool) -> list[SpecEntry]:
    if isinstance(value, str):
        value = [value]
    raw: list[tuple[str, dict, str | None, Any, list[dict[str, Any]], Any]] = []
    if isinstance(value, dict):
        for name, params in value.items():
            if not isinstance(params, dict):
                raise SpecError(f"[{section}.{name}] must be a table of hyper-parameters, got {params!r}")
            raw.append((name, dict(params), None, None, [{}], None))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                raw.append((item, {}, None, None, [{}], None))
            elif isinstance(item, dict):
                keys = ({"name", "label", "params"} | ({"budget", "sampling"} if allow_budget else set())
                        | ({"reference"} if section == "datasets" else set()))
                unknown = sorted(set(item) - keys)
                if unknown or "name" not in item:
                    raise SpecError(
                        f"{section}[{i}] must have a 'name' and may have {', '.join(sorted(keys - {'name'}))}"
                        + (f"; unknown key(s): {', '.join(unknown)}" if unknown else ""))
                params = item.get("params", {})
                if not isinstance(params, dict):
                    raise SpecError(f"{section}[{i}].params must be a table, got {params!r}")
                sampling = (_sampling_list(item["sampling"], f"{section}[{i}]")
                            if "sampling" in item else [{}])
                reference = item.get("reference")
                if reference is not None and (not isinstance(reference, str) or not reference):
                    raise SpecError(f"{section}[{i}].reference must be the path of a reference "
                                    f"statistics file, got {reference!r}")
                raw.append((item["name"], dict(params), item.get("label"), item.get("budget"),
                            sampling, reference))
            else:
                raise SpecError(f"{section}[{i}] must be a name or a table, got {item!r}")
    else:
        raise SpecError(f"'{section}' must be a list of names or tables, got {value!r}")
    out, seen = [], {}
    for name, params, given_label, budget, settings, reference in raw:
        if not isinstance(name, str) or not name:
            raise SpecError(f"{section}: every entry needs a non-empty string name, got {name!r}")
        if given_label is not None and (not isinstance(given_label, str) or not given_label.strip()
                                        or len(given_label) > 100 or "/" in given_label):
            raise SpecError(f"{section} {name!r}: label must be a string of 1 to 100 characters "
                            f"without '/', got {given_label!r}")
        if budget is not None and not isinstance(budget, dict):
            raise SpecError(f"{section} {given_label or name!r} budget must be a table such as "
                            "{ steps = 2000 }")
        for sampling in settings:
            if given_label is None:
                label = default_label(name, params, sampling)
            else:  # several settings under one label: each row names its setting
                label = given_label + (bracket(sampling) if len(settings) > 1 else "")
            if label in seen:
                raise SpecError(f"{section}: two entries are labelled {label!r}; give each a distinct 'label'")
            seen[label] = True
            out.append(SpecEntry(name, params, label, None,
                                 dict(budget) if budget is not None else None, sampling, reference))
    return out


#: The longest file name most file systems take, in bytes.
MAX_FILE_NAME_BYTES = 255
#: The longest suffix a leaderboard file adds to a dataset's label
#: (``<label>-quality-speed.png``, see :func:`genbench.results.plots.save_plots`).
LONGEST_BOARD_SUFFIX = "-quality-speed.png"


def check_suite_name(name: str, source: str = "<dict>") -> None:
    """Raise :class:`SpecError` when ``name`` cannot name the suite's folder of leaderboards
    (``leaderboards/<name>``): empty, or ``.`` or ``..``, which are other folders, or longer
    than :data:`MAX_FILE_NAME_BYTES` bytes in UTF-8."""
    if not name.strip() or name.strip() in (".", ".."):
        raise SpecError(f"{source}: 'name' {name!r} cannot name the suite's leaderboards "
                        "folder; give the suite a name with a letter or digit, such as "
                        "\"my-suite\"")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_NAME_BYTES:
        raise SpecError(f"{source}: 'name' {name[:40]!r}... is {size} bytes in UTF-8, too long "
                        f"for the suite's leaderboards folder; at most {MAX_FILE_NAME_BYTES}")


def check_dataset_label(label: str, source: str = "<dict>") -> None:
    """Raise :class:`SpecError` when the leaderboard files named after dataset ``label``
    (``<label>-quality-speed.png`` the longest) would exceed :data:`MAX_FILE_NAME_BYTES`."""
    limit = MAX_FILE_NAME_BYTES - len(LONGEST_BOARD_SUFFIX)
    size = len(label.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise SpecError(f"{source}: dataset label {label[:40]!r}... is {size} bytes in UTF-8, "
                        f"too long for its leaderboard files (<label>{LONGEST_BOARD_SUFFIX}); "
                        f"at most {limit}: give the dataset a shorter 'label'")


def _run_settings(d: dict[str, Any]) -> dict[str, Any]:
    """``executor``, ``[executor_options]``, ``[train]`` and ``job_timeout`` of a spec
    table, checked."""
    out: dict[str, Any] = {}
    if "job_timeout" in d:
        check_job_timeout(d["job_timeout"])
        out["job_timeout"] = float(d["job_timeout"])
    if "executor" in d:
        if not isinstance(d["executor"], str):
            raise SpecError(f"'executor' must be an executor name such as \"ray\", "
                            f"got {d['executor']!r}")
        out["executor"] = d["executor"]
    if "executor_options" in d:
        if not isinstance(d["executor_options"], dict):
            raise SpecError("'executor_options' must be a table such as { address = \"auto\" }, "
                            f"got {d['executor_options']!r}")
        out["executor_options"] = dict(d["executor_options"])
    if "train" in d:
        train = d["train"]
        if not isinstance(train, dict) or set(train) - {"nproc"}:
            raise SpecError(f"'train' must be a table with the key nproc, such as "
                            f"{{ nproc = 2 }}, got {train!r}")
        if "nproc" in train:
            out["nproc"] = train["nproc"]
    _check_nproc(out.get("nproc", 1))
    return out


def check_job_timeout(seconds: Any) -> None:
    """Raise :class:`SpecError` unless ``seconds`` is a positive, finite number."""
    if (not isinstance(seconds, (int, float)) or isinstance(seconds, bool)
            or not 0 < seconds < float("inf")):
        raise SpecError(f"'job_timeout' (seconds a job may run before it is stopped and "
                        f"recorded as failed) must be a positive number, got {seconds!r}")


def _check_nproc(nproc: Any) -> None:
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise SpecError(f"train.nproc (processes that train each model data-parallel) must be "
                        f"an integer >= 1, got {nproc!r}")


def check_run_settings(registries, executor: str, options: dict[str, Any], nproc: Any) -> None:
    """Raise when ``executor`` is not in ``registries.executors``, its options are not its
    own or invalid (without importing the executor's packages), or ``nproc`` is not a
    positive integer."""
    registries.executors.get(executor).make_options(executor, options)
    _check_nproc(nproc)


def merged_budget(suite_budget: Budget, overrides: dict[str, Any] | None, where: str) -> Budget:
    """The suite's budget with an entry's own keys on top (``steps``/``epochs`` replace
    each other)."""
    if overrides is None:
        return suite_budget
    merged = suite_budget.to_dict()
    if {"steps", "epochs"} & set(overrides):
        merged.pop("steps", None)
        merged.pop("epochs", None)
    merged.update(overrides)
    return _budget(merged, where)


def _reference_budgets(config: ModelConfig, where: str) -> list[tuple[str, dict[str, Any]]]:
    """``(where, budget overrides)`` of every referenced model below ``config`` (at any depth)
    that has a budget of its own."""
    found = []
    for key, ref in config.refs:
        ref_where = f"{where} -> {key}={ref.name}"
        if ref.budget_overrides is not None:
            found.append((f"{ref_where} budget", ref.budget_overrides))
        found += _reference_budgets(ref, ref_where)
    return found


def _with_budget(entry: SpecEntry, suite_budget: Budget) -> SpecEntry:
    """The entry with its budget: the suite's, with the entry's own keys on top."""
    if entry.budget_overrides is None:
        return entry
    return replace(entry, budget=merged_budget(suite_budget, entry.budget_overrides,
                                               f"models {entry.label!r} budget"))


#: Marks a spec whose protocol has been filled in (:meth:`SuiteSpec.with_protocol`).
_APPLIED = "<protocol applied>"


@dataclass(frozen=True)
class SuiteSpec:
    """A parsed suite spec; see the module docstring for the TOML form."""

    datasets: tuple[SpecEntry, ...]
    models: tuple[SpecEntry, ...]
    metrics: tuple[SpecEntry, ...]
    name: str = "suite"
    seeds: tuple[int, ...] = (0,)
    budget: Budget = field(default_factory=lambda: Budget(steps=600))
    num_samples: int = 1000
    eval_batch_size: int = 256
    device: str = "auto"
    data_root: str | None = None
    download: bool = False
    feature_extractor: str | None = None
    feature_weights: str | None = None
    baselines: tuple[str, ...] | None = None
    primary_metric: str | None = None
    source: str = "<dict>"
    #: Set by :meth:`select` when it narrows the models or datasets but keeps the metrics
    #: chosen for the whole suite: a metric that then applies to no (model, dataset) pair
    #: is skipped with a note instead of failing the run.
    narrowed: bool = False
    #: Where the jobs run: a registered executor ("local", "ray") and its options.
    executor: str = "local"
    executor_options: dict[str, Any] = field(default_factory=dict)
    #: Processes that train each model data-parallel (``[train] nproc``).
    nproc: int = 1
    #: Seconds a job (a training or a row's evaluation) may run before its worker is
    #: stopped and the job recorded as failed; ``None``: no limit.
    job_timeout: float | None = None
    #: Jobs each row's samples are drawn (and embedded) in, merged by the row: one
    #: evaluation spread over workers, with the numbers of one job (per-sample noise).
    eval_shards: int = 1
    #: A registered evaluation protocol (:class:`genbench.Protocol`): it chooses the
    #: extractor, the metrics and their options and the sample count
    #: (:meth:`with_protocol` fills them in).
    protocol: str | None = None
    #: The keys the spec itself set (a protocol refuses those it fixes).
    given: frozenset = field(default=frozenset(), compare=False)

    KEYS = ("name", "datasets", "models", "metrics", "seeds", "budget", "num_samples",
            "eval_batch_size", "device", "data_root", "download", "feature_extractor",
            "feature_weights", "baselines", "primary_metric", "protocol")
    #: Keys that say where and on how many processes jobs run, not what they compute: they
    #: are not part of :meth:`to_dict` (nor of the spec's hash).
    RUN_KEYS = ("executor", "executor_options", "train", "job_timeout", "eval_shards")

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> "SuiteSpec":
        if not isinstance(d, dict):
            raise SpecError(f"{source}: a spec must be a table")
        unknown = sorted(set(d) - set(cls.KEYS) - set(cls.RUN_KEYS))
        if unknown:
            raise SpecError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
                            f"valid keys: {', '.join(cls.KEYS + cls.RUN_KEYS)}")
        for required in ("datasets", "models"):
            if required not in d:
                raise SpecError(f"{source}: missing required key '{required}'")
        kw: dict[str, Any] = {"source": source, "given": frozenset(d)}
        try:
            kw["datasets"] = tuple(_entries(d["datasets"], "datasets", False))
            kw["models"] = tuple(_entries(d["models"], "models", True))
            kw["metrics"] = tuple(_entries(d.get("metrics", []), "metrics", False))
            if not kw["datasets"] or not kw["models"]:
                raise SpecError("'datasets' and 'models' must each name at least one entry")
            if "seeds" in d:
                seeds = d["seeds"]
                if isinstance(seeds, int) and not isinstance(seeds, bool):
                    seeds = [seeds]
                if (not isinstance(seeds, list) or not seeds
                        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED
                                   for s in seeds)):
                    raise SpecError("'seeds' must be a non-empty list of integers from 0 to "
                                    f"{MAX_SEED}, got {d['seeds']!r}")
                if len(set(seeds)) != len(seeds):
                    raise SpecError(f"'seeds' has duplicates: {seeds}")
                kw["seeds"] = tuple(seeds)
            if "budget" in d:
                kw["budget"] = _budget(d["budget"], "budget")
            for key, typ in (("name", str), ("device", str), ("data_root", str),
                             ("feature_extractor", str), ("feature_weights", str),
                             ("primary_metric", str), ("protocol", str)):
                if key in d:
                    if not isinstance(d[key], typ):
                        raise SpecError(f"'{key}' must be a {typ.__name__}, got {d[key]!r}")
                    kw[key] = d[key]
            check_suite_name(kw.get("name", "suite"), source)
            for entry in kw["datasets"]:
                check_dataset_label(entry.label, source)
            for key in ("num_samples", "eval_batch_size", "eval_shards"):
                if key in d:
                    v = d[key]
                    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                        raise SpecError(f"'{key}' must be a positive integer, got {v!r}")
                    kw[key] = v
            if "download" in d:
                if not isinstance(d["download"], bool):
                    raise SpecError(f"'download' must be true or false, got {d['download']!r}")
                kw["download"] = d["download"]
            if "baselines" in d:
                b = d["baselines"]
                if not isinstance(b, list) or not all(isinstance(x, str) for x in b):
                    raise SpecError(f"'baselines' must be a list of model names, got {b!r}")
                kw["baselines"] = tuple(b)
            budget = kw.get("budget", Budget(steps=600))
            kw["models"] = tuple(_with_budget(e, budget) for e in kw["models"])
            kw.update(_run_settings(d))
        except SpecError as exc:
            msg = str(exc)
            raise SpecError(msg if msg.startswith(source) else f"{source}: {msg}") from None
        return cls(**kw)

    @classmethod
    def from_toml(cls, path: str | Path) -> "SuiteSpec":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")  # TOML is UTF-8 whatever the locale
        except OSError as exc:
            raise SpecError(f"cannot read spec {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise SpecError(f"{path}: not a TOML file: byte {exc.start} is not UTF-8 text") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def default(cls) -> "SuiteSpec":
        """The suite embedded in the package (genbench/suites/default.toml)."""
        text = resources.files("genbench.suites").joinpath("default.toml").read_text()
        return cls.from_dict(tomllib.loads(text), source="<default suite>")

    # -- registry checks ----------------------------------------------------------------
    def with_protocol(self, registries) -> "SuiteSpec":
        """The spec with its protocol's extractor, metrics (with their options) and sample
        count filled in; itself when it names no protocol, or when they are filled in and it
        still follows the protocol. A :class:`~genbench.api.errors.SpecError` when it sets
        what the protocol fixes, no longer follows it (changed after it was filled in), or
        passes other weights than the extractor's published ones;
        :class:`~genbench.api.errors.UnknownNameError` (listing the protocols) for an
        unregistered name."""
        if self.protocol is None:
            return self
        cls = registries.protocols.get(self.protocol)
        if _APPLIED in self.given:
            self._check_follows(cls, registries)
            return self
        fixed = [k for k in ("metrics", "feature_extractor") if k in self.given]
        if (cls.num_samples is not None and "num_samples" in self.given
                and self.num_samples != cls.num_samples):
            fixed.append(f"num_samples (= {cls.num_samples:,})")
        if fixed:
            raise SpecError(f"{self.source}: protocol {self.protocol!r} fixes "
                            f"{', '.join(fixed)}; remove {'it' if len(fixed) == 1 else 'them'} "
                            f"from the spec (`genbench show protocol {self.protocol}` says "
                            "what it sets)")
        changes: dict[str, Any] = {
            "feature_extractor": cls.extractor,
            "metrics": tuple(_entries(cls.metric_entries(), "metrics", False)),
            "given": self.given | {_APPLIED}}
        if cls.num_samples is not None:
            changes["num_samples"] = cls.num_samples
        applied = replace(self, **changes)
        applied._check_follows(cls, registries)
        return applied

    def _check_follows(self, cls: type, registries) -> None:
        """Raise unless this spec computes what protocol ``cls`` fixes: its extractor with its
        published weights (when it declares their sha256), only its metrics with its
        options, and its sample count."""
        wanted = {name: dict(params) for name, params in cls.metrics.items()}
        problems = []
        if self.feature_extractor != cls.extractor:
            problems.append(f"the extractor is {self.feature_extractor!r}, not {cls.extractor!r}")
        for m in self.metrics:
            if wanted.get(m.name) != m.params:
                problems.append(f"metric {m.label!r} ({m.name} {m.params}) is not one of its "
                                f"metrics with its options")
        if cls.num_samples is not None and self.num_samples != cls.num_samples:
            problems.append(f"num_samples is {self.num_samples:,}, not {cls.num_samples:,}")
        published = getattr(registries.extractors.get(cls.extractor), "weights_sha256", None)
        path = None if self.feature_weights is None else Path(self.feature_weights).expanduser()
        if published and path is not None and path.is_file() and sha256_file(path) != published:
            problems.append(f"feature_weights {self.feature_weights} are not the published "
                            f"weights of {cls.extractor} (sha256 {published[:16]}...)")
        if problems:
            raise SpecError(f"{self.source}: this run does not follow protocol "
                            f"{self.protocol!r}: {'; '.join(problems)}")

    def validate(self, registries) -> None:
        """Check every name and hyper-parameter against the registries (raises on the first)."""
        check_run_settings(registries, self.executor, self.executor_options, self.nproc)
        if self.job_timeout is not None:  # a command-line or library override
            check_job_timeout(self.job_timeout)
        for budget, where in [(self.budget, "the suite's budget"),
                              *((e.budget, f"model {e.label!r}") for e in self.models if e.budget)]:
            self._check_batch_size(budget, where)
        for e in self.datasets:
            if e.reference is not None and not Path(e.reference).expanduser().is_file():
                raise SpecError(f"{self.source}: dataset {e.label!r}: reference file "
                                f"{e.reference} does not exist; write one with `genbench "
                                f"reference build {e.name} -o {e.reference}`")
        for section, reg in (("datasets", registries.datasets), ("metrics", registries.metrics)):
            for e in getattr(self, section):
                cls = reg.get(e.name)
                params = validate_config(cls, e.params, f"{reg.kind} {e.label!r}")
                if section == "metrics":
                    self.build_metric(cls, e.label, params)  # value checks happen in __init__
        for e in self.models:
            # a referenced model trains with its own budget, before the model that uses it
            for where, overrides in _reference_budgets(self.model_config(registries, e),
                                                       f"model {e.label!r}"):
                self._check_batch_size(merged_budget(self.budget, overrides, where), where)
            validate_run_sampling(registries, registries.models.get(e.name), e.sampling,
                                  f"model {e.label!r}")
        for name in self.baselines or ():
            registries.models.get(name)
        if self.primary_metric is not None:
            metric = self.primary_metric.split(".")[0]
            labels = [m.label for m in self.metrics]
            if metric not in labels or "." not in self.primary_metric:
                raise SpecError(f"{self.source}: primary_metric {self.primary_metric!r} must be "
                                f"'<metric>.<key>' with <metric> one of the suite's metrics: "
                                f"{', '.join(labels) or '(none)'}")
            self._check_primary_key(registries, metric)
        if self.feature_extractor is not None:
            registries.extractors.get(self.feature_extractor)
        elif self.feature_weights is not None:
            raise SpecError(f"{self.source}: feature_weights is set but feature_extractor is not; "
                            "name the extractor the weights are for (--extractor NAME)")

    def _check_primary_key(self, registries, label: str) -> None:
        """The key of ``primary_metric`` must be one its metric declares (``higher_is_better``,
        ``presentation``, ``nonfinite_ok``, ``primary``); a metric that declares none may
        give any."""
        key = self.primary_metric.split(".", 1)[1]
        cls = registries.metrics.get(next(m.name for m in self.metrics if m.label == label))
        declared = (set(cls.higher_is_better) | set(cls.presentation) | set(cls.nonfinite_ok)
                    | ({cls.primary} if cls.primary else set()))
        if declared and key not in declared:
            raise SpecError(f"{self.source}: primary_metric {self.primary_metric!r}: metric "
                            f"{label!r} declares no key {key!r}; its keys: "
                            f"{', '.join(f'{label}.{k}' for k in sorted(declared))}")

    def _check_batch_size(self, budget: Budget, where: str) -> None:
        if budget.batch_size % self.nproc:
            raise ConfigError(f"{where}: batch_size {budget.batch_size} must be a multiple of "
                              f"train.nproc = {self.nproc} (each process trains on an equal "
                              f"share of every batch)")

    def model_config(self, registries, entry: SpecEntry) -> ModelConfig:
        """``entry``'s validated hyper-parameters with its referenced models resolved."""
        return resolve_model(registries, entry.name, entry.params, f"model {entry.label!r}")

    @staticmethod
    def build_metric(cls, label: str, params: dict[str, Any]):
        """Instantiate a metric entry; a value it rejects becomes a ConfigError naming it."""
        try:
            return cls(**params)
        except ConfigError as exc:
            msg = str(exc)
            raise ConfigError(msg if label in msg else f"metric {label!r}: {msg}") from None

    def baseline_entries(self, registries) -> list[SpecEntry]:
        """Reference models added to every dataset: the spec's ``baselines``, else every
        registered model that declares ``default_baseline``."""
        names = self.baselines
        if names is None:
            names = tuple(e.name for e in registries.models
                          if getattr(e.obj, "default_baseline", False))
        taken = {e.label for e in self.models}
        return [SpecEntry(n, {}, n) for n in names if n not in taken]

    # -- command-line overrides ---------------------------------------------------------
    def select(self, registries, *, models: Iterable[str] | None = None,
               datasets: Iterable[str] | None = None, metrics: Iterable[str] | None = None,
               seeds: Iterable[int] | None = None, **overrides: Any) -> "SuiteSpec":
        """A copy narrowed to the given labels/names (a registered name not in the spec is
        added with its defaults) and with other fields overridden where not None. Under a
        protocol (filled in first) only its metrics may be picked and its extractor stays."""
        # under a protocol the metrics are picked among its own, and the result is checked
        # against it (an --extractor, a metric or a count it does not fix is refused)
        self = self.with_protocol(registries)
        changes: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        for section, wanted, reg in (("models", models, registries.models),
                                     ("datasets", datasets, registries.datasets),
                                     ("metrics", metrics, registries.metrics)):
            if wanted is None:
                continue
            current: tuple[SpecEntry, ...] = getattr(self, section)
            picked: list[SpecEntry] = []
            for w in wanted:
                match = [e for e in current if w in (e.label, e.name)]
                if not match:
                    reg.get(w)  # raises UnknownNameError listing what is registered
                    match = [SpecEntry(w, {}, w)]
                picked += [e for e in match if e not in picked]
            changes[section] = tuple(picked)
        if seeds is not None:
            changes["seeds"] = tuple(seeds)
        if metrics is None and (models is not None or datasets is not None):
            changes["narrowed"] = True
        return replace(self, **changes).with_protocol(registries)

    def to_dict(self) -> dict[str, Any]:
        # without a protocol the dict (and the spec's hash) is what it was before protocols
        d = {k: getattr(self, k) for k in self.KEYS if k != "protocol" or self.protocol}
        for section in ("datasets", "models", "metrics"):
            d[section] = [e.to_dict() for e in d[section]]
        d["budget"] = self.budget.to_dict()
        d["seeds"] = list(self.seeds)
        return d

    def hash(self) -> str:
        return canonical_hash(self.to_dict())


