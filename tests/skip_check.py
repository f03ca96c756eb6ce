"""CI fails when a test skips that CI should run (loaded by conftest.py's ``pytest_configure``).

When the environment variable ``GENBENCH_CI_ALLOWED_SKIPS`` names a file (``.ci/run`` sets
it to ``.ci/allowed-skips.txt``), a session in which a test or a test module skipped that the
file does not allow ends with exit status 1 and lists those skips with their reasons. Each line
of the file is a node id pattern (``fnmatch``, e.g. ``tests/test_x.py::test_y[*]``), white
space, then why that test cannot run in CI; blank lines and ``#`` comments are ignored. Without
the variable nothing is checked: a developer's machine may lack Chromium, say.
"""

from __future__ import annotations

import os
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ENV = "GENBENCH_CI_ALLOWED_SKIPS"


def read_allowed(path: Path) -> list[tuple[str, str]]:
    """``(pattern, reason)`` per entry of ``path``; a :class:`pytest.UsageError` naming the
    file and line for an entry without a reason, or when the file cannot be read."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise pytest.UsageError(f"{ENV}={path}: cannot read the list of allowed skips: {exc}")
    allowed = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, reason = line.partition(" ")
        if not reason.strip():
            raise pytest.UsageError(f"{path}:{number}: {pattern!r} has no reason; write the node "
                                    "id, a space, then why CI cannot run that test")
        allowed.append((pattern, reason.strip()))
    return allowed


class SkipCheck:
    """Records the skips no entry allows; fails the session and lists them at its end."""

    def __init__(self, path: str, allowed: list[tuple[str, str]]):
        self.path, self.allowed = path, allowed
        self.unexpected: list[tuple[str, str]] = []

    def _record(self, report) -> None:
        if any(fnmatchcase(report.nodeid, pattern) for pattern, _ in self.allowed):
            return
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        self.unexpected.append((report.nodeid, reason.removeprefix("Skipped: ")))

    def pytest_runtest_logreport(self, report) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):  # an xfail ran: not a skip
            self._record(report)

    def pytest_collectreport(self, report) -> None:
        if report.skipped:  # a module skipped as a whole (importorskip at import)
            self._record(report)

    def pytest_sessionfinish(self, session) -> None:
        if self.unexpected and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.unexpected:
            return
        terminalreporter.section("skips CI does not allow", sep="=", red=True, bold=True)
        for nodeid, reason in self.unexpected:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(f"CI runs every test but those {self.path} lists: make these run "
                              "(install what they need), or add them there with the reason "
                              "CI cannot run them.")


def configure(config: pytest.Config) -> None:
    """Register :class:`SkipCheck` when ``GENBENCH_CI_ALLOWED_SKIPS`` is set."""
    path = os.environ.get(ENV)
    if path:
        config.pluginmanager.register(SkipCheck(path, read_allowed(Path(path))),
                                      "genbench-skip-check")
