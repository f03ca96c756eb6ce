"""Row labels: ``name[params][sampling]``, as tables and the store show a model entry."""

from __future__ import annotations

from typing import Any


def bracket(values: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        if (isinstance(v, dict) and isinstance(v.get("name"), str)  # a model reference table
                and isinstance(v.get("params", {}), dict)):
            return v["name"] + bracket(v.get("params") or {})
        return str(v)  # anything else, a malformed reference included (validate rejects it)

    return "[" + ",".join(f"{k}={show(values[k])}" for k in sorted(values)) + "]" if values else ""


def default_label(name: str, params: dict[str, Any], sampling: dict[str, Any] | None = None) -> str:
    """``name[params][sampling]``, each bracket only when non-empty: ``vae[latent_dim=4]``,
    ``ddpm[sampler=ddim,steps=50]``."""
    return name + bracket(params) + bracket(sampling or {})
