"""Parameters declared once, in the signature: hyper-parameters of models, options of
datasets, metrics, samplers and extractors, and models' sampling settings.

A parameter is a keyword argument with a default; its annotation declares its type and its
constraints, with :mod:`typing` and the constraint vocabulary of ``annotated-types``::

    from typing import Annotated, Literal
    from annotated_types import Ge, Gt, Interval

    def __init__(self, data_info, latent_dim: Annotated[int, Ge(1)] = 8,
                 schedule: Literal["linear", "cosine"] = "linear",
                 lr: Annotated[float, Gt(0)] = 1e-3,
                 hidden: tuple[Annotated[int, Ge(1)], ...] = (64, 64),
                 clip: Annotated[float, Gt(0)] | None = None): ...

Everything else derives from that one declaration: validation (:func:`validate_config`,
:func:`validate_sampling`: unknown and missing keys, types, ranges, choices), what
``genbench show`` and the docs print (:func:`describe`: ``int >= 1``), and the fingerprint's
canonical form (:func:`effective_params`). Type rules: a bool is not an int; an int is
accepted for a float; a list for a tuple; ``X | None`` accepts None (so does any parameter
whose default is None); ``Literal`` lists the choices. A parameter without an annotation
(or with one that cannot be evaluated at run time, such as a name imported only under
``TYPE_CHECKING``) is checked against its default's type, as it always was.

A parameter annotated with a dataclass is a *group*: its fields are parameters of the class
in their own right, flat keys of the spec (``pack = 2``, not ``stabilisers.pack``), and the
class receives them as one instance of the dataclass (:func:`group_params`).

The framework's own arguments are not parameters: a :class:`~genbench.GenerativeModel` is
built as ``cls(data_info, **hyperparameters)``, so its ``__init__``'s first positional
parameter receives the :class:`~genbench.DataInfo`, whatever its name (the contract's
``framework_positionals`` says how many such arguments there are).

This module reads declarations and checks values against them; it belongs to the contracts,
so that a model, dataset, metric or sampler built directly in Python is checked as well
(:func:`validate_on_init`, which the contracts apply to every subclass). Where values enter
a run (a spec, a reference, the library API) is :mod:`genbench.registry.parameters`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Union

import annotated_types as at

from genbench.api.errors import ConfigError
from genbench.api.names import registered_name


class ModelRef:
    """A hyper-parameter default that takes another, trained model.

    ``def __init__(self, data_info, autoencoder=ModelRef("conv-ae", latent_dim=8))``: the
    runner trains the referenced model (same dataset and seed) as its own job and passes the
    trained instance, in eval mode, in place of this marker. A spec overrides it with a name
    (``autoencoder = "ae"``) or a table (``autoencoder = { name = "ae", params = { ... } }``).
    """

    __slots__ = ("name", "params")

    def __init__(self, name: str, **params: Any):
        if not isinstance(name, str) or not name:
            raise TypeError(f"ModelRef needs a model name, got {name!r}")
        self.name, self.params = name, dict(params)

    def __repr__(self) -> str:
        inner = "".join(f", {k}={v!r}" for k, v in sorted(self.params.items()))
        return f"ModelRef({self.name!r}{inner})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelRef) and (self.name, self.params) == (other.name, other.params)

    def __hash__(self) -> int:
        return hash((self.name, repr(sorted(self.params.items()))))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}


EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class InputFile(at.BaseMetadata):
    """A constraint for a ``str`` parameter that names a file or folder the run reads:
    ``path: Annotated[str, InputFile(suffixes=(".pt", ".pt2"))]``.

    The value must name something that exists (a file with one of ``suffixes`` when any are
    given; a folder too when ``folders``), so a wrong path is refused before anything
    trains. The run is identified by the content, not the path
    (:func:`genbench.registry.parameters.effective_params` puts its sha256 in the
    fingerprint): new content under the same path is a new run, never a stale row.
    """

    suffixes: tuple[str, ...] = ()
    folders: bool = False

    def accepts(self, value: Any) -> bool:
        from pathlib import Path

        p = Path(str(value)).expanduser()
        if p.is_dir():
            return self.folders
        return p.is_file() and (not self.suffixes or p.suffix.lower() in self.suffixes)

    def describe(self) -> str:
        what = "naming an existing file" + (f" ({', '.join(self.suffixes)})" if self.suffixes else "")
        return what + (" or folder" if self.folders else "")


def input_file_parameters(cls: type) -> list[str]:
    """The names of ``cls``'s parameters declared with :class:`InputFile`."""
    def marked(annotation: Any) -> bool:
        if typing.get_origin(annotation) is typing.Annotated:
            base, *meta = typing.get_args(annotation)
            return any(isinstance(m, InputFile) for m in meta) or marked(base)
        union = _union_args(annotation)
        return union is not None and any(marked(a) for a in union)

    return [name for name, p in parameters(cls).items() if marked(p.annotation)]


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: its name, default (``inspect.Parameter.empty`` when required),
    annotation (the evaluated one; derived from the default where there is none) and the
    group (a dataclass-typed parameter) it belongs to, if any."""

    name: str
    default: Any
    annotation: Any
    group: str | None = None

    @property
    def required(self) -> bool:
        return self.default is EMPTY

    @property
    def allowed(self) -> str:
        """What values are allowed, as shown to users: ``int >= 1``, ``'linear' | 'cosine'``."""
        return describe(_allowed(self))


# -- reading declarations --------------------------------------------------------------------

def framework_positionals(cls: type) -> int:
    """How many leading positional parameters of ``cls.__init__`` genbench passes itself: the
    contract says so in ``framework_positionals`` (a model: one, the DataInfo, whatever its
    name); none for anything else."""
    return int(getattr(cls, "framework_positionals", 0)) if isinstance(cls, type) else 0


def declared_annotations(func: Any) -> dict[str, Any]:
    """``func``'s annotations evaluated; one that cannot be is left out (see the module doc)."""
    raw = getattr(func, "__annotations__", None) or {}
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # noqa: BLE001 -- one unresolvable name must not hide the others
        pass
    globalns = getattr(inspect.unwrap(func), "__globals__", {})
    out = {}
    for name, ann in raw.items():
        if isinstance(ann, str):
            try:
                ann = eval(ann, dict(globalns))  # noqa: S307 -- the plugin's own annotation
            except Exception:  # noqa: BLE001
                continue
        out[name] = ann
    return out


def _from_default(default: Any) -> Any:
    """The annotation an unannotated parameter gets from its default (the old rule)."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float, str)):
        return type(default)
    if isinstance(default, (tuple, list)):
        return tuple
    return Any


def _is_group(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def signature_parameters(func: Any, skip: int = 0, *, keyword_only: bool = False
                         ) -> dict[str, Parameter]:
    """The declared parameters of ``func`` after ``self`` and ``skip`` more leading positional
    ones (``*args``/``**kwargs`` are not parameters; with ``keyword_only``, only keyword-only
    ones are); groups are expanded into their fields."""
    sig = inspect.signature(func)
    hints = declared_annotations(func)
    out: dict[str, Parameter] = {}
    items = list(sig.parameters.values())
    if items and items[0].name == "self":
        items = items[1:]
    for p in items:
        if skip and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            skip -= 1
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if keyword_only and p.kind is not p.KEYWORD_ONLY:
            continue
        ann = hints.get(p.name, EMPTY)
        if _is_group(ann):
            out.update(_group_fields(ann, p.name))
            continue
        if ann is EMPTY:
            ann = _from_default(p.default)
        out[p.name] = Parameter(p.name, p.default, ann)
    return out


def _group_fields(group: type, name: str) -> dict[str, Parameter]:
    hints = declared_annotations(group)
    out = {}
    for f in dataclasses.fields(group):
        default = (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING else EMPTY)
        out[f.name] = Parameter(f.name, default, hints.get(f.name, _from_default(default)), name)
    return out


def parameters(cls: type) -> dict[str, Parameter]:
    """The declared parameters of ``cls.__init__`` (a model's DataInfo left out)."""
    if cls.__init__ is object.__init__:  # no __init__ of its own: takes nothing
        return {}
    return signature_parameters(cls.__init__, framework_positionals(cls))


# -- checking values -------------------------------------------------------------------------

def _metadata(items: Any) -> list[Any]:
    """Constraint objects, grouped ones (``Interval``, ``Len``) flattened; other metadata
    (documentation strings) dropped."""
    out = []
    for m in items:
        if isinstance(m, at.GroupedMetadata):
            out += _metadata(m)
        elif isinstance(m, at.BaseMetadata):
            out.append(m)
        elif isinstance(m, (slice, type)) or callable(m):
            raise TypeError(f"unsupported parameter constraint {m!r}: use annotated-types' "
                            "Gt, Ge, Lt, Le, Interval, MultipleOf, MinLen, MaxLen, Len or Predicate")
    return out


def _constraint_ok(m: Any, value: Any) -> bool:
    if isinstance(m, InputFile):
        return m.accepts(value)
    if isinstance(m, at.Gt):
        return value > m.gt
    if isinstance(m, at.Ge):
        return value >= m.ge
    if isinstance(m, at.Lt):
        return value < m.lt
    if isinstance(m, at.Le):
        return value <= m.le
    if isinstance(m, at.MultipleOf):
        return value % m.multiple_of == 0
    if isinstance(m, at.MinLen):
        return len(value) >= m.min_length
    if isinstance(m, at.MaxLen):
        return len(value) <= m.max_length
    if isinstance(m, at.Predicate):
        return bool(m.func(value))
    raise TypeError(f"unsupported parameter constraint {m!r}: use annotated-types' Gt, Ge, "
                    "Lt, Le, Interval, MultipleOf, MinLen, MaxLen, Len or Predicate")


def _union_args(annotation: Any) -> tuple | None:
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return None


def check(annotation: Any, value: Any) -> bool:
    """Whether ``value`` satisfies ``annotation`` (type, choices, constraints, elements)."""
    if annotation is Any or annotation is EMPTY or annotation is object:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        if not check(base, value):
            return False
        return all(_constraint_ok(m, value) for m in _metadata(meta))
    if origin is Literal:
        return any(value == c and type(value) is type(c) for c in typing.get_args(annotation))
    union = _union_args(annotation)
    if union is not None:
        return any(check(a, value) for a in union)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is tuple or annotation is list:
        return isinstance(value, (tuple, list))
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        args = typing.get_args(annotation)
        if not args:
            return True
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            return all(check(args[0], v) for v in value)
        return len(value) == len(args) and all(check(a, v) for a, v in zip(args, value))
    if origin is dict:
        if not isinstance(value, dict):
            return False
        args = typing.get_args(annotation)
        return not args or all(check(args[0], k) and check(args[1], v) for k, v in value.items())
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # a typing construct this validator does not read (Callable[...]): unchecked


def _number(x: Any) -> str:
    return repr(x) if not isinstance(x, float) or not x.is_integer() or math.isinf(x) else str(int(x))


def describe(annotation: Any) -> str:
    """``annotation`` as users read it: ``int >= 1``, ``float in [0, 1)``, ``'linear' |
    'cosine'``, ``tuple[int >= 1, ...]``, ``int >= 1 | None``."""
    if annotation is Any or annotation is EMPTY or annotation is object:
        return "any"
    if annotation is None or annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        return _with_constraints(describe(base), _metadata(meta))
    if origin is Literal:
        return " | ".join(map(repr, typing.get_args(annotation)))
    union = _union_args(annotation)
    if union is not None:
        return " | ".join(describe(a) for a in union)
    if origin in (tuple, list):
        args = typing.get_args(annotation)
        if not args:
            return origin.__name__
        if len(args) == 2 and args[1] is Ellipsis:
            return f"{origin.__name__}[{describe(args[0])}, ...]"
        return f"{origin.__name__}[{', '.join(describe(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _with_constraints(base: str, meta: list[Any]) -> str:
    lower = upper = None
    rest = []
    for m in meta:
        if isinstance(m, at.Gt):
            lower = ("(", ">", m.gt)
        elif isinstance(m, at.Ge):
            lower = ("[", ">=", m.ge)
        elif isinstance(m, at.Lt):
            upper = (")", "<", m.lt)
        elif isinstance(m, at.Le):
            upper = ("]", "<=", m.le)
        elif isinstance(m, at.MultipleOf):
            rest.append(f"multiple of {_number(m.multiple_of)}")
        elif isinstance(m, at.MinLen):
            rest.append(f"of length >= {m.min_length}")
        elif isinstance(m, at.MaxLen):
            rest.append(f"of length <= {m.max_length}")
        elif isinstance(m, InputFile):
            rest.append(m.describe())
        elif isinstance(m, at.Predicate):
            rest.append(f"satisfying {getattr(m.func, '__name__', repr(m.func))}")
    parts = []
    if lower and upper:
        parts.append(f"in {lower[0]}{_number(lower[2])}, {_number(upper[2])}{upper[0]}")
    elif lower:
        parts.append(f"{lower[1]} {_number(lower[2])}")
    elif upper:
        parts.append(f"{upper[1]} {_number(upper[2])}")
    return " ".join([base, ", ".join(parts + rest)]).strip()


def _allowed(p: Parameter) -> Any:
    """``p``'s annotation, with None allowed where its default is None."""
    if p.default is None and not check(p.annotation, None):
        return typing.Optional[p.annotation]
    return p.annotation


def checked_value(p: Parameter, value: Any, what: str, noun: str) -> Any:
    """``value`` for ``p`` if allowed (a list for a tuple default made a tuple), else a
    :class:`ConfigError` saying what, which parameter, the value and what is allowed."""
    if isinstance(p.default, ModelRef):  # a model-valued one: references.py reads it
        return value
    allowed = _allowed(p)
    if not check(allowed, value):
        default = "" if p.required else f" (default {p.default!r})"
        raise ConfigError(f"{what}: {noun} {p.name!r} must be {describe(allowed)}{default}, "
                          f"got {value!r}")
    if isinstance(p.default, tuple) and isinstance(value, list):
        value = tuple(value)
    return value


def check_options(cls: type, options: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``options`` for the fields of the dataclass ``cls`` (an executor's ``Options``) checked
    against the fields' declarations like hyper-parameters: a value its declaration does not
    allow is a :class:`ConfigError` naming ``what``, the option, the value and what is
    allowed. Keys that are not fields are left to the caller."""
    declared = _group_fields(cls, cls.__qualname__)
    return {k: checked_value(declared[k], v, what, "option") if k in declared else v
            for k, v in options.items()}


# -- direct construction ---------------------------------------------------------------------

def check_arguments(cls: type, init: Any, args: tuple, kwargs: dict[str, Any]) -> None:
    """The arguments of a call ``init(self, *args, **kwargs)`` checked against ``init``'s
    declarations, as :func:`genbench.registry.parameters.validate_config` checks a spec's: a
    value its declaration does not allow is a :class:`ConfigError` naming ``cls``'s
    registered name, the parameter, the value and what is allowed. A group passed whole is
    checked field by field. Arguments that do not bind (unknown or missing ones) are left to
    the call itself, which raises Python's own ``TypeError``."""
    try:
        bound = inspect.signature(init).bind(None, *args, **kwargs).arguments
    except TypeError:
        return
    declared = signature_parameters(init, framework_positionals(cls))
    groups: dict[str, list[Parameter]] = {}
    for p in declared.values():
        if p.group is not None:
            groups.setdefault(p.group, []).append(p)
    what = registered_name(cls)
    for name, value in bound.items():
        if name in groups:
            group = declared_annotations(init)[name]
            if not isinstance(value, group):
                raise ConfigError(f"{what}: hyper-parameter {name!r} must be a "
                                  f"{group.__qualname__}, got {value!r}")
            for p in groups[name]:
                checked_value(p, getattr(value, p.name), what, "hyper-parameter")
        elif name in declared:
            checked_value(declared[name], value, what, "hyper-parameter")


def validate_on_init(cls: type) -> None:
    """Make ``cls``'s own ``__init__`` (if it defines one) check its arguments
    (:func:`check_arguments`) before it runs, so that ``VAE(info, latent_dim=0)`` in a
    notebook is refused like the same value in a spec. Only the outermost ``__init__`` of a
    call checks (a subclass's ``super().__init__(...)`` is not checked again against the
    base's declarations), and the values it passes on are the ones given. The contracts
    call this from ``__init_subclass__``; wrapping twice is a no-op."""
    init = cls.__dict__.get("__init__")
    if init is None or getattr(init, "__genbench_checked__", False):
        return

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if type(self).__init__ is __init__:
            check_arguments(type(self), init, args, kwargs)
        init(self, *args, **kwargs)

    __init__.__genbench_checked__ = True
    cls.__init__ = __init__
