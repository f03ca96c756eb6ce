"""Built-in evaluation protocols: ``torch-fidelity`` and ``genbench-digits``.

Each fixes the extractor, its input preparation, the metrics with their options and the
sample count; ``genbench show protocol NAME`` prints them. The papers' presets that need
extractors or metrics genbench does not ship yet (ADM's sFID, EDM2's FD-DINOv2 beside FID,
clean-fid's resize, CMMD) are not registered under those names until they compute what the
papers do.
"""

from genbench import Protocol, hookimpl

#: torch-fidelity's defaults for the four metrics (``torch_fidelity.defaults``).
_TORCH_FIDELITY_METRICS = {
    "fid": {"max_reference": 10_000},
    "isc": {"splits": 10, "rng_seed": 2020},
    "kid": {"max_reference": 10_000, "subsets": 100, "subset_size": 1000, "rng_seed": 2020},
    "prc": {"max_reference": 10_000, "neighborhood": 3},
}


class TorchFidelity(Protocol):
    """FID, IS, KID and precision/recall with ``torch_fidelity.calculate_metrics``' default
    options, on its TF-compatible InceptionV3.

    Its numbers equal ``calculate_metrics``' on the same two sets when the reference is the
    whole test split of at most 10,000 items, at least 1,000 samples are scored (KID's
    subset size) and, for precision/recall, as many samples as reference items: genbench
    compares with at most 10,000 test items (a fixed seeded subset of a larger split),
    shrinks KID's subsets to the smaller set, and scores precision/recall on equal counts,
    where ``calculate_metrics`` takes its second input whole."""

    description = ("FID, IS, KID (100 subsets of 1,000) and precision/recall (k = 3) on "
                   "torch-fidelity's InceptionV3 with torch-fidelity's default options, "
                   "against up to 10,000 test items")
    source = ("torch-fidelity 0.4 (Obukhov et al. 2020), calculate_metrics defaults; the "
              "network and weights of Heusel et al. 2017's TF FID code")
    extractor = "inception-v3-compat"
    resize = ("inside the network: uint8 images resized to 299 x 299 by torch-fidelity's "
              "TF-1-compatible bilinear interpolation (align_corners=False, no antialiasing)")
    reference = "the dataset's test split, up to 10,000 items (a fixed seeded subset when larger)"
    metrics = _TORCH_FIDELITY_METRICS


class GenbenchDigits(Protocol):
    """Feature metrics on 8x8 digits in the shipped classifier's features, with the default
    suite's options and sample count."""

    description = ("FID, KID, precision/recall (k = 3) and density/coverage (k = 5) on "
                   "1,000 samples in digits-cnn features, with the default suite's options")
    source = "genbench's default suite (leaderboards/default)"
    extractor = "digits-cnn"
    resize = "none: 8 x 8 images go to the classifier as they are (uint8, scaled to [0, 1])"
    num_samples = 1000
    reference = "the digits test split (all of it)"
    metrics = {
        "fid": {"max_reference": 10_000},
        "kid": {"max_reference": 10_000, "subsets": 100, "subset_size": 1000, "rng_seed": 2020},
        "prc": {"max_reference": 10_000, "neighborhood": 3},
        "prdc": {"k": 5, "max_reference": 10_000},
    }


@hookimpl
def register_protocols(register):
    register("torch-fidelity", TorchFidelity)
    register("genbench-digits", GenbenchDigits)
