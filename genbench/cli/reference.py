"""``genbench reference``: build a reference statistics file from a dataset's split
(:func:`genbench.evaluation.reference_build.build_reference_file`), or show what one holds
(:func:`genbench.features.reference_files.read_reference_file`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from genbench.cli.group import registries


@click.group("reference")
def reference() -> None:
    """Reference statistics files: the features of a dataset's split, with provenance."""


def _shapes(ref) -> list[str]:
    lines = []
    if ref.mu is not None:
        lines.append(f"mu: {tuple(ref.mu.shape)} {ref.mu.dtype}, "
                     f"sigma: {tuple(ref.sigma.shape)} {ref.sigma.dtype}")
    for layer, t in (ref.features or {}).items():
        lines.append(f"features_{layer}: {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}")
    if ref.images is not None:
        n, c, h, w = ref.images.shape
        lines.append(f"arr_0: ({n}, {h}, {w}, {c}) uint8 images")
    return lines


def _parse_params(items: tuple[str, ...]) -> dict:
    """``NAME=VALUE`` pairs as a parameter mapping; each VALUE read as a TOML value."""
    import tomllib

    from genbench.api.errors import ConfigError

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--param {item!r} is not NAME=VALUE (a dataset parameter, "
                              "such as n_test=500)")
        try:
            out[name.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[name.strip()] = value  # a bare word: text
    return out


@reference.command("build")
@click.argument("dataset")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
              help="The split whose features the file holds.")
@click.option("--extractor", default=None,
              help="Feature extractor (default: the dataset's, else raw for vectors).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The .npz file to write.")
@click.option("--max-items", type=click.IntRange(min=1), default=None,
              help="At most this many items: the fixed seeded subset an evaluation takes.")
@click.option("--images", "include_images", is_flag=True,
              help="Also store the items as uint8 NHWC images (arr_0, ADM's reference-batch layout).")
@click.option("--feature-weights", default=None, help="The extractor's weights file.")
@click.option("--data-root", default=None, help="Where datasets are stored (default: GENBENCH_DATA).")
@click.option("--download", is_flag=True, help="Download the dataset if it is missing.")
@click.option("--device", default="cpu", show_default=True, help="Where the extractor runs.")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A dataset parameter, as in a spec's params (VALUE is read as TOML: "
                   "3, 0.5, true, \"text\"; a bare word is text); repeatable.")
def build_command(dataset, split, extractor, output, max_items, include_images, feature_weights,
                  data_root, download, device, params) -> None:
    """Write the features split --split of DATASET gives every feature metric to --output."""
    from genbench.evaluation.reference_build import build_reference_file

    ref = build_reference_file(
        registries(["datasets", "extractors"]), dataset, split=split, extractor=extractor,
        out=output, data_root=data_root, download=download, feature_weights=feature_weights,
        max_items=max_items, device=device, include_images=include_images,
        dataset_params=_parse_params(params))
    prov = ref.provenance
    click.echo(f"wrote {output}: {prov['dataset']} {split}, {prov['n']} of {prov['n_total']} items, "
               f"extractor {prov['extractor']}")
    for line in _shapes(ref):
        click.echo(f"  {line}")


@reference.command("show")
@click.argument("file", type=click.Path(path_type=Path))
def show_command(file) -> None:
    """Print what the reference file FILE holds and where it came from."""
    from genbench.features.reference_files import read_reference_file

    ref = read_reference_file(file)
    if ref.foreign:
        click.echo(f"{file}: foreign file (ADM layout), {ref.n} images")
    else:
        click.echo(json.dumps(ref.provenance, indent=2, sort_keys=True))
    for line in _shapes(ref):
        click.echo(line)
