"""Layer 1, the plugin machinery: the plugin manager, the validating registries its hooks
fill, hyper-parameter declarations and the identity (hashes) of plugin code."""

from genbench.registry.registries import Entry, Registry

__all__ = ["Entry", "Registry"]
