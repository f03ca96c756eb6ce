"""The ``recon`` metric (plugins/metrics/reconstruction.py): MSE, PSNR and SSIM of the test
split's reconstructions, measured through ``genbench.evaluate`` on reconstructions whose
errors are known, and checked against the definitions.

SSIM is Wang et al. (2004) with a uniform 7x7 window and sample (co)variances, averaged
over the windows that lie inside the image, then over channels and images; data range 1.
"""

import math

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

import genbench
from genbench import GenerativeModel

#: The SSIM window recon uses on images of at least 7x7 pixels.
WINDOW = 7


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


def recon(registries, fn, dataset="digits", **params):
    """recon's values for the reconstructions ``fn`` of the test split of ``dataset`` built
    with ``params``."""
    data = registries.datasets.get(dataset)(**params)
    scored = genbench.evaluate(Reconstructs(fn, data.info().shape), data, metrics=["recon"],
                               num_samples=8, registries=registries)
    record = scored["recon"]
    assert record.status == "ok", record.message
    return record.values


def split_items(registries, dataset="digits", **params):
    return registries.datasets.get(dataset)(**params).tensors("test")[0]


def ssim_by_definition(a: np.ndarray, b: np.ndarray, win: int = WINDOW) -> float:
    """SSIM of two one-channel images in [0, 1] (Wang et al. 2004, eq. 13, C1 = (0.01 L)^2,
    C2 = (0.03 L)^2, L = 1): the mean over every ``win`` x ``win`` window inside the image
    of the index computed from the window's means and sample (N - 1) (co)variances."""
    c1, c2 = 0.01**2, 0.03**2
    wa = sliding_window_view(a, (win, win)).reshape(-1, win * win)
    wb = sliding_window_view(b, (win, win)).reshape(-1, win * win)
    mu_a, mu_b = wa.mean(1), wb.mean(1)
    var_a, var_b = wa.var(1, ddof=1), wb.var(1, ddof=1)
    cov = ((wa - mu_a[:, None]) * (wb - mu_b[:, None])).sum(1) / (win * win - 1)
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
             / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(index.mean())


def mean_ssim_by_definition(x: torch.Tensor, r: torch.Tensor) -> float:
    """The mean over images of the mean over channels of :func:`ssim_by_definition`."""
    x, r = x.double().numpy(), r.double().numpy()
    return float(np.mean([np.mean([ssim_by_definition(xc, rc) for xc, rc in zip(xi, ri)])
                          for xi, ri in zip(x, r)]))


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


@pytest.mark.parametrize("dataset, params", [("digits", {}),
                                             ("stacked-digits", {"n_train": 10, "n_test": 40})])
def test_ssim_is_the_definitions_and_scikit_images_with_a_uniform_7x7_window(registries,
                                                                             dataset, params):
    from skimage.metrics import structural_similarity

    values = recon(registries, blur_and_shift, dataset, **params)
    x = split_items(registries, dataset, **params)
    r = blur_and_shift(x)
    assert x.shape[1:] in ((1, 8, 8), (3, 8, 8))  # a 7x7 window fits
    assert values["mse"] == pytest.approx(torch.mean((r.double() - x.double())**2).item(),
                                          rel=1e-12)
    expected = mean_ssim_by_definition(x, r)
    assert 0.3 < expected < 0.95  # neither trivial nor perfect
    assert values["ssim"] == pytest.approx(expected, rel=1e-9)
    skimage_ssim = np.mean([
        structural_similarity(xi, ri, data_range=1.0, win_size=WINDOW, channel_axis=0,
                              gaussian_weights=False, use_sample_covariance=True)
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
    assert values["ssim"] == pytest.approx(mean_ssim_by_definition(x, clamped), rel=1e-9)


def test_vector_reconstructions_are_not_clamped_and_have_only_an_mse(registries):
    values = recon(registries, lambda x: 2 * x + 5, "ring8")
    x = split_items(registries, "ring8")
    assert set(values) == {"mse"}
    assert values["mse"] == pytest.approx(torch.mean((x.double() + 5)**2).item(), rel=1e-6)
