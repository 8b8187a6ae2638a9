"""harness.vector.conv: N DCGANs as grouped convolutions equal N single DCGANs.

A grouped convolution is another kernel than the single one, so the copies agree to float
rounding, not bit for bit: the networks to 1e-5, and a few training steps (batch norm
included) to 1e-4.
"""

import copy

import pytest
import torch
from torch import nn

from harness import names
from harness.builtin.dcgan import ConvDiscriminator, ConvGenerator
from harness.config import TrialConfig
from harness.plugins import load_plugins
from harness.trial import build_trainer
from harness.vector.engine import VectorizedGAN
from harness.vector.stacking import stack_networks
from tests.test_vectorized import assert_same_networks, assert_same_rows

load_plugins()

TOL = {"rtol": 1e-4, "atol": 1e-5}
TIMING = {names.TRAIN_SECONDS, names.STEPS_PER_SECOND}


@pytest.mark.parametrize("side,channels", [(28, 1), (32, 3)])
def test_stacked_networks_equal_their_copies(side, channels, one_thread):
    torch.manual_seed(0)
    n = 3
    gens = [ConvGenerator(6, channels, side, 8) for _ in range(n)]
    discs = [ConvDiscriminator(channels, side, 8) for _ in range(n)]
    G, D = stack_networks(gens), stack_networks(discs)
    assert G.n_copies == D.n_copies == n
    z = torch.randn(n, 5, 6)
    x = G(z)  # train mode: batch statistics, running averages updated
    logits = D(x)
    assert x.shape == (n, 5, channels, side, side) and logits.shape == (n, 5)
    for k in range(n):
        torch.testing.assert_close(x[k], gens[k](z[k]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(logits[k], discs[k](x[k]), rtol=1e-5, atol=1e-6)
    G.eval()
    D.eval()
    x = G(z)  # eval mode: the running averages
    for k in range(n):
        gens[k].eval()
        discs[k].eval()
        torch.testing.assert_close(x[k], gens[k](z[k]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(D(x)[k], discs[k](x[k]), rtol=1e-5, atol=1e-6)
        for net, single in ((G, gens[k]), (D, discs[k])):
            state = net.copy_state(k)
            assert set(state) == set(single.state_dict())
            for key, value in single.state_dict().items():
                torch.testing.assert_close(state[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_what_cannot_be_stacked_is_refused():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="auxiliary head"):
        stack_networks([ConvDiscriminator(1, 28, 8, extra=10)])
    with pytest.raises(ValueError, match="different shapes"):
        stack_networks([ConvGenerator(6, 1, 28, 8), ConvGenerator(6, 1, 28, 16)])
    with pytest.raises(ValueError, match="differ in class: ConvGenerator, ConvDiscriminator"):
        stack_networks([ConvGenerator(6, 1, 28, 8), ConvDiscriminator(1, 28, 8)])
    with pytest.raises(TypeError, match="torch.nn.modules.linear.Linear does not declare how"):
        stack_networks([nn.Linear(2, 2)])


def dcgan_config(mnist_dir, seed=0, metrics=("mode_coverage",), **train):
    settings = {"steps": 6, "eval_every": 3, "log_every": 2, "eval_samples": 64,
                "batch_size": 16}
    settings.update(train)
    return TrialConfig(
        study="t", variant="v", dataset_key="mnist", phase=names.PHASE_SEEDS,
        model={"name": "dcgan", "params": {"z_dim": 8, "ngf": 8, "ndf": 8}},
        loss={"name": "non_saturating"},
        dataset={"name": "mnist", "params": {"root": str(mnist_dir)}},
        metrics=list(metrics), train=settings, seed=seed)


@pytest.mark.parametrize("tricks", [[], [{"name": "packing", "params": {"m": 2}}]],
                         ids=["dcgan", "pacdcgan2"])
def test_vectorized_dcgan_copies_train_like_single_trainers(mnist_dir, one_thread, tricks):
    """Copy k of a vectorized DCGAN (its own seed, lr_d, lr_g, beta1) matches the harness's
    single-copy Trainer for six steps: parameters, batch-norm running averages, history
    rows and evaluation samples; so does a packed one (PacDCGAN: D sees 2 images stacked
    in its channels)."""
    cfgs = [TrialConfig.model_validate({
        **dcgan_config(mnist_dir, seed=k, lr_d=1e-4 * (k + 1), lr_g=3e-4 / (k + 1),
                       beta1=0.5 + 0.2 * k).model_dump(), "tricks": tricks}) for k in range(3)]
    vec = VectorizedGAN(cfgs)
    vec_rows = [vec.train_step(measure=(vec.step + 1) % 2 == 0) for _ in range(6)]
    samples = vec.sample()
    extra = vec.sample(100)
    for k, cfg in enumerate(cfgs):
        trainer = build_trainer(cfg)
        rows = []
        for _ in range(6):
            rows.append(trainer.train_step(measure=(trainer.step + 1) % 2 == 0))
            trainer.step += 1
        assert_same_networks(vec, k, trainer, TOL)  # parameters and running averages
        assert_same_rows(vec_rows, rows, k, rel=1e-4, abs=1e-5)
        torch.testing.assert_close(samples[k], trainer.sample(), **TOL)
        torch.testing.assert_close(extra[k], trainer.generate_extra(100), **TOL)
    # a loaded copy is a working single-copy generator
    gen = build_trainer(cfgs[1]).G
    gen.load_state_dict(vec.copy_state(1)["generator"])


def test_vector_trainer_scores_dcgan_copies_as_single_trials(mnist_dir, tmp_path, one_thread):
    """A VectorTrainer of two DCGAN seeds with the image metrics (class_modes and fidelity,
    batched over the copies) records what two single trials record, to float rounding."""
    from harness.reporting import MemoryReporter
    from harness.trial import run_trial
    from harness.vector.trial import VectorTrainer, copy_configs, fallback_reason

    cache = str(tmp_path / "cache")
    metrics = [{"name": "class_modes", "params": {"cache_dir": cache, "final_samples": 150}},
               {"name": "fidelity", "params": {"cache_dir": cache, "eval_samples": 100,
                                               "final_samples": 150, "real_samples": 500,
                                               "kid_subsets": 3}}]
    cfg = dcgan_config(mnist_dir, metrics=metrics)
    assert fallback_reason(cfg) is None
    cfgs = copy_configs(cfg, [5, 6])
    reps = [MemoryReporter() for _ in cfgs]
    saved = []
    results = VectorTrainer(cfgs).run(reps, lambda step, values, ck: saved.append(copy.deepcopy(ck())))
    assert len(saved) == 1  # the round at step 3 (the last one ends every copy)
    for k, c in enumerate(cfgs):
        single = MemoryReporter()
        result = run_trial(c, single)
        assert result.status == results[k].status
        assert [s for s, _ in single.rows] == [s for s, _ in reps[k].rows]
        assert len(single.evals) == len(reps[k].evals) == 2
        for (s1, v1), (s2, v2) in zip(single.evals, reps[k].evals):
            assert s1 == s2 and set(v1) == set(v2)
            for key, value in v1.items():
                assert v2[key] == pytest.approx(value, rel=1e-3, abs=1e-4), (s1, key)
        assert names.FID in results[k].final and names.MODES_COVERED in results[k].final
        assert set(single.artifacts) == set(reps[k].artifacts)


def _dcgan_plan(mnist_dir, vectorize, gpu=0):
    from harness.config import parse_study
    from harness.resolve import resolve
    from harness.vector.plan import plan_vectorize

    spec = parse_study({
        "name": "conv", "seeds": 3, "vectorize": vectorize,
        "datasets": {"mnist": {"name": "mnist", "params": {"root": str(mnist_dir)}}},
        "metrics": [{"name": "class_modes"}],
        "train": {"steps": 10, "eval_every": 5, "batch_size": 16},
        "search": {"algorithm": "random", "trials": 2,
                   "space": {"lr_g": {"type": "loguniform", "low": 1e-4, "high": 1e-3}}},
        "resources": {"cpu": 1, "gpu": gpu},
        "variants": [{"name": "dc", "loss": "non_saturating",
                      "model": {"name": "dcgan", "params": {"ngf": 8, "ndf": 8}}}],
    })
    return plan_vectorize(spec, resolve(spec))


def test_dcgan_pairs_stack_when_asked_and_auto_stacks_them_on_a_gpu_only(mnist_dir):
    vector = _dcgan_plan(mnist_dir, 2)
    assert vector.seeds == {"dc/mnist": 2} and vector.search == {"dc/mnist": [2]}
    vector = _dcgan_plan(mnist_dir, "auto")
    assert vector.seeds == {} and vector.search == {}
    assert ("one copy per trial for dc/mnist (model 'dcgan': auto stacks it on a GPU only"
            in "\n".join(vector.lines))
    vector = _dcgan_plan(mnist_dir, "auto", gpu=0.5)
    assert vector.seeds == {"dc/mnist": 3} and vector.search == {"dc/mnist": [2]}
    assert "vectorize auto (cuda: up to 128 copies per trial)" in "\n".join(vector.lines)


@pytest.mark.slow  # a real study through Ray Tune and MLflow (~1-2 min on 2 cores)
def test_a_vectorized_dcgan_study_writes_one_child_run_per_copy(mnist_dir, tmp_path):
    """``vectorize: 2`` on a DCGAN pair: two Tune trials (the search batch of two
    suggestions, the two seeds), four ordinary MLflow child runs with their own seeds,
    image metrics, provenance tags and a generator that loads into the DCGAN."""
    import io

    import yaml

    from harness.study import run_study
    from harness.tracking import child_runs, open_store

    cache = str(tmp_path / "cache")
    raw = {
        "name": "conv", "seed": 1, "seeds": 2, "vectorize": 2,
        "datasets": {"mnist": {"name": "mnist", "params": {"root": str(mnist_dir)}}},
        "metrics": [{"name": "class_modes", "params": {"cache_dir": cache, "final_samples": 200}},
                    {"name": "fidelity", "params": {"cache_dir": cache, "eval_samples": 100,
                                                    "final_samples": 200, "real_samples": 500,
                                                    "kid_subsets": 3}}],
        "train": {"steps": 20, "eval_every": 10, "eval_samples": 100, "log_every": 5,
                  "batch_size": 16, "device": "cpu"},
        "search": {"algorithm": "random", "trials": 2, "metric": "fid",
                   "space": {"lr_g": {"type": "loguniform", "low": 1e-4, "high": 1e-3}}},
        "resources": {"cpu": 1, "gpu": 0},
        "variants": [{"name": "dc", "loss": "non_saturating",
                      "model": {"name": "dcgan", "params": {"z_dim": 8, "ngf": 8, "ndf": 8}}}],
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    stream = io.StringIO()
    outcome = run_study(path, workdir=tmp_path, max_concurrent=2, write_report=False,
                        stream=stream)
    text = stream.getvalue()
    assert not outcome.interrupted
    assert "4 runs (2 Tune trials)" in text, text
    client = open_store(outcome.tracking_uri, create=False)
    kids = child_runs(client, outcome.experiment_id, outcome.parent_run_id)
    assert len(kids) == 4
    by_phase = {}
    for run in kids:
        assert run.info.status == "FINISHED"
        assert run.data.tags[names.TAG_STATUS] != "failed"
        assert run.data.tags[names.TAG_VECTOR_COPIES] == "2"
        assert names.TAG_FIDELITY_EXTRACTOR_HASH in run.data.tags
        for key in (names.FID, names.KID_MEAN, names.IS_MEAN, names.MODES_COVERED,
                    names.LOSS_D, names.D_REAL):
            assert key in run.data.metrics, key
        by_phase.setdefault(run.data.tags[names.TAG_PHASE], []).append(run)
    assert {p: len(r) for p, r in by_phase.items()} == {names.PHASE_SEARCH: 2,
                                                        names.PHASE_SEEDS: 2}
    for runs in by_phase.values():
        assert len({r.data.tags[names.TAG_SEED] for r in runs}) == 2
        assert len({r.data.tags[names.TAG_VECTOR_TRIAL] for r in runs}) == 1
    search = by_phase[names.PHASE_SEARCH]
    assert search[0].data.params["lr_g"] != search[1].data.params["lr_g"]
    local = client.download_artifacts(kids[0].info.run_id, names.ARTIFACT_GENERATOR, str(tmp_path))
    ConvGenerator(8, 1, 28, 8).load_state_dict(torch.load(local))


@pytest.mark.slow
def test_a_compiled_vectorized_dcgan_trains_like_the_eager_one(mnist_dir, one_thread):
    """``compile="default"`` on the grouped convolutions and batch norm (about a minute of
    compilation on a CPU): four steps equal the eager ones to float32 rounding, parameters
    and batch-norm running averages alike."""
    cfgs = [dcgan_config(mnist_dir, seed=k, lr_d=1e-4 * (k + 1)) for k in range(2)]
    eager = VectorizedGAN(cfgs)
    compiled = VectorizedGAN(cfgs, compile="default")
    for vec in (eager, compiled):
        for _ in range(4):
            vec.train_step(measure=(vec.step + 1) % 2 == 0)
    for k in range(2):
        for net in ("generator", "discriminator"):
            for key, value in eager.copy_state(k)[net].items():
                torch.testing.assert_close(compiled.copy_state(k)[net][key], value, **TOL,
                                           msg=f"copy {k} {net}.{key}")
    assert [s for s, _ in compiled.history[0]] == [2, 4]
