"""Data-parallel training (genbench.execution.distributed): two gloo processes on the CPU train a model
to the parameters one process reaches with the same global batch."""

import functools

import pytest
import torch

from genbench.api.budget import Budget
from genbench.execution.distributed import (DataParallel, DataParallelError, active, batch_rand,
                                  batch_randn, fit_data_parallel, shard)
from genbench.api.errors import ConfigError, SpecError
from genbench.registry.manager import build_registries, create_plugin_manager
from genbench.execution.runner import SuiteRunner
from genbench.execution.devices import seed_everything
from genbench.execution.training import Trainer
from helpers import tiny_spec

#: Float32 summation order differs between one process and two: this far, no further.
ATOL = 1e-6


def build_model(name, params, checkpoint, device, dataset="ring8"):
    """A rank's (model, trainer, training split): ``name`` on ``dataset``, seed 0
    (module-level, so that the rank processes can unpickle it)."""
    regs = build_registries(create_plugin_manager(load_entrypoints=False))
    ds = regs.datasets.get(dataset)()
    seed_everything(0)
    model = regs.models.get(name)(ds.info(), **params)
    trainer = Trainer(device, seed=0, checkpoint_path=checkpoint, fingerprint="dp-test",
                      progress=False)
    return model, trainer, ds.split("train")


def failing_build(device):
    import torch.distributed as dist

    if dist.get_rank() == 1:
        raise RuntimeError("rank one cannot build its model")
    return build_model("ae", {"hidden": 8}, None, device)


def build_that_aborts_in_teardown(checkpoint, device):
    """Rank 1 dies by SIGABRT while it tears the group down, as a gloo thread can make it."""
    import os
    import signal

    import torch.distributed as dist

    if dist.get_rank() == 1:
        dist.destroy_process_group = lambda: os.kill(os.getpid(), signal.SIGABRT)
    return build_model("ae", {"hidden": 8}, checkpoint, device)


def floats(model):
    return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}


def test_a_rank_shards_batches_and_draws_its_rows_of_the_global_noise():
    x = torch.arange(12.0).reshape(6, 2)
    torch.manual_seed(3)
    whole = torch.randn(6, 4)
    uniform = torch.rand(6)
    after = torch.randn(2)
    for rank in (0, 1):
        torch.manual_seed(3)
        with active(DataParallel(rank, 2)):
            assert torch.equal(shard(x), x[3 * rank:3 * rank + 3])
            a, b = shard((x, x + 1))  # several batches per step: each is split
            assert torch.equal(a, x[3 * rank:3 * rank + 3])
            assert torch.equal(b, x[3 * rank:3 * rank + 3] + 1)
            assert torch.equal(batch_randn(3, 4), whole[3 * rank:3 * rank + 3])
            assert torch.equal(batch_rand(3), uniform[3 * rank:3 * rank + 3])
            # every rank's random stream moved as far as one process's did
            assert torch.equal(torch.randn(2), after)
            with pytest.raises(ConfigError, match="divisible by 2"):
                shard(torch.zeros(5, 2))
    torch.manual_seed(3)
    assert torch.equal(shard(x), x) and torch.equal(batch_randn(6, 4), whole)


#: Every built-in model family that draws training noise or takes statistics of a batch
#: (plus the plain autoencoder), with its dataset: the noise is the global batch's rows and
#: the statistics (batch norm, sparse-ae's mean activations) the global batch's, so two
#: processes reach one process's parameters.
DATA_PARALLEL_MODELS = {
    "ae": ("ring8", {"hidden": 16, "lr": 1e-2}),
    "vae": ("ring8", {"hidden": [16], "latent_dim": 2, "lr": 1e-2}),
    "conv-vae": ("digits", {"channels": 4, "max_channels": 8, "latent_dim": 4, "lr": 1e-2}),
    "denoising-ae": ("ring8", {"hidden": [16], "noise": "masking", "noise_level": 0.3,
                               "lr": 1e-2}),
    # a penalty on each code unit's mean activation over the batch
    "sparse-ae": ("digits", {"hidden": [16], "latent_dim": 8, "sparsity_weight": 0.1,
                             "lr": 1e-2}),
    "aae": ("ring8", {"hidden": [16], "disc_hidden": [16], "latent_dim": 2, "lr": 1e-2,
                      "lr_adv": 1e-2}),
    "ddpm": ("ring8", {"timesteps": 50, "hidden": 16, "depth": 2, "lr": 1e-2}),
    # batch norm in G and D
    "dcgan": ("digits", {"latent_dim": 8, "channels": 4, "max_channels": 8, "lr_d": 1e-2,
                         "lr_g": 1e-2}),
    # interpolates drawn per sample, a gradient penalty, two critic steps per step
    "wgan-gp": ("digits", {"latent_dim": 8, "channels": 4, "max_channels": 8, "d_steps": 2,
                           "lr_d": 1e-2, "lr_g": 1e-2}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", DATA_PARALLEL_MODELS)
def test_two_gloo_processes_train_a_model_as_one_process_does(tmp_path, name):
    budget = Budget(steps=6, batch_size=32)
    dataset, params = DATA_PARALLEL_MODELS[name]
    one, trainer, data = build_model(name, params, tmp_path / "one.pt", "cpu", dataset)
    init = {k: v.clone() for k, v in floats(one).items()}
    alone = trainer.fit(one, data, budget)

    two, trainer, data = build_model(name, params, tmp_path / "two.pt", "cpu", dataset)
    build = functools.partial(build_model, name, params, tmp_path / "two.pt", dataset=dataset)
    result = fit_data_parallel(build, trainer, two, data, budget, nproc=2)

    assert result.status == "ok" and result.steps == 6 and not two.training
    assert result.losses == pytest.approx(alone.losses, rel=1e-6)
    moved = 0
    for key, value in floats(one).items():
        moved += bool((value - init[key]).abs().max() > 1000 * ATOL)
        torch.testing.assert_close(floats(two)[key], value, atol=ATOL, rtol=0, msg=key)
    assert moved >= len(init) // 2  # it did train (buffers such as a schedule do not move)
    # rank 0 wrote the checkpoint the result was loaded from, and it is finished
    saved = torch.load(tmp_path / "two.pt", weights_only=True)
    assert saved["done"] and saved["step"] == 6
    for key, value in floats(two).items():
        torch.testing.assert_close(saved["model"][key], value, msg=key)


@pytest.mark.slow
def test_a_gan_with_batch_norm_trained_by_two_processes_in_a_suite_equals_one_process(tmp_path):
    """The MLP GAN's generator batch-normalises: synchronised batch norm gives the global
    batch's statistics (running ones included), and the latents are the global draw's rows."""
    model = {"name": "gan", "params": {"g_hidden": [16, 16], "d_hidden": [16],
                                       "maxout_pieces": 2, "lr_d": 1e-3, "lr_g": 1e-3}}
    regs = build_registries(create_plugin_manager(load_entrypoints=False))
    outs, reports = {}, {}
    for nproc in (1, 2):
        spec = tiny_spec(datasets=["ring8"], models=[model], metrics=[], num_samples=50,
                         budget={"steps": 5, "batch_size": 32}, train={"nproc": nproc})
        out = tmp_path / f"nproc{nproc}"
        report = SuiteRunner(spec, out, regs, progress=False, echo=lambda s: None,
                             jobs=0).run()
        assert [r.status for r in report.ran] == ["ok"], [r.error for r in report.ran]
        outs[nproc], reports[nproc] = out, report
    assert reports[2].trainings[0].provenance["nproc"] == 2
    assert "nproc" not in reports[1].trainings[0].provenance
    states = {}
    for nproc, out in outs.items():
        (path,) = out.glob("runs/*gan*/checkpoint.pt")
        states[nproc] = torch.load(path, weights_only=True)["model"]
    assert any("running_mean" in k for k in states[1])
    for key, value in states[1].items():
        if value.is_floating_point():
            torch.testing.assert_close(states[2][key], value, atol=ATOL, rtol=0, msg=key)


def test_a_failing_rank_fails_the_training_with_its_error(tmp_path):
    budget = Budget(steps=2, batch_size=32)
    model, trainer, data = build_model("ae", {"hidden": 8}, None, "cpu")
    with pytest.raises(DataParallelError, match="(?s)rank 1 of 2 exited with code 1.*"
                                                "rank one cannot build its model"):
        fit_data_parallel(failing_build, trainer, model, data, budget, nproc=2)


def test_a_rank_that_dies_in_teardown_after_its_work_loses_nothing(tmp_path):
    budget = Budget(steps=3, batch_size=32)
    model, trainer, data = build_model("ae", {"hidden": 8}, tmp_path / "ae.pt", "cpu")
    build = functools.partial(build_that_aborts_in_teardown, tmp_path / "ae.pt")
    result = fit_data_parallel(build, trainer, model, data, budget, nproc=2)
    assert result.status == "ok" and result.steps == 3
    assert torch.load(tmp_path / "ae.pt", weights_only=True)["done"]


def test_batches_must_split_evenly_and_nproc_is_checked_where_it_enters(tmp_path):
    model, trainer, data = build_model("ae", {"hidden": 8}, None, "cpu")
    with pytest.raises(ConfigError, match="batch size divisible by 2"):
        fit_data_parallel(failing_build, trainer, model, data, Budget(steps=1, batch_size=33), 2)
    regs = build_registries(create_plugin_manager(load_entrypoints=False))
    with pytest.raises(ConfigError, match="batch_size 33 must be a multiple of train.nproc = 2"):
        tiny_spec(budget={"steps": 1, "batch_size": 33}, train={"nproc": 2}).validate(regs)
    for bad in ({"nproc": 0}, {"nproc": "2"}, {"procs": 2}, 2):
        with pytest.raises(SpecError, match="nproc"):
            tiny_spec(train=bad)
    assert tiny_spec(train={"nproc": 4}).nproc == 4
    # where jobs run is not what they compute: the spec's hash ignores it
    assert tiny_spec(train={"nproc": 4}).hash() == tiny_spec().hash()


def test_sparse_gradients_are_refused_with_an_actionable_error():
    from genbench.execution.distributed import average_gradients

    emb = torch.nn.Embedding(4, 2, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(ConfigError, match="nproc = 1"):
        average_gradients(list(emb.parameters()), world_size=2)
