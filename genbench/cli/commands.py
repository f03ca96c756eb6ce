"""The ``genbench`` command line, assembled: the group with its exit policy
(:mod:`genbench.cli.group`) and the core commands, one module per idea: ``run``
(:mod:`genbench.cli.run`), ``leaderboard`` and ``results`` (:mod:`genbench.cli.tables`),
``eval`` (:mod:`genbench.cli.eval`), ``list``, ``show`` and ``plugins`` (:mod:`genbench.cli.catalog`), ``assets``
(:mod:`genbench.cli.assets`), ``reference`` (:mod:`genbench.cli.reference`). Each command parses its options, calls the library and prints."""

from __future__ import annotations

from genbench.cli.assets import assets
from genbench.cli.catalog import list_, plugins, show
from genbench.cli.eval import eval_
from genbench.cli.group import cli, main
from genbench.cli.reference import reference
from genbench.cli.run import run
from genbench.cli.tables import leaderboard, results

__all__ = ["cli", "main"]

for _command in (run, eval_, leaderboard, results, list_, show, plugins, assets, reference):
    cli.add_command(_command)
