"""Where declared parameters enter a run: a spec's hyper-parameters, dataset and metric
options and sampling settings are checked here before anything is built, grouped for the
class, and put in the fingerprint's canonical form.

How a parameter is declared (an annotated keyword argument with a default), read
(:func:`parameters`) and described (:func:`describe`), and how one value is checked, lives
with the contracts in :mod:`genbench.api.parameters`, so that a class built directly in
Python is checked by the same rules; its names are re-exported here.

* :func:`validate_config`, :func:`validate_sampling`: unknown and missing keys, types,
  ranges, choices, each error naming where the value came from, the key, the value and what
  is allowed (``int >= 1``);
* :func:`group_params`, :func:`construct`: a group's flat keys (``pack = 2``) gathered into
  one instance of its dataclass, and a class built from validated values;
* :func:`effective_params`: every hyper-parameter's value as the class sees it, the form
  the fingerprint hashes (a file parameter, declared with :class:`~genbench.InputFile`, by
  its path and its content's sha256).
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from genbench.api.errors import ConfigError, UnknownNameError
from genbench.api.model import ModelRef
# Reading declarations and checking a value against one live with the contracts (so that
# direct construction is checked too); re-exported here, where values enter a run.
from genbench.api.parameters import (EMPTY, Parameter, check, checked_value,  # noqa: F401
                                     declared_annotations, describe, framework_positionals,
                                     input_file_parameters, parameters, signature_parameters)
from genbench.api.sample_files import content_sha256


def hyperparameters(cls: type) -> dict[str, Any]:
    """The parameters of ``cls`` with their defaults (``inspect._empty`` if none)."""
    return {name: p.default for name, p in parameters(cls).items()}


def accepts_any_keyword(cls: type) -> bool:
    if cls.__init__ is object.__init__:  # object.__init__(*args, **kwargs) rejects them all
        return False
    sig = inspect.signature(cls.__init__)
    return any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def group_params(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as ``cls`` takes them: the flat keys of each group gathered into one
    instance of the group's dataclass (fields not given keep their defaults). A group passed
    whole (``stabilisers=Stabilisers(pack=2)``) is kept; mixing it with flat keys is an
    error."""
    declared = parameters(cls)
    out, groups = {}, {}
    for key, value in params.items():
        p = declared.get(key)
        if p is not None and p.group is not None:
            groups.setdefault(p.group, {})[key] = value
        else:
            out[key] = value
    if not groups:
        return out
    hints = declared_annotations(cls.__init__)
    for group, values in groups.items():
        if group in out:
            raise ConfigError(f"{cls.__qualname__}: {group} given both whole and as "
                              f"{', '.join(values)}; give one or the other")
        out[group] = hints[group](**values)
    return out


def construct(cls: type, *args: Any, **params: Any) -> Any:
    """``cls(*args, **params)`` with ``params`` validated (:func:`validate_config`) and
    grouped (:func:`group_params`): how genbench builds what a spec names."""
    params = validate_config(cls, params, cls.__qualname__)
    return cls(*args, **group_params(cls, params))


# -- where values enter ----------------------------------------------------------------------

def validate_config(cls: type, config: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``config`` checked against the parameters of ``cls``: an unknown key (unless
    ``__init__`` takes ``**kwargs``), a missing required one, or a value its declaration does
    not allow is a :class:`ConfigError` naming ``what``, the key, the value and what is
    allowed. Returns ``config`` with lists given for tuple defaults made tuples."""
    params = parameters(cls)
    config = dict(config)
    if not accepts_any_keyword(cls):
        unknown = sorted(set(config) - set(params))
        if unknown:
            valid = ", ".join(f"{k}={_show(p.default)}" for k, p in params.items()) or "(none)"
            raise ConfigError(
                f"{what}: unknown hyper-parameter{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; valid ones (with defaults): {valid}"
            )
    missing = [k for k, p in params.items() if p.required and k not in config]
    if missing:
        raise ConfigError(f"{what}: missing required hyper-parameter(s): {', '.join(missing)}")
    for key, value in config.items():
        if key in params:
            config[key] = checked_value(params[key], value, what, "hyper-parameter")
    return config


def sampling_parameters(model_cls: type) -> dict[str, Parameter]:
    """A model's sampling settings, declared like hyper-parameters: the keyword-only
    parameters of ``sample`` (``def sample(self, n, generator=None, *, steps: Annotated[int,
    Ge(1)] = 50)``), ``generator`` excepted."""
    return {k: p for k, p in signature_parameters(model_cls.sample, keyword_only=True).items()
            if k != "generator"}


def sampling_settings(model_cls: type) -> dict[str, Any]:
    """A model's sampling settings and their defaults (see :func:`sampling_parameters`). A
    setting without a default is a :class:`ConfigError` naming the model."""
    settings = {k: p.default for k, p in sampling_parameters(model_cls).items()}
    missing = [k for k, v in settings.items() if v is EMPTY]
    if missing:
        raise ConfigError(f"{model_cls.__qualname__}.sample: sampling setting(s) "
                          f"{', '.join(missing)} need a default (the value used when a spec "
                          "gives none)")
    return settings


def validate_sampling(model_cls: type, settings: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``settings`` checked against the model's sampling settings (unknown keys and values
    their declaration does not allow are a :class:`ConfigError` listing the valid ones), with
    every default filled in and values converted like :func:`effective_params` does."""
    valid = sampling_settings(model_cls)
    declared = sampling_parameters(model_cls)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in valid.items()) or "(none: its sample() takes none)"
        raise ConfigError(f"{what}: unknown sampling setting{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(repr, unknown))}; valid ones (with defaults): {shown}")
    out = dict(valid)
    for key, value in settings.items():
        default = valid[key]
        value = checked_value(declared[key], value, what, "sampling setting")
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[key] = value
    return out


def validate_run_sampling(registries: Any, model_cls: type, settings: Mapping[str, Any],
                          what: str) -> dict[str, Any]:
    """:func:`validate_sampling`, and a ``sampler`` setting that is a name must be registered
    in ``registries`` (see :mod:`genbench.api.sampler`): how a suite's spec and
    :func:`genbench.evaluate` check the sampling settings they are given."""
    out = validate_sampling(model_cls, settings, what)
    if isinstance(out.get("sampler"), str):
        try:
            registries.samplers.get(out["sampler"])
        except UnknownNameError as exc:
            raise ConfigError(f"{what}: sampling setting 'sampler': {exc}") from None
    return out


# -- the fingerprint's canonical form ---------------------------------------------------------

def effective_params(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """Every hyper-parameter's value as ``cls`` will see it: defaults filled in, an int given
    for a float default made a float, lists for tuples made tuples. Two spellings of one
    configuration (``vae`` and ``vae`` with ``latent_dim = 10``, ``beta = 4`` and
    ``beta = 4.0``) then fingerprint alike. Model-valued ones (:class:`genbench.ModelRef`
    defaults) are left out: they are identified by the referenced training. A group's fields
    are flat keys here, as in the spec."""
    declared = hyperparameters(cls)
    out = {}
    for key, default in declared.items():
        value = params.get(key, default)
        if isinstance(default, ModelRef) or value is EMPTY:
            continue
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        out[key] = _stable(value)
    out.update({k: _stable(v) for k, v in params.items() if k not in out
                and not isinstance(v, ModelRef) and k not in declared})
    for key in input_file_parameters(cls):  # identified by content, not by path
        if isinstance(out.get(key), str):
            out[key] = {"path": out[key], "sha256": content_sha256(out[key])}
    return out


def _stable(value: Any) -> Any:
    """``value`` as it can be hashed the same in every process: plain data as it is, any
    other object (a function, a class, an instance as a default) by its qualified name,
    never by a ``repr`` that holds a memory address."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_stable(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _stable(v) for k, v in value.items()}
    target = value if callable(value) and hasattr(value, "__qualname__") else type(value)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def _show(v: Any) -> str:
    return "<required>" if v is EMPTY else repr(v)
