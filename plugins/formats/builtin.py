"""Registers the built-in output formats: ``md``, ``csv`` and ``latex`` (one file per board
and a text to print), ``html`` (one self-contained page per suite) and ``tensorboard`` (the
training losses as event files, written only when asked for: ``--tensorboard DIR``)."""

from __future__ import annotations

from genbench import hookimpl

from .html_page import HtmlReport
from .tables import CsvTable, LatexTable, MarkdownTable
from .tensorboard_events import TensorBoardEvents


@hookimpl
def register_formats(register):
    register("md", MarkdownTable)
    register("csv", CsvTable)
    register("latex", LatexTable)
    register("html", HtmlReport)
    register("tensorboard", TensorBoardEvents)
