"""What several commands parse the same way: the output folder and comma-separated lists."""

from __future__ import annotations

import click

from genbench.api.paths import DEFAULT_OUT

__all__ = ["DEFAULT_OUT", "csv_list", "seeds_option"]


def csv_list(value: str | None) -> list[str] | None:
    """``"a, b,"`` as ``["a", "b"]``; ``None`` for nothing."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def seeds_option(ctx, param, value: str | None) -> list[int] | None:
    """The ``--seeds`` callback: distinct integers in the spec's range."""
    items = csv_list(value)
    if items is None:
        return None
    try:
        seeds = [int(s) for s in items]
    except ValueError:
        raise click.BadParameter(f"seeds must be comma-separated integers, got {value!r}")
    from genbench.plan.spec import MAX_SEED

    if any(not 0 <= s <= MAX_SEED for s in seeds):
        raise click.BadParameter(f"seeds must lie between 0 and {MAX_SEED}")
    if len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"seeds has duplicates: {value}")
    return seeds
