"""Scheduling: rows, one job per training, referenced models first, resume."""

from genbench.execution.runner import SuiteRunner
from genbench.plan.scheduling import schedule
from helpers import RunnerPlugin, registries_with, tiny_spec


def plan(spec, regs, tmp_path, stored=(), trained=None, force=False):
    rows, _, _ = SuiteRunner(spec, tmp_path, regs).prepare()
    trained = trained or {}
    return rows, schedule(rows, is_stored=lambda fp: fp in stored,
                          training_status=lambda t: trained.get(t.model), force=force)


def spec_of(models, seeds=(0,)):
    return tiny_spec(models=models, seeds=list(seeds), budget={"steps": 10}, metrics=["speed"])


def kinds(s):
    return [("train" if j.evaluation is None else "row", j.training.model) for j in s.jobs]


def test_rows_sharing_a_training_need_its_one_training_job(tmp_path):
    regs = registries_with(RunnerPlugin())
    rows, s = plan(spec_of([{"name": "vae", "sampling": [{}, {"temperature": 0.5}]},
                            {"name": "vae", "label": "again"}]), regs, tmp_path)
    assert len({r.training.fingerprint for r in rows}) == 1
    train, *evaluations = s.jobs
    assert train.evaluation is None and train.needs == ()
    assert len(evaluations) == 3 and all(j.needs == (train.key,) for j in evaluations)
    assert not s.blocked


def test_referenced_models_train_first(tmp_path):
    regs = registries_with(RunnerPlugin())
    _, s = plan(spec_of(["code-gaussian", {"name": "code-gaussian", "label": "b",
                                           "params": {"jitter": 0.1}}], seeds=(0, 1)),
                regs, tmp_path)
    assert sorted(kinds(s)).count(("train", "counting-ae")) == 2  # one per seed, shared by rows
    assert kinds(s).count(("train", "code-gaussian")) == 4
    order = [j.key for j in s.jobs]
    for job in s.jobs:
        assert all(order.index(n) < order.index(job.key) for n in job.needs)
        if job.evaluation is None and job.training.model == "code-gaussian":
            ref = job.training.refs[0][1]
            assert ref.seed == job.training.seed and ref.dataset == job.training.dataset
            assert job.needs == (ref.key,)


def test_stored_rows_and_finished_trainings_are_not_run(tmp_path):
    regs = registries_with(RunnerPlugin())
    spec = spec_of(["code-gaussian", "vae"])
    rows, _ = plan(spec, regs, tmp_path)
    stored = {r.evaluation.fingerprint for r in rows if r.training.model == "vae"}
    _, s = plan(spec, regs, tmp_path, stored=stored, trained={"counting-ae": "ok"})
    assert kinds(s) == [("train", "code-gaussian"), ("row", "code-gaussian")]
    assert s.jobs[0].needs == ()  # the autoencoder's checkpoint is finished
    assert s.already_stored == ["digits/vae/seed0"]
    _, s = plan(spec, regs, tmp_path, stored=stored,
                trained={"counting-ae": "ok", "code-gaussian": "ok"})
    assert kinds(s) == [("row", "code-gaussian")] and s.jobs[0].needs == ()


def test_a_training_that_failed_is_trained_again(tmp_path):
    regs = registries_with(RunnerPlugin())
    _, s = plan(spec_of(["code-gaussian"]), regs, tmp_path,
                trained={"counting-ae": "failed", "code-gaussian": "ok"})
    assert ("train", "counting-ae") in kinds(s) and not s.blocked


def test_force_trains_each_training_once(tmp_path):
    regs = registries_with(RunnerPlugin())
    spec = spec_of(["code-gaussian", {"name": "code-gaussian", "label": "b", "params": {"jitter": 0.1}}])
    rows, _ = plan(spec, regs, tmp_path)
    _, s = plan(spec, regs, tmp_path, stored={r.evaluation.fingerprint for r in rows},
                trained={"counting-ae": "ok", "code-gaussian": "ok"}, force=True)
    retrained = sorted(j.training.model for j in s.jobs if j.retrain)
    assert retrained == ["code-gaussian", "code-gaussian", "counting-ae"]
    assert all(not j.retrain for j in s.jobs if j.evaluation is not None)


def test_a_training_or_reference_that_diverged_before_blocks_its_rows(tmp_path):
    regs = registries_with(RunnerPlugin())
    _, s = plan(spec_of(["code-gaussian", "vae"]), regs, tmp_path, trained={"counting-ae": "diverged"})
    assert kinds(s) == [("train", "vae"), ("row", "vae")]
    (blocked,) = s.blocked
    assert blocked.job.training.model == "code-gaussian" and blocked.status == "failed"
    assert "referenced model 'counting-ae[latent_dim=4]'" in blocked.reason
    _, s = plan(spec_of(["vae"]), regs, tmp_path, trained={"vae": "diverged"})
    assert s.jobs == [] and s.blocked[0].status == "diverged"


def test_labels_and_evaluation_settings_never_touch_the_training(tmp_path, registries):
    a = SuiteRunner(tiny_spec(models=[{"name": "vae", "label": "x"}]), tmp_path, registries).prepare()[0][0]
    b = SuiteRunner(tiny_spec(models=[{"name": "vae", "label": "y", "sampling": {"temperature": 0.5}}],
                              num_samples=10, metrics=["recon"]), tmp_path, registries).prepare()[0][0]
    assert a.training == b.training
    assert a.evaluation.fingerprint != b.evaluation.fingerprint


def test_spellings_of_one_configuration_share_a_training(tmp_path, registries):
    spec = tiny_spec(models=["vae", {"name": "vae", "label": "explicit",
                                     "params": {"latent_dim": 10, "beta": 1}}])
    rows, _, _ = SuiteRunner(spec, tmp_path, registries).prepare()
    assert rows[0].training.fingerprint == rows[1].training.fingerprint
    other = tiny_spec(models=[{"name": "vae", "params": {"latent_dim": 9}}])
    assert SuiteRunner(other, tmp_path, registries).prepare()[0][0].training.fingerprint != \
        rows[0].training.fingerprint


def test_models_that_refit_need_no_training_job(tmp_path, registries):
    runner = SuiteRunner(tiny_spec(models=["vae"], baselines=["train-data"]), tmp_path, registries)
    rows, _, _ = runner.prepare()
    s = schedule(rows, is_stored=lambda fp: False, training_status=runner._training_status)
    assert kinds(s) == [("train", "vae"), ("row", "vae"), ("row", "train-data")]
