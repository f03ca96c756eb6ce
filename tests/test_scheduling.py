"""Planning: rows, trainings shared by fingerprint, referenced models first, resume."""

from genbench.jobs import schedule
from genbench.runner import SuiteRunner
from helpers import RunnerPlugin, registries_with, tiny_spec


def plan(spec, regs, tmp_path, stored=(), trained=None, force=False):
    runner = SuiteRunner(spec, tmp_path, regs)
    rows, _, _ = runner.prepare()
    trained = trained or {}
    return rows, schedule(rows, is_stored=lambda fp: fp in stored,
                          training_status=lambda t: trained.get(t.model), force=force)


def spec_of(models, seeds=(0,)):
    return tiny_spec(models=models, seeds=list(seeds), budget={"steps": 10})


def test_rows_sharing_a_training_wait_for_the_one_that_trains_it(tmp_path):
    regs = registries_with(RunnerPlugin())
    rows, s = plan(spec_of([{"name": "vae", "sampling": [{}, {"temperature": 0.5}]},
                            {"name": "vae", "label": "again"}]), regs, tmp_path)
    assert len({r.training.fingerprint for r in rows}) == 1
    first, *others = s.jobs
    assert first.needs == () and all(j.needs == (first.key,) for j in others)
    assert len(s.jobs) == 3 and not s.blocked


def test_referenced_models_train_first_as_their_own_job(tmp_path):
    regs = registries_with(RunnerPlugin())
    rows, s = plan(spec_of(["code-gaussian", {"name": "code-gaussian", "label": "b",
                                              "params": {"jitter": 0.1}}], seeds=(0, 1)),
                   regs, tmp_path)
    trainings = [j for j in s.jobs if j.evaluation is None]
    assert [j.training.model for j in trainings] == ["counting-ae", "counting-ae"]  # one per seed
    assert {j.training.seed for j in trainings} == {0, 1}
    order = [j.key for j in s.jobs]
    for job in s.jobs:
        for need in job.needs:
            assert order.index(need) < order.index(job.key)
        if job.evaluation is not None:
            ref = job.training.refs[0][1]
            assert ref.seed == job.training.seed and ref.dataset == job.training.dataset
            assert job.needs == (ref.key,)


def test_stored_rows_and_ready_trainings_are_not_run(tmp_path):
    regs = registries_with(RunnerPlugin())
    spec = spec_of(["code-gaussian", "vae"])
    rows, _ = plan(spec, regs, tmp_path)
    stored = {r.evaluation.fingerprint for r in rows if r.training.model == "vae"}
    _, s = plan(spec, regs, tmp_path, stored=stored, trained={"counting-ae": "ok"})
    assert [j.training.model for j in s.jobs] == ["code-gaussian"] and s.jobs[0].needs == ()
    assert s.already_stored == ["digits/vae/seed0"]


def test_force_trains_each_training_once(tmp_path):
    regs = registries_with(RunnerPlugin())
    spec = spec_of(["code-gaussian", {"name": "code-gaussian", "label": "b", "params": {"jitter": 0.1}}])
    rows, _ = plan(spec, regs, tmp_path)
    _, s = plan(spec, regs, tmp_path, stored={r.evaluation.fingerprint for r in rows},
                trained={"counting-ae": "ok"}, force=True)
    retrained = [j.training.model for j in s.jobs if j.retrain]
    assert sorted(retrained) == ["code-gaussian", "code-gaussian", "counting-ae"]


def test_a_reference_that_diverged_before_blocks_its_rows(tmp_path):
    regs = registries_with(RunnerPlugin())
    _, s = plan(spec_of(["code-gaussian", "vae"]), regs, tmp_path, trained={"counting-ae": "diverged"})
    assert [j.training.model for j in s.jobs] == ["vae"]
    (job, reason), = s.blocked
    assert job.training.model == "code-gaussian" and "diverged in an earlier run" in reason


def test_labels_and_evaluation_settings_never_touch_the_training(tmp_path, registries):
    a = SuiteRunner(tiny_spec(models=[{"name": "vae", "label": "x"}]), tmp_path, registries).prepare()[0][0]
    b = SuiteRunner(tiny_spec(models=[{"name": "vae", "label": "y", "sampling": {"temperature": 0.5}}],
                              num_samples=10, metrics=["recon"]), tmp_path, registries).prepare()[0][0]
    assert a.training == b.training
    assert a.evaluation.fingerprint != b.evaluation.fingerprint
