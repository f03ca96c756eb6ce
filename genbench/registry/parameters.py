"""Hyper-parameters as keyword arguments: introspection and validation where they enter."""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from genbench.api.errors import ConfigError

# Parameters that the framework passes itself and a user never sets in a spec.
_FRAMEWORK_PARAMS = {"self", "data_info"}


def hyperparameters(cls: type) -> dict[str, Any]:
    """The keyword arguments of ``cls.__init__`` with their defaults (``inspect._empty`` if none)."""
    if cls.__init__ is object.__init__:  # no __init__ of its own: takes nothing
        return {}
    sig = inspect.signature(cls.__init__)
    out = {}
    for name, p in sig.parameters.items():
        if name in _FRAMEWORK_PARAMS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = p.default
    return out


def effective_params(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """Every hyper-parameter's value as ``cls`` will see it: defaults filled in, an int given
    for a float default made a float, lists for tuples made tuples. Two spellings of one
    configuration (``vae`` and ``vae`` with ``latent_dim = 10``, ``beta = 4`` and
    ``beta = 4.0``) then fingerprint alike. Model-valued ones (:class:`genbench.ModelRef`
    defaults) are left out: they are identified by the referenced training."""
    from genbench.api.model import ModelRef

    out = {}
    for key, default in hyperparameters(cls).items():
        value = params.get(key, default)
        if isinstance(default, ModelRef) or value is inspect.Parameter.empty:
            continue
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        out[key] = _stable(value)
    out.update({k: _stable(v) for k, v in params.items() if k not in out
                and not isinstance(v, ModelRef) and k not in hyperparameters(cls)})
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


def sampling_settings(model_cls: type) -> dict[str, Any]:
    """A model's sampling settings and their defaults: the keyword-only parameters of
    ``sample`` after ``n`` and ``generator`` (``def sample(self, n, generator=None, *,
    steps=50)``). A setting without a default is a :class:`ConfigError` naming the model."""
    sig = inspect.signature(model_cls.sample)
    settings = {name: p.default for name, p in sig.parameters.items()
                if p.kind is p.KEYWORD_ONLY and name != "generator"}
    missing = [k for k, v in settings.items() if v is inspect.Parameter.empty]
    if missing:
        raise ConfigError(f"{model_cls.__qualname__}.sample: sampling setting(s) "
                          f"{', '.join(missing)} need a default (the value used when a spec "
                          "gives none)")
    return settings


def validate_sampling(model_cls: type, settings: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``settings`` checked against the model's sampling settings (unknown keys and wrongly
    typed values are a :class:`ConfigError` listing the valid ones), with every default
    filled in and values converted like :func:`effective_params` does."""
    valid = sampling_settings(model_cls)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in valid.items()) or "(none: its sample() takes none)"
        raise ConfigError(f"{what}: unknown sampling setting{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(repr, unknown))}; valid ones (with defaults): {shown}")
    out = dict(valid)
    for key, value in settings.items():
        default = valid[key]
        if default is not None and value is not None and not _type_ok(default, value):
            raise ConfigError(f"{what}: sampling setting {key!r} should be a {type(default).__name__} "
                              f"(default {default!r}), got {value!r}")
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        out[key] = value
    return out


def accepts_any_keyword(cls: type) -> bool:
    if cls.__init__ is object.__init__:  # object.__init__(*args, **kwargs) rejects them all
        return False
    sig = inspect.signature(cls.__init__)
    return any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def validate_config(cls: type, config: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Reject unknown or missing keys of ``config`` for ``cls``; ``what`` names it in errors.

    Values are checked against the type of the default where the default is a bool, int,
    float or str (an int is accepted for a float; a list for a tuple).
    """
    params = hyperparameters(cls)
    config = dict(config)
    if not accepts_any_keyword(cls):
        unknown = sorted(set(config) - set(params))
        if unknown:
            valid = ", ".join(f"{k}={_show(v)}" for k, v in params.items()) or "(none)"
            raise ConfigError(
                f"{what}: unknown hyper-parameter{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; valid ones (with defaults): {valid}"
            )
    missing = [k for k, v in params.items() if v is inspect.Parameter.empty and k not in config]
    if missing:
        raise ConfigError(f"{what}: missing required hyper-parameter(s): {', '.join(missing)}")
    for key, value in config.items():
        default = params.get(key, inspect.Parameter.empty)
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
        if not _type_ok(default, value):
            raise ConfigError(
                f"{what}: hyper-parameter {key!r} should be a {type(default).__name__} "
                f"(default {default!r}), got {value!r}"
            )
        if isinstance(default, tuple) and isinstance(value, list):
            config[key] = tuple(value)
    return config


def _type_ok(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list))
    return True


def _show(v: Any) -> str:
    return "<required>" if v is inspect.Parameter.empty else repr(v)
