"""genbench's built-in plugins (imported as ``genbench_plugins``).

Each module is an ordinary plugin registered from ``genbench.registry.manager.DEFAULT_PLUGINS``.
"""
