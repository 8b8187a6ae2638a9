"""CycleGAN on MNIST <-> rotated/inverted MNIST: the unpaired domain pair, the cycle loss,
the image pool, a few real steps with checkpoint/restore, the translation metrics against
known answers, and validation of what cannot work."""

import math

import pytest
import torch
from torch import nn

from harness import names
from harness.builtin.cycle_error import CYCLE_ERROR_AB, CYCLE_ERROR_BA
from harness.builtin.cyclegan import LOSS_IDENTITY, CyclePair, ImagePool, cycle_l1
from harness.builtin.mnist_pair import apply_transform
from harness.builtin.translation_accuracy import (
    TAG_CLASSIFIER_ACCURACY_B,
    TAG_CLASSIFIER_HASH_A,
    TAG_CLASSIFIER_HASH_B,
    TRANSLATION_ACCURACY_AB,
    TRANSLATION_ACCURACY_BA,
)
from harness.config import TrialConfig, parse_study
from harness.errors import ConfigError
from harness.metrics import EvalContext, Translations
from harness.plugins import load_plugins
from harness.registry import DATASETS, METRICS, MODELS
from harness.reporting import MemoryReporter
from harness.resolve import resolve
from harness.trial import build_trainer, run_trial

load_plugins()

TINY = {"ngf": 4, "ndf": 4, "n_res": 1, "pool_size": 4}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cycle-cache")


@pytest.fixture(scope="module")
def pair(mnist_dir):
    return DATASETS.build("mnist_pair", {"root": str(mnist_dir), "transform": "rot90"})


def _bytes(images: torch.Tensor) -> set[bytes]:
    return {img.numpy().tobytes() for img in images}


# -- the domain pair ---------------------------------------------------------------------------
def test_domains_are_disjoint_and_transformed(pair):
    a, b = pair.domain_a, pair.domain_b
    assert a.train_data().shape[0] + b.train_data().shape[0] == pair.base.n_train
    assert abs(a.train_data().shape[0] - b.train_data().shape[0]) <= 1
    # no B training image is the rotation of an A training image (truly unpaired)
    unrotated_b = torch.rot90(b.train_data(), k=-1, dims=(-2, -1)).contiguous()
    assert not (_bytes(a.train_data()) & _bytes(unrotated_b))
    # B's training images are rotations of MNIST training images, with their labels
    odd = pair.base.train_data()[1::2]
    assert torch.equal(b.train_data(), torch.rot90(odd, k=1, dims=(-2, -1)))
    assert torch.equal(b.train_labels(), pair.base.train_labels()[1::2])
    # held-out: the same digits in both domains, B rotated
    assert torch.equal(b.heldout_data(), torch.rot90(a.heldout_data(), k=1, dims=(-2, -1)))
    assert torch.equal(a.heldout_labels(), b.heldout_labels())
    assert a.fingerprint() != b.fingerprint()
    # A's classifier is the plain MNIST one (same cache key); B's learns rotated digits
    assert a.classifier_source() is pair.base.classifier_source()
    assert b.classifier_source().transform == "rot90"
    # ... from the base's classifier part: the train part minus the FID reference
    assert b.classifier_source().train_data().shape[0] == pair.base.n_classifier


def test_transforms_known_answers():
    x = torch.arange(4.0).reshape(1, 1, 2, 2)  # [[0, 1], [2, 3]]
    assert apply_transform(x, "rot90").flatten().tolist() == [1.0, 3.0, 0.0, 2.0]
    assert torch.equal(apply_transform(x, "invert"), -x)
    with pytest.raises(ValueError, match="allowed: none, rot90, invert"):
        apply_transform(x, "flip")


# -- the cycle loss and the image pool ---------------------------------------------------
def test_cycle_loss_is_zero_for_identity_maps_and_l1_otherwise():
    a, b = torch.randn(5, 1, 8, 8), torch.randn(5, 1, 8, 8)
    ident = CyclePair(nn.Identity(), nn.Identity(), nn.Identity(), nn.Identity())
    assert float(cycle_l1(ident, a, b)) == 0.0

    class Shift(nn.Module):
        def forward(self, x):
            return x + 0.25

    shifted = CyclePair(Shift(), nn.Identity(), nn.Identity(), nn.Identity())
    # F(G(a)) - a = 0.25 and G(F(b)) - b = 0.25: the two directions add up
    assert float(cycle_l1(shifted, a, b)) == pytest.approx(0.5)


def test_image_pool_fills_then_mixes_history():
    g = torch.Generator().manual_seed(0)
    assert torch.equal(ImagePool(0).query(torch.ones(3, 1, 2, 2), g), torch.ones(3, 1, 2, 2))
    pool = ImagePool(4)
    first = torch.zeros(4, 1, 2, 2)
    assert torch.equal(pool.query(first, g), first)  # filling: returned as is
    new = torch.ones(64, 1, 2, 2)
    out = pool.query(new, g)
    values = out.flatten(1)[:, 0]
    assert set(values.tolist()) <= {0.0, 1.0}
    old = int((values == 0).sum())
    assert 1 <= old <= 4  # at most the 4 stored zeros come back, each once
    assert pool.images.shape[0] == 4
    # every returned old image was replaced by a new one
    assert int((pool.images.flatten(1)[:, 0] == 0).sum()) == 4 - old


# -- real steps ----------------------------------------------------------------------------------
def config(mnist_dir, cache, steps=4, transform="rot90", metrics=("cycle_error",), **model):
    return TrialConfig(
        study="t", variant="cyc", dataset_key="pair",
        model={"name": "cyclegan", "params": {**TINY, **model}}, loss={"name": "least_squares"},
        dataset={"name": "mnist_pair", "params": {"root": str(mnist_dir), "n_train": 64,
                                                   "transform": transform}},
        metrics=[{"name": m, "params": {"cache_dir": str(cache)}} if m != "cycle_error"
                 else {"name": m} for m in metrics],
        train={"steps": steps, "eval_every": 2, "log_every": 1, "eval_samples": 16,
               "batch_size": 4, "lr_g": 2e-4, "lr_d": 2e-4},
        seed=0)


@pytest.mark.parametrize("identity", [0.0, 0.5])
def test_a_few_real_steps(mnist_dir, cache, identity):
    rep = MemoryReporter()
    result = run_trial(config(mnist_dir, cache, lambda_identity=identity), rep)
    assert result.steps_done == 4 and result.status == names.STATUS_OK
    expected = set(names.STEP_HISTORIES) | {names.LOSS_CYCLE} | (
        {LOSS_IDENTITY} if identity else set())
    for _, row in result.history:
        assert set(row) == expected
        assert all(math.isfinite(v) for v in row.values()), row
    assert {names.CYCLE_ERROR, CYCLE_ERROR_AB, CYCLE_ERROR_BA} <= set(result.final)
    assert sorted(k for k in rep.artifacts if k.startswith("final")) == [
        "final_samples_ab.png", "final_samples_ba.png"]
    assert rep.artifacts["final_samples_ab.png"][:8] == b"\x89PNG\r\n\x1a\n"
    saved = torch.load(__import__("io").BytesIO(rep.artifacts[names.ARTIFACT_GENERATOR]))
    assert set(saved) == {"g_ab", "g_ba"}


def test_checkpoint_restore_continues_exactly(mnist_dir, cache):
    cfg = config(mnist_dir, cache, steps=6)
    straight = MemoryReporter(keep_checkpoints=True)
    run_trial(cfg, straight)
    resumed = MemoryReporter(resume=straight.checkpoints[0])  # state after step 2
    run_trial(cfg, resumed)
    assert resumed.result.history == straight.result.history
    assert resumed.result.final[names.CYCLE_ERROR] == straight.result.final[names.CYCLE_ERROR]


def test_generators_keep_the_image_shape(mnist_dir):
    for size in (28, 32, 64):
        ds = DATASETS.build("mnist_pair", {"root": str(mnist_dir), "size": size, "n_train": 8})
        p = MODELS.build("cyclegan", TINY).build(ds)
        x = ds.domain_a.train_data()[:2]
        assert p.g_ab(x).shape == x.shape and p.g_ba(x).shape == x.shape
        assert p.d_a(x).ndim == 1 and p.d_a(x).shape[0] % 2 == 0


# -- metrics against known answers -------------------------------------------------------
def translations(a, b, ab, ba, aba=None, bab=None, a_labels=None, b_labels=None):
    return Translations(a=a, ab=ab, aba=a if aba is None else aba, a_labels=a_labels,
                        b=b, ba=ba, bab=b if bab is None else bab, b_labels=b_labels)


def ctx(t):
    return EvalContext(step=1, final=False, generate=lambda n: t.ab[:n], translations=t)


def test_cycle_error_known_answers(pair):
    a, b = pair.domain_a.heldout_data()[:50], pair.domain_b.heldout_data()[:50]
    metric = METRICS.build("cycle_error", {})
    perfect = metric.evaluate(a, pair, ctx(translations(a, b, a, b))).values
    assert perfect[names.CYCLE_ERROR] == 0.0
    off = metric.evaluate(a, pair, ctx(translations(a, b, a, b, aba=a + 0.1, bab=b - 0.3)))
    assert off.values[CYCLE_ERROR_AB] == pytest.approx(0.1, abs=1e-6)
    assert off.values[CYCLE_ERROR_BA] == pytest.approx(0.3, abs=1e-6)
    assert off.values[names.CYCLE_ERROR] == pytest.approx(0.2, abs=1e-6)
    with pytest.raises(ValueError, match="two-way translator"):
        metric.evaluate(a, pair, EvalContext(step=1, final=False, generate=lambda n: a))


def test_translation_accuracy_and_fid_known_answers(pair, cache):
    A, B = pair.domain_a, pair.domain_b
    a, ya = A.heldout_data()[:400], A.heldout_labels()[:400]
    b, yb = B.heldout_data()[400:800], B.heldout_labels()[400:800]
    rotate = torch.rot90(a, k=1, dims=(-2, -1))
    unrotate = torch.rot90(b, k=-1, dims=(-2, -1))
    acc = METRICS.build("translation_accuracy", {"cache_dir": str(cache)})
    fid = METRICS.build("translation_fid", {"cache_dir": str(cache), "real_samples": 2000})
    acc.prepare(pair)
    fid.prepare(pair)
    # the right translators (exact rotations) keep the digit: accuracy near the classifiers'
    right = ctx(translations(a, b, rotate, unrotate, a_labels=ya, b_labels=yb))
    good = acc.evaluate(rotate, pair, right).values
    assert good[TRANSLATION_ACCURACY_AB] >= 0.9
    assert good[TRANSLATION_ACCURACY_BA] >= 0.9
    # identity "translators" hand B's classifier unrotated digits: far worse
    wrong = ctx(translations(a, b, a, b, a_labels=ya, b_labels=yb))
    bad = acc.evaluate(a, pair, wrong).values
    assert bad[names.TRANSLATION_ACCURACY] < good[names.TRANSLATION_ACCURACY] - 0.3
    # FID per direction: real target-domain images score far better than untranslated ones
    f_good, f_bad = fid.evaluate(rotate, pair, right).values, fid.evaluate(a, pair, wrong).values
    assert f_good[names.FID_AB] < 0.1 * f_bad[names.FID_AB]
    assert f_good[names.FID_BA] < 0.1 * f_bad[names.FID_BA]
    tags = acc.provenance(pair)
    assert float(tags[TAG_CLASSIFIER_ACCURACY_B]) >= 0.95
    assert tags[TAG_CLASSIFIER_HASH_A] != tags[TAG_CLASSIFIER_HASH_B]


# -- validation --------------------------------------------------------------------------------
def study(mnist_dir, dataset="pair", **variant):
    return parse_study({
        "name": "s",
        "datasets": {"pair": {"name": "mnist_pair", "params": {"root": str(mnist_dir)}},
                     "mnist": {"name": "mnist", "params": {"root": str(mnist_dir)}}},
        "metrics": [],
        "search": {"trials": 1, "space": {"lr_g": {"type": "choice", "values": [2e-4]}}},
        "variants": [{"name": "v", "model": {"name": "cyclegan", "params": TINY},
                      "datasets": [dataset], **variant}],
    })


def test_loss_defaults_to_least_squares(mnist_dir):
    (plan,) = resolve(study(mnist_dir))
    assert plan.base.loss.name == "least_squares"
    (plan,) = resolve(study(mnist_dir, loss="non_saturating"))
    assert plan.base.loss.name == "non_saturating"


@pytest.mark.parametrize("variant,fragment", [
    ({"datasets": ["mnist"]}, ("variants[0].model: model 'cyclegan' cannot be built for "
                               "dataset 'mnist': CycleGAN needs a two-domain dataset")),
    ({"tricks": ["historical_averaging"]}, ("variants[0].tricks: model 'cyclegan' plays its "
                                            "own game, which takes no tricks")),
])
def test_what_cannot_work_is_refused(mnist_dir, variant, fragment):
    with pytest.raises(ConfigError) as err:
        resolve(study(mnist_dir, **variant))
    assert fragment in str(err.value)


def test_translation_metrics_need_a_translator(mnist_dir):
    raw = study(mnist_dir).model_dump()
    raw["variants"][0]["model"] = {"name": "dcgan", "params": {"ngf": 4, "ndf": 4}}
    raw["variants"][0]["loss"] = {"name": "minimax", "params": {}}
    raw["metrics"] = None  # the pair's default metrics: cycle_error, translation_accuracy
    with pytest.raises(ConfigError, match="metric 'cycle_error' needs translation"):
        resolve(parse_study(raw))


def test_builds_through_the_trial_machinery(mnist_dir, cache):
    loop = build_trainer(config(mnist_dir, cache))
    assert type(loop).__name__ == "CycleLoop"
    assert loop.data_a.shape[0] == 32 and loop.data_b.shape[0] == 32


# -- the report -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cycle_report(mnist_dir, cache, tmp_path_factory, request):
    """Two variants x 2 seeds of tiny CycleGAN runs in-process into MLflow, then the report."""
    from harness.reports.stability import build_report
    from harness.tracking import MlflowReporter
    from tests.test_report import study_store

    tmp = tmp_path_factory.mktemp("cycle_store")
    client, uri, exp, parent = study_store(tmp, getattr(request.config, "cache", None), "cyc")
    for variant, extra in (("cyc", {}), ("no-cycle", {"lambda_cycle": 0.0})):
        for seed in (10_000, 10_001):
            cfg = config(mnist_dir, cache, metrics=("cycle_error", "translation_accuracy"),
                         **extra).model_copy(update={"variant": variant, "seed": seed,
                                                     "phase": names.PHASE_SEEDS})
            run_trial(cfg, MlflowReporter(uri, exp, parent, run_name=f"{variant} {seed}"))
    client.set_terminated(parent, "FINISHED")
    out = tmp_path_factory.mktemp("cycle_report")
    paths = build_report(client, exp, parent, out, attach=False)
    return paths["md"].read_text(), out


def test_report_shows_translation_metrics_and_round_trips(cycle_report):
    md, out = cycle_report
    section = md.split("## Image metrics", 1)[1].split("\n## ", 1)[0]
    assert "translation accuracy ↑" in section and "cycle error ↓" in section
    assert "95% CI (translation accuracy)" in section
    rows = [line for line in section.splitlines() if line.startswith(("| cyc", "| no-cycle"))]
    assert len(rows) == 2 and all("2 / 2" in r for r in rows)
    assert "Final samples (median run by translation_accuracy)" in md
    for variant in ("cyc", "no-cycle"):
        for key in ("ab", "ba"):
            assert (out / f"samples_pair_{variant}_{key}.png").is_file()
    assert "round trips F(G(a))" in md
    assert "(image_metrics_pair.png)" in md and (out / "image_metrics_pair.png").is_file()


def test_translation_metric_tags_are_provenance(mnist_dir, cache, pair):
    from harness.reports.provenance import is_provenance_tag

    fid = METRICS.build("translation_fid", {"cache_dir": str(cache), "real_samples": 100})
    tags = fid.provenance(pair)
    assert {TAG_CLASSIFIER_HASH_A, TAG_CLASSIFIER_HASH_B,
            names.TAG_TRANSLATION_FID_REAL} <= set(tags)
    assert all(is_provenance_tag(t) for t in tags)
