"""The GAN family: gan, dcgan, wgan-gp and the stabilisers, each checked against its paper's
definition on tiny, known inputs."""

import copy
import math

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from genbench import Budget, DataInfo
from genbench.cli.commands import cli
from genbench.registry.parameters import construct, hyperparameters
from genbench.api.errors import ConfigError
from genbench.execution.training import Trainer, train
from genbench_plugins.models.gans.dcgan import DCGAN
from genbench_plugins.models.gans.gan import GAN
from genbench_plugins.models.gans.stabilisers import (MinibatchDiscrimination, ReplayBuffer,
                                                      Stabilisers, normalised_layers, pack,
                                                      pyramid)
from genbench_plugins.models.gans.wgan_gp import WGANGP, gradient_penalty
from helpers import Interrupted, interrupt_at, params_equal

GANS = ("gan", "dcgan", "wgan-gp")
#: Small networks for the tests that are not about the default sizes.
TINY = {"gan": dict(g_hidden=(16, 16), d_hidden=(16, 16)),
        "dcgan": dict(channels=8, max_channels=16),
        "wgan-gp": dict(hidden=(16, 16), channels=8, max_channels=16)}


def image_info(c, h, w=None):
    return DataInfo(name=f"img{h}", kind="image", shape=(c, h, w or h))


@pytest.fixture
def grid25(registries):
    return registries.datasets.get("grid25")(n_train=2000, n_test=500)


# -- registration -------------------------------------------------------------------------

def test_registered_in_the_gan_family_with_every_stabiliser_option(registries):
    for name in GANS:
        cls = registries.models.get(name)
        assert cls.family == "gan" and "train_step" in cls.capabilities()
        params = hyperparameters(cls)
        # each stabiliser is an option of every model, off by default, with one default
        for option in Stabilisers.names():
            assert params[option] == getattr(Stabilisers, option), (name, option)
        for option in ("lr_d", "lr_g", "d_steps", "d_pretrain_steps"):
            assert option in params
    assert registries.models.get("dcgan").data_kinds == ("image",)
    assert hyperparameters(GAN)["loss"] == "non-saturating"
    assert hyperparameters(WGANGP)["d_steps"] == 5 and hyperparameters(WGANGP)["gp_weight"] == 10


def test_cli_lists_them_with_family_kinds_and_defaults():
    listing = CliRunner().invoke(cli, ["list", "models"], catch_exceptions=False).output
    for name in GANS:
        assert any(line.split()[:2] == [name, "gan"] for line in listing.splitlines()), name
    shown = CliRunner().invoke(cli, ["show", "model", "gan"], catch_exceptions=False).output
    assert "image, vector" in shown
    for option, default in [("pack", "1"), ("experience_replay", "False"),
                            ("replay_rate", "0.5"), ("multiscale", "1"),
                            ("spectral_norm", "False"), ("minibatch_discrimination", "False"),
                            ("loss", "'non-saturating'"), ("betas", "(0.8, 0.999)")]:
        assert any(line.split(maxsplit=1)[:1] == [option] and line.split(maxsplit=1)[1]
                   .startswith(default) for line in shown.splitlines()), option


def test_paper_defaults():
    grid = DataInfo(name="grid", kind="vector", shape=(2,))
    g = GAN(grid)  # PacGAN's synthetic setup
    assert g.latent_dim == 2 and g.g_hidden == [400] * 4 and g.d_hidden == [200] * 3
    assert sum(isinstance(m, nn.BatchNorm1d) for m in g.generator) == 4
    assert g.opt_g.defaults["lr"] == 1e-4 and g.opt_g.defaults["betas"][0] == 0.8
    assert g.discriminator.trunks[0][1].pieces == 5
    d = DCGAN(image_info(3, 64))
    assert d.latent_dim == 100 and d.opt_d.defaults["lr"] == 2e-4
    assert d.opt_d.defaults["betas"][0] == 0.5
    convs = [m for m in d.discriminator.trunks[0] if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512]  # the paper's 64 px D
    assert all(c.stride == (2, 2) and c.kernel_size == (4, 4) for c in convs)
    slopes = {m.negative_slope for m in d.discriminator.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.discriminator.trunks[0][:2])
    assert isinstance(d.generator[-1], nn.Tanh)
    assert not isinstance(d.generator[-2], nn.BatchNorm2d)
    w = WGANGP(grid)
    assert w.opt_d.defaults["betas"] == (0.5, 0.9) and w.batches_per_step == 5
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))
                   for m in WGANGP(image_info(1, 28)).discriminator.modules())


# -- brief training on digits and grid25 -----------------------------------------------------

@pytest.mark.parametrize("name", GANS)
@pytest.mark.parametrize("dataset", ["digits", "grid25"])
def test_trains_briefly_and_samples_finite_data(registries, name, dataset, request):
    data = request.getfixturevalue("digits" if dataset == "digits" else "grid25")
    info = data.info()
    cls = registries.models.get(name)
    if name == "dcgan" and dataset == "grid25":
        assert "not supported" in cls.supports(info)
        with pytest.raises(ConfigError, match="dcgan needs image data"):
            cls(info)
        return
    torch.manual_seed(0)
    model = cls(info)  # the default sizes
    result = train(model, data.split("train"), Budget(steps=6, batch_size=32), device="cpu",
                   progress=False, log_every=3)
    assert result.status == "ok" and result.steps == 6
    assert {"d_loss", "g_loss"} <= set(result.losses)
    x = model.sample(50, generator=torch.Generator().manual_seed(1))
    assert x.shape == (50, *info.shape) and torch.isfinite(x).all()
    if info.kind == "image":
        assert x.min() >= 0 and x.max() <= 1
    again = model.sample(50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, again)  # noise from the given CPU generator only


# -- losses ----------------------------------------------------------------------------------

class FixedLogits(nn.Module):
    """A discriminator that says the same whatever it is shown."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def test_generator_losses_are_the_papers():
    info = DataInfo(name="v", kind="vector", shape=(2,))
    logits = torch.tensor([[-2.0], [0.0], [3.0]])
    d = torch.sigmoid(logits)
    for loss, expected in [("non-saturating", -torch.log(d).mean()),
                           ("minimax", torch.log(1 - d).mean())]:
        model = GAN(info, loss=loss, **TINY["gan"])
        model.discriminator = FixedLogits(logits)
        assert torch.allclose(model.generator_loss(torch.zeros(3, 2)), expected, atol=1e-6)
    with pytest.raises(ConfigError, match=r"'loss' must be 'non-saturating' \| 'minimax' \(default"):
        construct(GAN, info, loss="hinge")


def test_gradient_penalty_equals_direct_autograd():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1))
    real, fake, eps = torch.randn(6, 3), torch.randn(6, 3), torch.rand(6)
    expected = []
    for r, f, e in zip(real, fake, eps):
        x = (e * r + (1 - e) * f).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x[None]).sum(), x)
        expected.append((g.norm() - 1) ** 2)
    gp = gradient_penalty(critic, real, fake, eps)
    assert torch.allclose(gp, torch.stack(expected).mean(), atol=1e-6)
    # a linear critic w.x + b has gradient w everywhere: the penalty is (|w| - 1)^2
    linear = nn.Linear(3, 1)
    expected = (linear.weight.norm() - 1) ** 2
    assert torch.allclose(gradient_penalty(linear, real, fake), expected, atol=1e-6)
    gp.backward()  # create_graph: the penalty trains the critic
    assert critic[0].weight.grad is not None


def test_packed_gradient_penalty_is_per_pack_on_the_real_to_fake_pack_segment():
    """With pack m the critic judges m samples as one item: the norm is over the pack's
    coordinates, and the interpolate of a pack lies between a real and a fake pack (one eps
    per pack)."""
    torch.manual_seed(0)
    m = 3
    critic = nn.Sequential(nn.Unflatten(0, (-1, m)), nn.Flatten(), nn.Linear(2 * m, 4),
                           nn.Tanh(), nn.Linear(4, 1))
    real, fake = torch.randn(4 * m, 2), torch.randn(4 * m, 2)
    torch.manual_seed(1)
    gp = gradient_penalty(critic, real, fake, pack=m)
    torch.manual_seed(1)
    eps = torch.rand(4)  # the same draw: one weight per pack
    expected = []
    for k, e in enumerate(eps):
        r, f = real[k * m:(k + 1) * m].reshape(-1), fake[k * m:(k + 1) * m].reshape(-1)
        x = (e * r + (1 - e) * f).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x.reshape(m, 2)).sum(), x)
        expected.append((g.norm() - 1) ** 2)
    assert torch.allclose(gp, torch.stack(expected).mean(), atol=1e-6)


def test_gan_train_step_returns_and_optimises_the_bce_losses():
    """One ``train_step`` of ``gan`` against a hand computation on a copy taken before it.
    The noise is the global stream's (``batch_randn`` in one process is ``torch.randn``):
    after the same seed the step draws D's fake batch's z, then G's. D's loss is
    -mean log sigmoid(D(x)) - mean log(1 - sigmoid(D(G(z)))) (real 1, fake 0), its update one
    Adam step (lr 1e-4, betas (0.8, 0.999)) on that loss; G's non-saturating loss is
    -mean log sigmoid(D'(G(z'))) under the updated D'."""
    torch.manual_seed(0)
    model = GAN(vec_info(), **TINY["gan"])
    with torch.no_grad():  # logits of order 1, so that swapped labels change the loss
        for p in model.discriminator.parameters():
            p.normal_(0.0, 0.3)
    hand = copy.deepcopy(model)
    real = torch.randn(16, 2) * 2 + 1
    torch.manual_seed(7)
    out = model.train_step(real, 0)

    torch.manual_seed(7)
    with torch.no_grad():
        fake = hand.generator(torch.randn(16, hand.latent_dim))
    l_real, l_fake = hand.discriminator(real), hand.discriminator(fake)
    d_loss = (-torch.log(torch.sigmoid(l_real)).mean()
              - torch.log(1 - torch.sigmoid(l_fake)).mean())
    assert float(l_real.detach().std()) > 0.1  # not a trivial discriminator
    torch.testing.assert_close(out["d_loss"], d_loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["d_real"], torch.sigmoid(l_real).mean().detach())
    torch.testing.assert_close(out["d_fake"], torch.sigmoid(l_fake).mean().detach())
    adam = torch.optim.Adam(hand.discriminator.parameters(), lr=1e-4, betas=(0.8, 0.999))
    d_loss.backward()
    adam.step()
    for ours, theirs in zip(hand.discriminator.parameters(), model.discriminator.parameters()):
        torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-6)
    with torch.no_grad():
        logits = model.discriminator(hand.generator(torch.randn(16, hand.latent_dim)))
    torch.testing.assert_close(out["g_loss"], -torch.log(torch.sigmoid(logits)).mean(),
                               rtol=1e-5, atol=1e-6)


def test_wgan_gp_train_step_returns_and_optimises_the_critic_loss_with_its_penalty():
    """Two critic steps and a generator step of ``wgan-gp`` against a hand computation
    (Gulrajani et al. 2017, Algorithm 1): per critic step, z (the fake batch) then eps ~ U[0, 1]
    per sample from the global stream; loss D(G(z)) - D(x) + 10 (||grad D(x^)|| - 1)^2
    averaged, x^ = eps x + (1 - eps) G(z), the gradient of each interpolate taken alone by
    autograd; an Adam step (lr 1e-4, betas (0.5, 0.9)) per critic step; the returned
    ``d_loss``, ``gp`` and ``wasserstein`` are the means over the critic steps; G's loss
    -mean D'(G(z')) under the updated critic."""
    torch.manual_seed(0)
    model = WGANGP(vec_info(), d_steps=2, **TINY["wgan-gp"])
    hand = copy.deepcopy(model)
    batches = (torch.randn(16, 2) * 2 + 1, torch.randn(16, 2) - 1)
    torch.manual_seed(7)
    out = model.train_step(batches, 0)

    torch.manual_seed(7)
    critic = hand.discriminator
    adam = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9))
    losses, gps, distances = [], [], []
    for real in batches:
        with torch.no_grad():
            fake = hand.generator(torch.randn(16, hand.latent_dim))
        eps = torch.rand(16)
        penalties = []
        for r, f, e in zip(real, fake, eps):
            x_hat = (e * r + (1 - e) * f).requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(x_hat[None]).sum(), x_hat, create_graph=True)
            penalties.append((grad.norm() - 1) ** 2)
        gp = torch.stack(penalties).mean()
        d_real, d_fake = critic(real).mean(), critic(fake).mean()
        loss = d_fake - d_real + 10.0 * gp
        losses.append(loss.detach())
        gps.append(gp.detach())
        distances.append((d_real - d_fake).detach())
        adam.zero_grad()
        loss.backward()
        adam.step()
    assert float(gps[0]) > 1e-3  # the penalty is not negligible at initialisation
    torch.testing.assert_close(out["d_loss"], torch.stack(losses).mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["gp"], torch.stack(gps).mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["wasserstein"], torch.stack(distances).mean(),
                               rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(critic.parameters(), model.discriminator.parameters()):
        torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-6)
    with torch.no_grad():
        g_loss = -model.discriminator(hand.generator(torch.randn(16, hand.latent_dim))).mean()
    torch.testing.assert_close(out["g_loss"], g_loss, rtol=1e-5, atol=1e-6)


def test_wgan_gp_refuses_minibatch_discrimination():
    with pytest.raises(ConfigError, match="invalidates the gradient penalty"):
        construct(WGANGP, DataInfo(name="v", kind="vector", shape=(2,)),
                  minibatch_discrimination=True)


def test_gradient_penalty_through_a_grad_scaler_is_unscaled():
    torch.manual_seed(0)
    model = WGANGP(DataInfo(name="v", kind="vector", shape=(2,)), **TINY["wgan-gp"])
    real, fake, eps = torch.randn(8, 2), torch.randn(8, 2), torch.rand(8)
    plain = gradient_penalty(model.discriminator, real, fake, eps, gradients=model.gradients)
    model._grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    scaled = gradient_penalty(model.discriminator, real, fake, eps, gradients=model.gradients)
    assert torch.allclose(plain, scaled, rtol=1e-6)


# -- stabilisers ------------------------------------------------------------------------------

def _trunk_inputs(model, x):
    """The shapes each scale's D trunk receives for the samples ``x``."""
    seen = []
    hooks = [t.register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape)))
             for t in model.discriminator.trunks]
    try:
        out = model.discriminator(model.to_model_space(x))
    finally:
        for h in hooks:
            h.remove()
    return seen, out


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_packed_discriminator_sees_m_times_the_features(m, digits):
    vec = GAN(DataInfo(name="v", kind="vector", shape=(2,)), stabilisers=Stabilisers(pack=m),
              **TINY["gan"])
    assert vec.discriminator.trunks[0][1].linear.in_features == 2 * m
    seen, out = _trunk_inputs(vec, torch.randn(12 * m, 2))
    assert seen == [(12, 2 * m)] and out.shape == (12, 1)  # 12 packs of m samples
    img = construct(DCGAN, digits.info(), pack=m, **TINY["dcgan"])  # flat keys, as a spec
    assert img.discriminator.trunks[0][0].in_channels == m
    seen, _ = _trunk_inputs(img, torch.rand(4 * m, 1, 8, 8))
    assert seen == [(4, m, 8, 8)]
    # PacGAN's minibatch: batch_size packs, so a D step takes m engine batches
    assert vec.batches_per_step == m and construct(GAN, vec_info(), pack=m, d_steps=2).batches_per_step == 2 * m
    x = torch.arange(12.0).reshape(6, 2)
    assert torch.equal(pack(x, 3)[1], torch.tensor([6.0, 7, 8, 9, 10, 11]))  # consecutive


def vec_info():
    return DataInfo(name="v", kind="vector", shape=(2,))


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 1.0])
def test_replay_buffer_mixes_at_the_configured_rate(rate):
    torch.manual_seed(0)
    buf = ReplayBuffer(size=30, shape=(2,), rate=rate)
    assert torch.equal(buf.mix(torch.zeros(8, 2)), torch.zeros(8, 2))  # empty: nothing to mix
    buf.push(torch.full((20, 2), 7.0))
    assert int(buf.filled) == 20
    for n in (8, 10, 40):
        mixed = buf.mix(torch.zeros(n, 2))
        assert mixed.shape == (n, 2)
        assert int((mixed[:, 0] == 7).sum()) == min(round(rate * n), 20)
    buf.push(torch.full((20, 2), 5.0))  # fills the last 10 slots
    assert int(buf.filled) == 30 and int((buf.items[:, 0] == 5).sum()) == 10
    buf.push(torch.full((10, 2), 3.0))  # full: as many replaced as a batch takes out
    assert int((buf.items[:, 0] == 3).sum()) == round(rate * 10)


def test_replay_buffer_never_stores_non_finite_samples():
    """An overflowed mixed-precision batch (skipped by the gradient scaler) must not be
    replayed into later discriminator steps."""
    buf = ReplayBuffer(size=6, shape=(2,), rate=1.0)
    batch = torch.tensor([[1.0, 1.0], [float("inf"), 0.0], [2.0, float("nan")], [3.0, 3.0]])
    buf.push(batch)
    assert int(buf.filled) == 2 and buf.items[:2, 0].tolist() == [1.0, 3.0]
    buf.push(torch.full((4, 2), 4.0))  # fills the rest: 6 slots, all finite
    buf.push(torch.full((4, 2), float("-inf")))  # full, nothing finite: nothing replaced
    assert int(buf.filled) == 6 and torch.isfinite(buf.items).all()
    assert torch.isfinite(buf.mix(torch.zeros(4, 2))).all()


def test_replay_in_training_keeps_the_buffer_filling(grid25):
    torch.manual_seed(0)
    model = construct(GAN, grid25.info(), experience_replay=True, replay_size=100,
                      replay_rate=0.5, **TINY["gan"])
    train(model, grid25.split("train"), Budget(steps=3, batch_size=32), device="cpu",
          progress=False)
    assert int(model.replay.filled) == 96 and torch.isfinite(model.replay.items).all()
    assert "replay.items" in model.state_dict()  # checkpointed with the model
    with pytest.raises(ConfigError, match=r"'replay_rate' must be float in \[0, 1\] \(default 0.5\), "
                                          "got 1.5"):
        construct(GAN, grid25.info(), experience_replay=True, replay_rate=1.5)


def test_multiscale_feeds_the_expected_resolutions(digits):
    model = construct(DCGAN, image_info(1, 28), multiscale=3, **TINY["dcgan"])
    seen, out = _trunk_inputs(model, torch.rand(5, 1, 28, 28))
    assert seen == [(5, 1, 28, 28), (5, 1, 14, 14), (5, 1, 7, 7)] and out.shape == (5, 3)
    model = construct(DCGAN, image_info(3, 32), multiscale=2, pack=2, **TINY["dcgan"])
    seen, out = _trunk_inputs(model, torch.rand(6, 3, 32, 32))
    assert seen == [(3, 6, 32, 32), (3, 6, 16, 16)] and out.shape == (3, 2)
    mlp = construct(GAN, digits.info(), multiscale=2, **TINY["gan"])
    seen, _ = _trunk_inputs(mlp, torch.rand(4, 1, 8, 8))
    assert seen == [(4, 1, 8, 8), (4, 1, 4, 4)]
    # factor-2 average pooling; an odd side's edge averages what is there
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    assert torch.equal(pyramid(x, 2)[1], torch.tensor([[[[2.0, 3.5], [6.5, 8.0]]]]))


def test_multiscale_is_refused_where_it_cannot_apply(digits):
    with pytest.raises(ConfigError, match="multiscale=2 .* vector data .* leave multiscale at 1"):
        construct(GAN, DataInfo(name="grid25", kind="vector", shape=(2,)), multiscale=2)
    with pytest.raises(ConfigError, match="at most 3 scales"):
        construct(DCGAN, digits.info(), multiscale=4)  # 8 -> 4 -> 2 -> 1


def test_spectral_norm_bounds_the_largest_singular_value(digits, grid25):
    for model, data in [(construct(GAN, grid25.info(), spectral_norm=True,
                                   minibatch_discrimination=True, **TINY["gan"]), grid25),
                        (construct(DCGAN, digits.info(), spectral_norm=True, **TINY["dcgan"]),
                         digits)]:
        layers = normalised_layers(model.discriminator)
        assert len(layers) == sum(isinstance(m, (nn.Linear, nn.Conv2d))
                                  for m in model.discriminator.modules())
        assert not any(isinstance(m, nn.BatchNorm2d) for m in model.discriminator.modules())
        train(model, data.split("train"), Budget(steps=5, batch_size=32), device="cpu",
              progress=False)
        with torch.no_grad():
            sigmas = [torch.linalg.matrix_norm(l.weight.flatten(1), ord=2) for l in layers]
        assert all(abs(float(s) - 1) < 0.05 for s in sigmas), sigmas
    plain = GAN(grid25.info(), **TINY["gan"])
    assert not normalised_layers(plain.discriminator)


def test_minibatch_discrimination_is_the_papers_layer():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(4, kernels=3, kernel_dim=2)
    f = torch.randn(5, 4)
    with torch.no_grad():
        out = layer(f)
    assert out.shape == (5, 4 + 3) and torch.equal(out[:, :4], f)
    m = (f @ layer.T.weight.T).detach().reshape(5, 3, 2)
    for i in range(5):
        for b in range(3):
            o = sum(math.exp(-float((m[i, b] - m[j, b]).abs().sum())) for j in range(5))
            assert abs(float(out[i, 4 + b]) - o) < 1e-5


@pytest.mark.parametrize("name", ["gan", "dcgan"])
def test_minibatch_discrimination_keeps_its_initialisation(name, digits):
    """T starts N(0, 0.05) (Salimans et al.) inside a built GAN, whose other layers still
    follow the model's N(0, 0.02) initialisation (biases 0)."""
    torch.manual_seed(0)
    cls, info = {"gan": (GAN, DataInfo(name="grid", kind="vector", shape=(2,))),
                 "dcgan": (DCGAN, digits.info())}[name]
    model = construct(cls, info, minibatch_discrimination=True)
    (mbd,) = model.discriminator.minibatch
    t = mbd.T.weight.detach()
    assert t.numel() >= 10_000  # the sample std is then within 1.5% of sigma (3 s.e.)
    assert float(t.std()) == pytest.approx(0.05, rel=0.03) and abs(float(t.mean())) < 0.002
    d = model.discriminator
    others = [m for net in (model.generator, d.trunks, d.heads) for m in net.modules()
              if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    assert mbd.T not in others and len(others) >= 4
    weights = torch.cat([m.weight.detach().flatten() for m in others])
    assert float(weights.std()) == pytest.approx(0.02, rel=0.03)
    for m in others:
        if m.weight.numel() >= 2000:
            assert float(m.weight.detach().std()) == pytest.approx(0.02, rel=0.1), m
        assert m.bias is None or not m.bias.any()


def test_balance_options(grid25):
    torch.manual_seed(0)
    model = GAN(grid25.info(), lr_d=3e-4, lr_g=1e-4, d_steps=3, d_pretrain_steps=2,
                **TINY["gan"])
    assert model.opt_d.param_groups[0]["lr"] == 3e-4 and model.opt_g.param_groups[0]["lr"] == 1e-4
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    batches = tuple(torch.randn(16, 2) for _ in range(3))
    for step in range(2):  # pre-training: D only
        out = model.train_step(batches, step)
        assert "g_loss" not in out
    assert all(torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))
    out = model.train_step(batches, 2)
    assert "g_loss" in out
    assert not all(torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))
    d_updates = model.opt_d.state[next(iter(model.discriminator.parameters()))]["step"]
    assert int(d_updates) == 3 * 3  # d_steps D updates per train_step
    with pytest.raises(ValueError, match="needs 3 batches"):
        model.train_step(torch.randn(16, 2), 3)
    for bad, match in [(dict(d_steps=0), "d_steps"), (dict(d_pretrain_steps=-1), "d_pretrain"),
                       (dict(lr_d=0.0), "lr_d"), (dict(pack=0), "pack"),
                       (dict(betas=(0.5,)), "betas"), (dict(latent_dim=0), "latent_dim")]:
        with pytest.raises(ConfigError, match=match):
            construct(GAN, grid25.info(), **bad)


# -- dcgan at every size ------------------------------------------------------------------------

@pytest.mark.parametrize("shape, stages", [((1, 8, 8), 2), ((1, 28, 28), 3), ((3, 32, 32), 3),
                                           ((3, 64, 64), 4), ((3, 48, 40), 4)])
def test_dcgan_builds_and_samples_at_every_size(shape, stages):
    torch.manual_seed(0)
    info = DataInfo(name="img", kind="image", shape=shape)
    model = DCGAN(info, channels=8, max_channels=32).eval()
    convs = [m for m in model.discriminator.trunks[0] if isinstance(m, nn.Conv2d)]
    ups = [m for m in model.generator if isinstance(m, nn.ConvTranspose2d)]
    assert len(convs) == stages and len(ups) == stages + 1  # + the projection of z
    x = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, *shape) and x.min() >= 0 and x.max() <= 1
    assert model.discriminator(model.to_model_space(x)).shape == (3, 1)


def test_dcgan_default_widths_at_64_pixels_are_the_papers():
    model = DCGAN(image_info(3, 64))
    ups = [m for m in model.generator if isinstance(m, nn.ConvTranspose2d)]
    assert [u.out_channels for u in ups] == [512, 256, 128, 64, 3]
    assert ups[0].in_channels == 100 and ups[0].kernel_size == (4, 4)


# -- resume -------------------------------------------------------------------------------------

class ScheduledGAN(GAN):
    """A GAN with learning-rate schedulers of its own, stepped every train_step."""

    def __init__(self, data_info, **kwargs):
        super().__init__(data_info, **kwargs)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.opt_d, gamma=0.9)
        self.sched_g = torch.optim.lr_scheduler.StepLR(self.opt_g, step_size=7, gamma=0.5)

    def train_step(self, batch, step):
        out = super().train_step(batch, step)
        self.sched_d.step()
        self.sched_g.step()
        return out


def _resumable(info):
    torch.manual_seed(0)
    stabilisers = Stabilisers(experience_replay=True, replay_size=40, replay_rate=0.5,
                              spectral_norm=True, minibatch_discrimination=True)
    return ScheduledGAN(info, d_steps=2, stabilisers=stabilisers, **TINY["gan"])


def _optimizer_states_equal(a, b):
    for name, opt in a.optimizers().items():
        sa, sb = opt.state_dict(), b.optimizers()[name].state_dict()
        assert sa["param_groups"] == sb["param_groups"]
        for k in sa["state"]:
            for key, v in sa["state"][k].items():
                assert torch.equal(v, sb["state"][k][key]), (name, k, key)


def test_a_resumed_gan_continues_bit_exactly(grid25, tmp_path):
    data, budget = grid25.split("train"), Budget(steps=30, batch_size=16, checkpoint_every=10)
    full = _resumable(grid25.info())
    r_full = Trainer("cpu", seed=2, progress=False, log_every=5).fit(full, data, budget)

    part = _resumable(grid25.info())
    interrupt_at(part, 20)
    trainer = Trainer("cpu", seed=2, progress=False, log_every=5, checkpoint_path=tmp_path / "c.pt",
                      fingerprint="f")
    with pytest.raises(Interrupted):
        trainer.fit(part, data, budget)
    saved = torch.load(tmp_path / "c.pt", weights_only=True)
    assert saved["step"] == 20 and set(saved["schedulers"]) == {"sched_d", "sched_g"}
    resumed = _resumable(grid25.info())
    r = trainer.fit(resumed, data, budget)
    assert r.resumed_from == 20 and r.steps == 30 and r.history == r_full.history
    assert params_equal(resumed, full)  # weights, batch-norm stats, spectral-norm u, replay buffer
    assert int(resumed.replay.filled) == 40 and torch.equal(resumed.replay.items, full.replay.items)
    _optimizer_states_equal(resumed, full)
    assert resumed.sched_d.state_dict() == full.sched_d.state_dict()
    assert resumed.sched_g.state_dict() == full.sched_g.state_dict()
    assert resumed.opt_g.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.5 ** (30 // 7))
