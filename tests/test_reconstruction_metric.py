"""The ``recon`` metric (plugins/metrics/reconstruction.py): MSE, PSNR and SSIM of the test
split's reconstructions, measured through ``genbench.evaluate`` on reconstructions whose
errors are known, and checked against the definitions.

SSIM is Wang et al. (2004) with their 11x11 Gaussian window (sigma 1.5, population
moments), averaged over the windows that lie inside the image, then over channels and
images; data range 1. Images under 11 pixels (8x8 digits) get the largest odd Gaussian
window that fits, sigma 1.5 * size / 11, named in the details.
"""

import math

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

import genbench
from genbench import BenchmarkDataset, DataInfo, GenerativeModel, TensorSplit


class Reconstructs(GenerativeModel):
    """A model whose reconstruction of ``x`` is ``fn(x)``: errors known, nothing trained
    (its samples, which evaluate draws and recon ignores, are mid-grey)."""

    def __init__(self, fn, shape):
        super().__init__()
        self.fn, self.shape = fn, shape

    def reconstruct(self, x):
        return self.fn(x)

    def sample(self, n, generator=None):
        return torch.full((n, *self.shape), 0.5)


def recon_record(registries, fn, dataset="digits", **params):
    """recon's record (values, details) for the reconstructions ``fn`` of the test split of
    ``dataset`` (a registered name built with ``params``, or an instance)."""
    data = registries.datasets.get(dataset)(**params) if isinstance(dataset, str) else dataset
    scored = genbench.evaluate(Reconstructs(fn, data.info().shape), data, metrics=["recon"],
                               num_samples=8, registries=registries)
    record = scored["recon"]
    assert record.status == "ok", record.message
    return record


def recon(registries, fn, dataset="digits", **params):
    """recon's values (see :func:`recon_record`)."""
    return recon_record(registries, fn, dataset, **params).values


def split_items(registries, dataset="digits", **params):
    return registries.datasets.get(dataset)(**params).tensors("test")[0]


def gaussian_weights(size: int, sigma: float) -> np.ndarray:
    """Wang et al.'s window: ``size`` x ``size`` circular Gaussian weights, unit sum."""
    offsets = np.arange(size) - (size - 1) / 2
    w = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2))
    return w / w.sum()


def ssim_by_definition(a: np.ndarray, b: np.ndarray, size: int, sigma: float) -> float:
    """SSIM of two one-channel images in [0, 1] (Wang et al. 2004, eqs. 13-16, C1 = (0.01 L)^2,
    C2 = (0.03 L)^2, L = 1): the mean over every ``size`` x ``size`` window inside the image
    of the index computed from the window's Gaussian-weighted means, variances and
    covariance."""
    c1, c2 = 0.01**2, 0.03**2
    w = gaussian_weights(size, sigma).ravel()
    wa = sliding_window_view(a, (size, size)).reshape(-1, size * size)
    wb = sliding_window_view(b, (size, size)).reshape(-1, size * size)
    mu_a, mu_b = wa @ w, wb @ w
    da, db = wa - mu_a[:, None], wb - mu_b[:, None]
    var_a, var_b, cov = (da**2) @ w, (db**2) @ w, (da * db) @ w
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
             / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(index.mean())


def mean_ssim_by_definition(x: torch.Tensor, r: torch.Tensor, size: int, sigma: float) -> float:
    """The mean over images of the mean over channels of :func:`ssim_by_definition`."""
    x, r = x.double().numpy(), r.double().numpy()
    return float(np.mean([np.mean([ssim_by_definition(xc, rc, size, sigma)
                                   for xc, rc in zip(xi, ri)]) for xi, ri in zip(x, r)]))


#: The fallback window on 8x8 images: the largest odd size that fits, sigma 1.5 * 7 / 11.
SMALL = (7, 1.5 * 7 / 11)


class RandomImages(BenchmarkDataset):
    """Uniform random ``channels`` x ``side`` x ``side`` images, a fixed seed per split."""

    description = "test dataset: random images"

    def __init__(self, side: int, channels: int = 1):
        self.side, self.channels = side, channels

    def split(self, name):
        g = torch.Generator().manual_seed(["train", "test"].index(name))
        return TensorSplit(torch.rand(12, self.channels, self.side, self.side, generator=g))

    def info(self):
        return DataInfo(f"random{self.side}", "image", (self.channels, self.side, self.side),
                        fingerprint=f"random-{self.channels}-{self.side}")


def test_a_perfect_reconstruction_has_no_error_infinite_psnr_and_ssim_one(registries):
    values = recon(registries, lambda x: x.clone())
    assert values["mse"] == 0.0
    assert values["psnr"] == math.inf  # psnr() documents inf for a zero MSE
    assert values["ssim"] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("d", [0.25, 0.125, 1 / 64])
def test_an_error_of_d_on_every_pixel_gives_mse_d_squared_and_psnr_minus_20_log10_d(registries,
                                                                                     d):
    # +d on dark pixels and -d on bright ones: |error| = d everywhere and every value stays in
    # [0, 1], so clamping changes nothing. Digits are k/16 and d a power of two: exact.
    values = recon(registries, lambda x: torch.where(x < 0.5, x + d, x - d))
    assert values["mse"] == d**2
    assert values["psnr"] == pytest.approx(-20 * math.log10(d), rel=1e-12)
    assert values["psnr"] == pytest.approx({0.25: 12.0412, 0.125: 18.0618, 1 / 64: 36.1236}[d],
                                           abs=1e-4)  # dB, from a table


def blur_and_shift(x):
    """A structured, imperfect reconstruction inside [0, 1]: a horizontal blur, lifted."""
    return 0.6 * x + 0.3 * x.roll(1, dims=-1) + 0.05


@pytest.mark.parametrize("side, channels", [(16, 1), (32, 3), (11, 1)])
def test_ssim_is_wang_et_als_gaussian_11x11_window_where_it_fits(registries, side, channels):
    """Random images large enough for the 11x11 window: scikit-image with the paper's
    settings and the definition computed here agree with recon."""
    from skimage.metrics import structural_similarity

    data = RandomImages(side, channels)
    record = recon_record(registries, blur_and_shift, data)
    x = data.tensors("test")[0]
    r = blur_and_shift(x)
    assert record.details["ssim_window"].startswith("gaussian 11x11 sigma 1.5 ")
    skimage_ssim = np.mean([
        structural_similarity(xi, ri, data_range=1.0, channel_axis=0, gaussian_weights=True,
                              sigma=1.5, use_sample_covariance=False)
        for xi, ri in zip(x.double().numpy(), r.double().numpy())])
    assert record.values["ssim"] == pytest.approx(skimage_ssim, abs=1e-6)
    expected = mean_ssim_by_definition(x, r, 11, 1.5)
    assert record.values["ssim"] == pytest.approx(expected, abs=1e-9)
    # the window matters: a uniform 7x7 window with sample covariances gives another value
    uniform = np.mean([
        structural_similarity(xi, ri, data_range=1.0, channel_axis=0, win_size=7)
        for xi, ri in zip(x.double().numpy(), r.double().numpy())])
    assert abs(record.values["ssim"] - uniform) > 1e-3


@pytest.mark.parametrize("dataset, params", [("digits", {}),
                                             ("stacked-digits", {"n_train": 10, "n_test": 40})])
def test_ssim_on_8x8_images_is_the_named_fallback_window(registries, dataset, params):
    from skimage.metrics import structural_similarity

    record = recon_record(registries, blur_and_shift, dataset, **params)
    values = record.values
    x = split_items(registries, dataset, **params)
    r = blur_and_shift(x)
    assert x.shape[1:] in ((1, 8, 8), (3, 8, 8))  # under 11 pixels: the fallback
    assert record.details["ssim_window"] == ("gaussian 7x7 sigma 0.9545 (fallback: images "
                                             "under 11 pixels; sigma = 1.5 * 7 / 11)")
    assert values["mse"] == pytest.approx(torch.mean((r.double() - x.double())**2).item(),
                                          rel=1e-12)
    expected = mean_ssim_by_definition(x, r, *SMALL)
    assert 0.3 < expected < 0.95  # neither trivial nor perfect
    assert values["ssim"] == pytest.approx(expected, rel=1e-9)
    skimage_ssim = np.mean([
        structural_similarity(xi, ri, data_range=1.0, channel_axis=0, win_size=7,
                              gaussian_weights=True, sigma=SMALL[1], use_sample_covariance=False)
        for xi, ri in zip(x.double().numpy(), r.double().numpy())])
    assert values["ssim"] == pytest.approx(skimage_ssim, rel=1e-9)


def test_image_reconstructions_are_clamped_to_0_1_before_they_are_compared(registries):
    def overshoot(x):  # values in [-0.25, 1.25]
        return 1.5 * x - 0.25

    values = recon(registries, overshoot)
    x = split_items(registries)
    clamped = overshoot(x).clamp(0, 1)
    mse = torch.mean((clamped.double() - x.double())**2).item()
    unclamped = torch.mean((overshoot(x).double() - x.double())**2).item()
    assert mse < 0.8 * unclamped  # the clamp matters here
    assert values["mse"] == pytest.approx(mse, rel=1e-12)
    assert values["psnr"] == pytest.approx(-10 * math.log10(mse), rel=1e-12)
    assert values["ssim"] == pytest.approx(mean_ssim_by_definition(x, clamped, *SMALL), rel=1e-9)


def test_vector_reconstructions_are_not_clamped_and_have_only_an_mse(registries):
    values = recon(registries, lambda x: 2 * x + 5, "ring8")
    x = split_items(registries, "ring8")
    assert set(values) == {"mse"}
    assert values["mse"] == pytest.approx(torch.mean((x.double() + 5)**2).item(), rel=1e-6)
