"""The name a plugin class is registered under, written once: in ``register(name, cls)``.

A registry records the name on the class when it registers it (:func:`record_name`), so a
plugin that needs its own name at runtime (a dataset's :class:`~genbench.DataInfo` name, an
error message) asks :func:`registered_name` instead of repeating the name in an attribute.
"""

from __future__ import annotations

#: The class attribute a registry writes (a dunder name, so no plugin attribute clashes).
_ATTRIBUTE = "__genbench_registered_name__"


def record_name(cls: type, name: str) -> None:
    """Record ``name`` as ``cls``'s registered name, unless ``cls`` already has one of its own
    (the first registration of a class names it; its subclasses inherit it until they are
    registered themselves)."""
    if _ATTRIBUTE not in vars(cls):
        setattr(cls, _ATTRIBUTE, name)


def registered_name(obj: object) -> str:
    """The name ``obj`` (a plugin class or an instance of one) is registered under: its own
    class's, else the nearest registered base class's; the class's ``__qualname__`` when
    neither was registered (a class used directly, outside any registry)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return getattr(cls, _ATTRIBUTE, cls.__qualname__)
