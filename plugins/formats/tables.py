"""The leaderboards as Markdown, CSV and LaTeX tables, rendered by the boards themselves."""

from __future__ import annotations

from genbench import OutputFormat


class MarkdownTable(OutputFormat):
    """Markdown tables with their legends (a board's file: headline table, every metric)."""

    suffix = ".md"

    def render(self, boards, store, *, full=False, metrics=None):
        return "".join(b.to_markdown(full, metrics) + "\n" for b in boards.values())

    def board_text(self, board):
        return (board.to_markdown() + "\n#### Every metric\n\n"
                + board.to_markdown(full=True).split("\n", 2)[2])


class CsvTable(OutputFormat):
    """Tidy CSV: a line per cell with every statistic."""

    suffix = ".csv"

    def render(self, boards, store, *, full=False, metrics=None):
        import pandas as pd

        return pd.concat([b.tidy() for b in boards.values()], ignore_index=True).to_csv(index=False)

    def board_text(self, board):
        return board.to_csv()


class LatexTable(OutputFormat):
    """LaTeX: a booktabs table per board, captioned with its protocol."""

    suffix = ".tex"

    def render(self, boards, store, *, full=False, metrics=None):
        return "".join(b.to_latex(full, metrics) + "\n" for b in boards.values())

    def board_text(self, board):
        return board.to_latex()
