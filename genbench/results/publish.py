"""Publishing: a suite's leaderboards built from the store and written in every output format.

The formats are the ``register_formats`` plugins' (:class:`genbench.api.formats.OutputFormat`).
:func:`publish` writes, into the leaderboards folder, each board's sample figure and plots
first and then the files of every published format, so that a format can show the figures
(the HTML page embeds them); formats asked for by name (``outputs``) write into their own
folders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from genbench.api.formats import OutputFormat
from genbench.api.paths import atomic_write
from genbench.plan.jobs import board_file
from genbench.results.boards import Leaderboard, build_leaderboards
from genbench.results.sample_figures import save_sample_figures
from genbench.results.plots import save_plots
from genbench.results.store import ResultStore

if TYPE_CHECKING:
    from genbench.registry.manager import Registries
    from genbench.registry.registries import Registry

Boards = Mapping[tuple[str, str], Leaderboard]


@dataclass
class Publication:
    """What :func:`publish` built and wrote."""

    #: ``{(suite, dataset): Leaderboard}``, in display order.
    boards: dict[tuple[str, str], Leaderboard]
    #: The files written into the leaderboards folder.
    files: list[Path] = field(default_factory=list)
    #: The files of each format asked for by name, written into its own folder.
    outputs: dict[str, list[Path]] = field(default_factory=dict)


def published_formats(formats: "Registry") -> dict[str, OutputFormat]:
    """An instance of every registered format whose ``published`` is true, by name."""
    return {e.name: e.obj() for e in formats if e.obj.published}


def check_outputs(formats: "Registry", outputs: Mapping[str, str | Path]) -> None:
    """Raise before anything trains when a format in ``outputs`` (name -> folder) is unknown
    (:class:`~genbench.api.errors.UnknownNameError` lists the valid ones) or cannot write."""
    for name, directory in outputs.items():
        formats.get(name)().check(Path(directory))


def write_formats(boards: Boards, store: ResultStore, directory: str | Path,
                  formats: Mapping[str, OutputFormat], *,
                  fingerprints: list[str] | None = None) -> list[Path]:
    """Write ``boards`` in each of ``formats`` into ``directory``: every board's
    ``<suite>/<dataset><suffix>`` file, then the format's other files; returns the paths."""
    directory = Path(directory)
    written = []
    for fmt in formats.values():
        for board in boards.values():
            text = fmt.board_text(board)
            if text is None:
                continue
            path = board_file(directory, board.suite, board.dataset, fmt.suffix)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
            written.append(path)
        written += fmt.write(boards, store, directory, fingerprints=fingerprints)
    return written


def publish(store: ResultStore, directory: str | Path, formats: "Registry", *,
            registries: "Registries", suite: str | None = None,
            include: list[str] | None = None, primary: str | None = None,
            descriptions: dict[str, str] | None = None,
            outputs: Mapping[str, str | Path] | None = None) -> Publication:
    """Build the boards (:func:`~genbench.results.boards.build_leaderboards` with ``suite``,
    ``include``, ``primary``, ``descriptions`` and the run's ``registries``, whose metrics
    and models declare how results are presented) and write them into ``directory``: sample
    figures, plots, then every published format of the ``formats`` registry; each format
    named in ``outputs`` writes into the folder given there. ``include`` (the run's job
    fingerprints) also tells the formats which jobs are the run's."""
    boards = build_leaderboards(store, suite=suite, include=include, primary=primary,
                                descriptions=descriptions, registries=registries)
    files = save_sample_figures(boards, store, directory)
    files += save_plots(boards, store, directory)
    files += write_formats(boards, store, directory, published_formats(formats),
                           fingerprints=include)
    written = {name: write_formats(boards, store, folder, {name: formats.get(name)()},
                                   fingerprints=include)
               for name, folder in (outputs or {}).items()}
    return Publication(boards, files, written)
