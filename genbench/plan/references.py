"""Models built on models: resolving model-valued hyper-parameters into a tree of configs.

A hyper-parameter whose default is a :class:`genbench.ModelRef` takes another model. The
spec may override it with a model name or a table ``{ name, params, budget }``. Resolution
validates every level like a spec entry (unknown names, unknown or mistyped
hyper-parameters) and rejects cycles, naming the path, before anything trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genbench.registry.parameters import hyperparameters, validate_config
from genbench.api.errors import SpecError, UnknownNameError
from genbench.api.model import ModelRef
from genbench.plan.labels import default_label

_REF_KEYS = ("name", "params", "budget")


@dataclass(frozen=True)
class ModelConfig:
    """A model with validated hyper-parameters and every referenced model resolved.

    ``params`` holds the plain hyper-parameters; ``refs`` maps each model-valued one to the
    referenced model's own config. ``budget_overrides`` are a referenced model's own budget
    keys (merged over the suite's budget); ``None`` means the suite's budget.
    """

    name: str
    params: dict[str, Any]
    refs: tuple[tuple[str, "ModelConfig"], ...] = ()
    budget_overrides: dict[str, Any] | None = None

    @property
    def label(self) -> str:

        shown = dict(self.params)
        shown.update({k: ref.label for k, ref in self.refs})
        return default_label(self.name, shown)


def model_references(model_cls: type) -> dict[str, ModelRef]:
    """The model-valued hyper-parameters of ``model_cls`` and their default references."""
    return {k: v for k, v in hyperparameters(model_cls).items() if isinstance(v, ModelRef)}


def _as_ref(value: Any, where: str) -> tuple[ModelRef, dict[str, Any] | None]:
    if isinstance(value, ModelRef):
        return value, None
    if isinstance(value, str):
        return ModelRef(value), None
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        unknown = sorted(set(value) - set(_REF_KEYS))
        params, budget = value.get("params", {}), value.get("budget")
        if not unknown and isinstance(params, dict) and (budget is None or isinstance(budget, dict)):
            return ModelRef(value["name"], **params), (None if budget is None else dict(budget))
    raise SpecError(f"{where} takes a model: a name such as \"ae\" or a table "
                    f"{{ name = \"ae\", params = {{ ... }}, budget = {{ ... }} }}, got {value!r}")


def resolve_model(registries, name: str, params: dict[str, Any], where: str,
                  budget_overrides: dict[str, Any] | None = None,
                  _path: tuple[str, ...] = ()) -> ModelConfig:
    """Validate model ``name`` with ``params`` and resolve its referenced models, recursively.

    Raises :class:`~genbench.api.errors.SpecError` for an unknown referenced model or a cycle
    (the message names the path), :class:`~genbench.api.errors.ConfigError` for bad
    hyper-parameters and :class:`~genbench.api.errors.UnknownNameError` for an unknown top-level
    name.
    """
    cls = registries.models.get(name)
    params = validate_config(cls, params, where)
    node = f"{name}{sorted((k, repr(v)) for k, v in params.items())}"
    if node in _path:
        names = [p.split("[")[0] for p in _path[_path.index(node):]] + [name]
        raise SpecError(f"{where}: model references form a cycle: {' -> '.join(names)}")
    plain, refs = {}, []
    references = model_references(cls)
    for key, value in params.items():
        if key not in references:
            plain[key] = value
    for key, default in references.items():
        ref, budget = _as_ref(params.get(key, default), f"{where} hyper-parameter {key!r}")
        ref_where = f"{where} -> {key}={ref.name}"
        try:
            registries.models.get(ref.name)
        except UnknownNameError as exc:
            raise SpecError(f"{where} hyper-parameter {key!r}: {exc}") from None
        refs.append((key, resolve_model(registries, ref.name, ref.params, ref_where, budget,
                                        _path + (node,))))
    return ModelConfig(name, plain, tuple(refs), budget_overrides)
