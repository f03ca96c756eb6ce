"""The leaderboards as one self-contained HTML page (see :func:`genbench.render_report`)."""

from __future__ import annotations

from genbench import OutputFormat


class HtmlReport(OutputFormat):
    """One self-contained HTML page per suite (``<suite>/index.html``).

    Every board with tooltips, sample thumbnails and the figures beside its files."""

    suffix = ".html"
    needs_descriptions = True

    def render(self, boards, store, *, full=False, metrics=None):
        from genbench import render_report

        return render_report(boards, store)

    def write(self, boards, store, directory, *, fingerprints=None):
        from genbench import write_reports

        return write_reports(boards, store, directory)
