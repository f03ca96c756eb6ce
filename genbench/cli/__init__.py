"""Layer 7, the shell: click commands that parse options, call the library and print."""

from genbench.cli.commands import cli, main

__all__ = ["cli", "main"]
