"""genbench's built-in plugins (imported as ``genbench_plugins``).

Each module is an ordinary plugin registered from ``genbench.plugin_manager.DEFAULT_PLUGINS``.
"""
