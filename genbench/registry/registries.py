"""Validating registries filled by the ``register_*`` hooks.

Registration checks the name and the base class at once and names the offending plugin,
so a mistake surfaces when plugins load, not deep inside a later run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, Mapping, TypeVar

from genbench.api.errors import RegistrationError, UnknownNameError
from genbench.api.names import record_name

T = TypeVar("T")

_VALID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object and the plugin that registered it."""

    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Name -> class mapping for one kind of plugin object ("model", "dataset", ...).

    ``base`` is the required base class, or a zero-argument callable returning it or a tuple
    of accepted base classes (imported when the first registration is checked). ``broken`` maps the
    names of plugins that failed to load to their failure; an unknown name mentions them.
    """

    def __init__(self, kind: str, base: type | Callable[[], type | tuple[type, ...]],
                 broken: Mapping[str, object] | None = None, *, accepts: str | None = None,
                 complete: Callable[[type], str | None] | None = None):
        self.kind = kind
        self._base = base
        #: What a registered class must subclass, in words (default: the base's dotted name).
        self.accepts = accepts
        #: Why a subclass of the base is still unusable (say, abstract methods left out), or
        #: ``None``; checked at registration.
        self.complete = complete
        self._entries: dict[str, Entry[T]] = {}
        self.broken: Mapping[str, object] = {} if broken is None else broken

    @property
    def base(self) -> type | tuple[type, ...]:
        return self._base if isinstance(self._base, type) else self._base()

    def check(self, name: str, obj: T, plugin: str,
              pending: Mapping[str, Entry[T]] | None = None) -> None:
        """Raise :class:`RegistrationError` unless ``obj`` may be registered as ``name``.

        ``pending`` holds entries staged by ``plugin`` but not added yet; their names count as
        taken too.
        """
        who = f"plugin {plugin!r}"
        if not isinstance(name, str) or not _VALID_NAME.match(name):
            raise RegistrationError(
                f"{who} tried to register {self.kind} {name!r}: a name must be a non-empty "
                "string of letters, digits, '_', '.', '+' or '-' (no whitespace, commas or "
                "path separators)"
            )
        base = self.base
        if not (isinstance(obj, type) and issubclass(obj, base)):
            bases = self.accepts or " or ".join(
                f"{b.__module__}.{b.__qualname__}" for b in (base if isinstance(base, tuple) else (base,)))
            raise RegistrationError(
                f"{who} tried to register {self.kind} {name!r} as {obj!r}, which is not a "
                f"subclass of {bases}"
            )
        reason = self.complete(obj) if self.complete is not None else None
        if reason is not None:
            raise RegistrationError(f"{who} tried to register {self.kind} {name!r} as "
                                    f"{obj.__module__}.{obj.__qualname__}, but {reason}")
        taken = self._entries.get(name) or (pending or {}).get(name)
        if taken is not None:
            raise RegistrationError(
                f"{self.kind} {name!r} is registered twice: by plugin {taken.plugin!r} and by "
                f"plugin {plugin!r}; uninstall or disable one of them"
            )

    def register(self, name: str, obj: T, plugin: str = "<direct>") -> None:
        """Add ``obj`` under ``name``; raise :class:`RegistrationError` if either is invalid.

        ``name`` is recorded on the class (:func:`genbench.registered_name` reads it), so a
        plugin never repeats its name in an attribute."""
        self.check(name, obj, plugin)
        self._entries[name] = Entry(name, obj, plugin)
        record_name(obj, name)

    def __setstate__(self, state: dict) -> None:
        """Unpickled (in a worker process, where the classes were imported afresh): record
        the names on the classes again, in registration order."""
        self.__dict__.update(state)
        for entry in self._entries.values():
            record_name(entry.obj, entry.name)

    def get(self, name: str) -> T:
        """The object registered as ``name``; :class:`UnknownNameError` lists the valid names."""
        try:
            return self._entries[name].obj
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._entries),
                                  broken=self.broken) from None

    def entry(self, name: str) -> Entry[T]:
        self.get(name)
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)
