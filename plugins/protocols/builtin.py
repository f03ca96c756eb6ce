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
    """FID, IS, KID and precision/recall as ``torch_fidelity.calculate_metrics`` computes
    them with its defaults, on its TF-compatible InceptionV3."""

    description = ("FID, IS, KID (100 subsets of 1,000) and precision/recall (k = 3) on "
                   "torch-fidelity's InceptionV3, with torch-fidelity's defaults")
    source = ("torch-fidelity 0.4 (Obukhov et al. 2020), calculate_metrics defaults; the "
              "network and weights of Heusel et al. 2017's TF FID code")
    extractor = "inception-v3-compat"
    resize = ("inside the network: uint8 images resized to 299 x 299 by torch-fidelity's "
              "TF-1-compatible bilinear interpolation (align_corners=False, no antialiasing)")
    reference = "the dataset's test split, up to 10,000 items (a fixed seeded subset when larger)"
    metrics = _TORCH_FIDELITY_METRICS


class GenbenchDigits(Protocol):
    """The default suite's sample metrics on 8x8 digits, in the shipped classifier's features."""

    description = ("FID, KID, precision/recall (k = 3) and density/coverage (k = 5) on "
                   "1,000 samples in digits-cnn features: the default suite's protocol for "
                   "8x8 digits")
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
