"""What is installed: ``genbench list KIND``, ``genbench show KIND NAME`` and
``genbench plugins``."""

from __future__ import annotations

import json

import click

from genbench.cli.group import cli, registries


def _description(cls: type) -> str:
    return getattr(cls, "description", "") or (cls.__doc__ or "").strip().split("\n")[0]


def _model_row(e) -> list:
    cls = e.obj
    return [e.name, cls.family, ",".join(cls.data_kinds), ",".join(cls.capabilities()), e.plugin,
            _description(cls)]


def _dataset_row(e) -> list:
    cls = e.obj
    try:
        d = cls.describe()
    except Exception as exc:  # a dataset that cannot describe itself is still listed
        return [e.name, "?", "?", "?", "?", e.plugin, f"{_description(cls)} [{exc}]"]
    shape = "x".join(map(str, d["shape"])) if d.get("shape") else "?"
    return [e.name, d.get("kind") or "?", shape, _count(d, "classes"), _count(d, "modes"),
            e.plugin, _description(cls)]


def _count(described: dict, key: str):
    """A count from ``describe()``: ``?`` where it is not known, ``-`` where there is none."""
    return "?" if key not in described else described[key] or "-"


def _metric_row(e) -> list:
    cls = e.obj
    return [e.name, ",".join(cls.data_kinds), ",".join(cls.requires), e.plugin, _description(cls)]


def _plain_row(e) -> list:
    return [e.name, e.plugin, _description(e.obj)]


def _protocol_row(e) -> list:
    cls = e.obj
    return [e.name, cls.extractor, cls.num_samples or "any", ",".join(cls.metrics), e.plugin,
            _description(cls)]


def _executor_row(e) -> list:
    import dataclasses

    options = ",".join(f.name for f in dataclasses.fields(e.obj.Options)) or "-"
    return [e.name, options, e.plugin, _description(e.obj)]


#: ``genbench list KIND``: the table's headers and how a registry entry becomes a row.
_LIST_TABLES = {
    "models": (["name", "family", "data", "capabilities", "plugin", "description"], _model_row),
    "datasets": (["name", "kind", "shape", "classes", "modes", "plugin", "description"],
                 _dataset_row),
    "metrics": (["name", "data", "needs", "plugin", "description"], _metric_row),
    "samplers": (["name", "plugin", "description"], _plain_row),
    "extractors": (["name", "plugin", "description"], _plain_row),
    "formats": (["name", "plugin", "description"], _plain_row),
    "executors": (["name", "options", "plugin", "description"], _executor_row),
    "protocols": (["name", "extractor", "samples", "metrics", "plugin", "description"],
                  _protocol_row),
}


@click.command(name="list")
@click.argument("kind", type=click.Choice(list(_LIST_TABLES)))
def list_(kind):
    """List the registered models, datasets, metrics, samplers, feature extractors, output
    formats, executors or evaluation protocols."""
    from tabulate import tabulate

    headers, row = _LIST_TABLES[kind]
    rows = [row(e) for e in registries([kind]).by_kind(kind)]
    if not rows:
        click.echo(f"no {kind} registered (plugins add them through a register_* hook; "
                   "`genbench plugins --all` shows what is installed)")
        return
    click.echo(tabulate(rows, headers=headers, tablefmt="simple",
                        maxcolwidths=[None] * (len(headers) - 1) + [60]))


# -- genbench show ------------------------------------------------------------------------

#: Constructor arguments genbench passes to every feature extractor itself (torch-fidelity's
#: own), so they are not options a user sets.
_EXTRACTOR_FRAMEWORK_PARAMS = ("name", "features_list", "feature_extractor_weights_path",
                               "verbose")


def _rows(declared: dict, skip: tuple[str, ...] = ()) -> list[dict]:
    """Rows ``{name, default, type, required}`` for declared parameters (see
    :mod:`genbench.registry.parameters`); ``type`` says what is allowed (``int >= 1``)."""
    from genbench.api.model import ModelRef

    return [{"name": name, "default": None if p.required else p.default,
             "type": "model" if isinstance(p.default, ModelRef) else p.allowed,
             "required": p.required}
            for name, p in declared.items() if name not in skip]


def _options(cls: type, skip: tuple[str, ...] = ()) -> list[dict]:
    from genbench.registry.parameters import parameters

    return _rows(parameters(cls), skip)


def _model_details(cls: type) -> dict:
    from genbench.registry.parameters import parameters, sampling_parameters, sampling_settings

    sampling_settings(cls)  # a setting without a default is refused here, naming the model
    return {"family": cls.family, "data_kinds": list(cls.data_kinds),
            "capabilities": list(cls.capabilities()),
            "hyperparameters": _rows(parameters(cls)),
            "sampling_settings": _rows(sampling_parameters(cls))}


def _dataset_details(cls: type) -> dict:
    try:
        data = dict(cls.describe()) or "not described (known only once the data is loaded)"
    except Exception as exc:  # data that is absent is still shown, with the reason
        data = f"unavailable: {type(exc).__name__}: {exc}"
    return {"data": data, "options": _options(cls)}


def _metric_details(cls: type) -> dict:
    return {"data_kinds": list(cls.data_kinds), "requires": list(cls.requires),
            "higher_is_better": dict(cls.higher_is_better), "primary": cls.primary,
            "options": _options(cls)}


def _sampler_details(cls: type) -> dict:
    return {"options": _options(cls)}


def _executor_details(cls: type) -> dict:
    """Its ``[executor_options]`` (the fields of its ``Options`` dataclass) and what it needs."""
    return {"requires": list(cls.requires), "install": cls.install,
            "options": _options(cls.Options)}


def _extractor_details(cls: type) -> dict:
    details = {"input_format": getattr(cls, "input_format", "uint8")}
    for attr in ("weights_filename", "weights_sha256", "weights_url"):
        if getattr(cls, attr, None):
            details[attr] = getattr(cls, attr)
    details["options"] = _options(cls, skip=_EXTRACTOR_FRAMEWORK_PARAMS)
    return details


def _protocol_details(cls: type) -> dict:
    """Everything the protocol fixes: extractor, resize, counts, metrics and their options."""
    return cls.describe()


#: ``genbench show KIND NAME``: what is shown beyond name, description, plugin and class.
_SHOW_DETAILS = {"model": _model_details, "dataset": _dataset_details,
                 "metric": _metric_details, "sampler": _sampler_details,
                 "extractor": _extractor_details, "executor": _executor_details,
                 "protocol": _protocol_details}
#: Details shown as tables of parameters.
_PARAMETER_TABLES = ("hyperparameters", "sampling_settings", "options")


def _show_value(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}({_show_value(v) if v else ''})" if isinstance(v, dict) else f"{k}={v}"
                         for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return "-" if value is None or value == "" else str(value)


def _render(info: dict) -> str:
    """``info`` as text: a two-column table of its fields, then one table per parameter list."""
    from tabulate import tabulate

    origin = f" ({info['distribution']} {info['version']})" if info["distribution"] else ""
    shown = {**info, "plugin": info["plugin"] + origin}
    fields = [[k.replace("_", " "), _show_value(v)] for k, v in shown.items()
              if k not in _PARAMETER_TABLES + ("kind", "name", "distribution", "version")]
    parts = [f"{info['kind']} {info['name']}",
             tabulate(fields, tablefmt="plain", maxcolwidths=[None, 80], disable_numparse=True)]
    for key in _PARAMETER_TABLES:
        if key not in info:
            continue
        title = key.replace("_", " ").replace("hyperparameters", "hyper-parameters")
        rows = [[r["name"], "<required>" if r["required"] else repr(r["default"]), r["type"]]
                for r in info[key]]
        parts.append(f"\n{title}:\n" + (tabulate(rows, headers=["name", "default", "type"],
                                                   tablefmt="simple", disable_numparse=True)
                                          if rows else "(none)"))
    return "\n".join(parts)


def _markdown(info: dict) -> str:
    """``info``'s parameter tables as Markdown, for a plugin's docs: one table per list, with
    what each parameter allows as its declaration says (``int >= 1``)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    parts = [f"### {info['kind']} `{info['name']}`", "", info["description"] or ""]
    for key in _PARAMETER_TABLES:
        if not info.get(key):
            continue
        title = key.replace("_", " ").replace("hyperparameters", "hyper-parameters")
        parts += ["", f"{title.capitalize()}:", "", "| name | default | allowed |",
                  "| --- | --- | --- |"]
        for r in info[key]:
            default = "required" if r["required"] else f"`{r['default']!r}`"
            parts.append(f"| `{r['name']}` | {cell(default)} | {cell(r['type'])} |")
    return "\n".join(parts)


def _json_default(value):
    to_dict = getattr(value, "to_dict", None)  # a ModelRef: {"name": ..., "params": ...}
    return to_dict() if callable(to_dict) else repr(value)


@click.command()
@click.argument("kind", type=click.Choice(list(_SHOW_DETAILS)))
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--markdown", is_flag=True,
              help="Print the parameter tables as Markdown (for a plugin's docs).")
def show(kind, name, as_json, markdown):
    """Everything about one registered model, dataset, metric, sampler, extractor, executor
    or protocol: its plugin and class, and every hyper-parameter, option or sampling setting
    with its default and type (for a protocol: everything it fixes)."""
    from genbench.registry.manager import default_plugin_manager

    entry = registries([kind + "s"]).by_kind(kind + "s").entry(name)
    cls = entry.obj
    distribution, version = default_plugin_manager().origin(entry.plugin)
    info = {"kind": kind, "name": entry.name, "description": _description(cls),
            "plugin": entry.plugin, "distribution": distribution, "version": version,
            "class": f"{cls.__module__}:{cls.__qualname__}", **_SHOW_DETAILS[kind](cls)}
    if as_json:
        click.echo(json.dumps(info, indent=2, default=_json_default))
    else:
        click.echo(_markdown(info) if markdown else _render(info))


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
def plugins(show_all):
    """Installed plugins as JSON: name, version, distribution, hooks and status ("ok", or
    "broken" with the error that left it out)."""
    from genbench.registry.manager import default_plugin_manager, plugin_info

    cli._add_plugin_commands()  # where a plugin's register_commands can fail
    registries()  # where its register_* hooks can fail
    click.echo(json.dumps(plugin_info(default_plugin_manager(), include_builtins=show_all),
                          indent=2))
