"""``genbench eval``: score samples made elsewhere, store the row, print the board."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from genbench.cli.group import registries
from genbench.cli.options import DEFAULT_OUT, csv_list


@click.command("eval")
@click.argument("samples", type=click.Path(path_type=Path))
@click.option("--reference", "-r", required=True,
              help="What the samples are compared with: a registered dataset (digits, or "
                   "digits:test), another sample set (folder, zip, .npz/.npy, .csv), or a "
                   "reference statistics file from `genbench reference build`.")
@click.option("--metrics", help="Comma-separated metric names (default: every metric; those "
                                "that do not apply are recorded as skipped, with the reason).")
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: the row goes into OUT/results.db, boards into OUT/leaderboards.")
@click.option("--label", help="The row's name (default: the file or folder name).")
@click.option("--suite", default="eval", show_default=True,
              help="Suite to store the row under; a trained suite's name ranks it beside "
                   "that suite's rows.")
@click.option("--num-samples", "-n", type=click.IntRange(min=1),
              help="Score the first N samples (default: all of them).")
@click.option("--protocol", "-p",
              help="A registered evaluation protocol (`genbench list protocols`): it chooses "
                   "the extractor, the metrics with their options and the sample count, and "
                   "every value records it.")
@click.option("--extractor", help="Feature extractor (default: the reference dataset's).")
@click.option("--feature-weights", type=click.Path(dir_okay=False),
              help="Weights file of --extractor.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the metrics' own random draws (subsets, bootstraps).")
@click.option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
@click.option("--data-root", type=click.Path(file_okay=False),
              help="Where datasets are stored (default: $GENBENCH_DATA or ~/.cache/genbench/data).")
@click.option("--download", is_flag=True, default=None,
              help="Allow downloading the reference dataset if it is missing.")
@click.option("--force", is_flag=True, help="Score again even if this row is stored.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def eval_(samples, reference, metrics, out_dir, label, suite, num_samples, protocol, extractor,
          feature_weights, seed, device, data_root, download, force, quiet):
    """Score the sample set SAMPLES against a reference and store the row.

    SAMPLES is a folder of images (png, jpg, webp; searched recursively), a zip of them, an
    .npz/.npy array (the ADM/EDM layout: arr_0 uint8 NHWC; or NCHW floats in [0, 1]), or
    vectors (.npy, .csv). The row is stored in OUT/results.db like a trained model's, with
    the files' content hash, count, shape and value range; new content under the same path
    is scored again. Exit status: 0 when every metric ran or was skipped with its reason, 1
    when one failed, 2 for bad input (nothing is stored).
    """
    from genbench.execution.sample_scoring import score_samples

    result = score_samples(
        samples, reference=reference, metrics=csv_list(metrics), out=out_dir, label=label,
        suite=suite, num_samples=num_samples, protocol=protocol, extractor=extractor,
        feature_weights=feature_weights, seed=seed, device=device, data_root=data_root,
        download=download, force=force, progress=False if quiet else None,
        echo=(lambda s: None) if quiet else (lambda s: click.echo(s, err=True)),
        registries=registries())
    for board in result.boards.values():
        click.echo(board.to_text())
    if not result.ok:
        click.echo("some metrics failed; see `genbench results --failed`", err=True)
        sys.exit(1)
