"""The output-format contract: how leaderboards become text and files.

A format is a subclass of :class:`OutputFormat`, registered by name through the
``register_formats`` hook (the registered name is what ``genbench leaderboard --format NAME``
takes) and built with no arguments. ``boards`` is always what ``build_leaderboards`` returns,
``{(suite, dataset): Leaderboard}`` in display order, and ``store`` the results store they
were built from.

- :meth:`OutputFormat.render`: the boards as one text, printed by ``genbench leaderboard``.
  A format that does not override it writes files only.
- :meth:`OutputFormat.board_text`: the text of each board's own file,
  ``<directory>/<suite>/<dataset><suffix>``, written by every run.
- :meth:`OutputFormat.write`: any other files (a page per suite, event files).

A *published* format's files are written by every ``genbench run`` into
``OUT/leaderboards``; any other is written only when asked for, into the folder the caller
names (``genbench run --output NAME=DIR``, or ``genbench.run(..., outputs={name: DIR})``).
A format may declare an :attr:`OutputFormat.option` of its own for that (``tensorboard``'s
``--tensorboard DIR``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping

from genbench.api.errors import ConfigError


class OutputFormat:
    """How leaderboards are rendered as text and written as files (see the module docs)."""

    #: Suffix of the file :meth:`board_text` fills for each board, e.g. ``".md"``.
    suffix: ClassVar[str] = ""
    #: Written by every run into ``OUT/leaderboards``; ``False``: only when asked for.
    published: ClassVar[bool] = True
    #: A ``genbench run`` option (``"--tensorboard"``) that asks for the files in the folder
    #: it names: the same as ``--output NAME=DIR``, helped by the class's ``description``.
    option: ClassVar[str | None] = None
    #: The columns must carry their metric's description (tooltips): ``genbench leaderboard``
    #: loads the metric plugins for it.
    needs_descriptions: ClassVar[bool] = False

    @classmethod
    def renders(cls) -> bool:
        """Whether the format prints (overrides :meth:`render`), not only writes files."""
        return cls.render is not OutputFormat.render

    def render(self, boards: Mapping[tuple[str, str], Any], store: Any, *, full: bool = False,
               metrics: list[str] | None = None) -> str:
        """The boards as one text. ``full``: every column, not only the headline ones;
        ``metrics``: only these metrics or columns (a format may ignore both)."""
        raise ConfigError(f"{type(self).__name__} writes files only; it has no text to print")

    def board_text(self, board: Any) -> str | None:
        """The text of ``board``'s file ``<suite>/<dataset><suffix>``; ``None``: no such file."""
        return None

    def write(self, boards: Mapping[tuple[str, str], Any], store: Any, directory: Path, *,
              fingerprints: list[str] | None = None) -> list[Path]:
        """Write the files beyond the per-board ones into ``directory``; returns their paths.
        ``fingerprints``: the jobs of the run that publishes (``None``: every stored job)."""
        return []

    def check(self, directory: Path) -> None:
        """Raise before anything trains when the files cannot be written to ``directory``
        (a package or a writable folder missing); by default nothing is checked."""
