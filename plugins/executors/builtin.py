"""The built-in executors: ``local`` worker processes and ``ray`` tasks on a Ray cluster.

Their implementations live in ``genbench.execution`` (``local_executor``, ``ray_executor``); this
plugin only names them, as a third-party plugin names its own. ``RayExecutor`` imports Ray
only when built, so registering it needs no Ray.
"""

from genbench import LocalExecutor, RayExecutor, hookimpl


@hookimpl
def register_executors(register):
    register("local", LocalExecutor)
    register("ray", RayExecutor)
