"""Known answers of the mode-coverage protocol (VEEGAN / PacGAN)."""

import math

import pytest
import torch

from harness import names
from harness.metrics import Coverage, Evaluation, Metric, ModeCoverage, mode_coverage
from harness.plugins import load_plugins
from harness.registry import DATASETS, METRICS

load_plugins()

# Fraction of an isotropic 2-D Gaussian within 3 standard deviations of its centre:
# the radius is Rayleigh distributed, P(r <= 3 sigma) = 1 - exp(-9/2) = 0.98889.
HQ_2D_3SIGMA = 1.0 - math.exp(-4.5)


@pytest.fixture(scope="module")
def ring8():
    return DATASETS.build("ring8")


@pytest.fixture(scope="module")
def grid25():
    return DATASETS.build("grid25")


def draw(dataset, n, seed=0):
    return dataset.sample(n, torch.Generator().manual_seed(seed))


def test_datasets_have_the_published_geometry(ring8, grid25):
    assert ring8.n_modes == 8 and ring8.std == 0.01 and ring8.shape == (2,)
    assert torch.allclose(ring8.centres.norm(dim=1), torch.ones(8))
    assert grid25.n_modes == 25 and grid25.std == 0.05
    assert sorted(set(grid25.centres[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]


def test_true_ring8_samples_cover_every_mode(ring8):
    x, _ = draw(ring8, 10_000)
    cov = mode_coverage(x, ring8.centres, ring8.std)
    assert isinstance(cov, Coverage)
    assert cov.modes_covered == 8
    assert cov.covered == frozenset(range(8))
    assert cov.hq_fraction == pytest.approx(HQ_2D_3SIGMA, abs=0.005)
    assert cov.hq_fraction >= 0.98
    assert cov.mode_kl < 0.01
    assert sum(cov.counts) == round(cov.hq_fraction * 10_000)
    assert len(cov.counts) == 8


def test_training_set_covers_every_mode(ring8):
    cov = mode_coverage(ring8.train_data()[:10_000], ring8.centres, ring8.std)
    assert cov.modes_covered == 8 and cov.mode_kl < 0.01


def test_true_grid25_samples_cover_every_mode(grid25):
    x, _ = draw(grid25, 10_000, seed=1)
    cov = mode_coverage(x, grid25.centres, grid25.std)
    assert cov.modes_covered == 25
    assert cov.hq_fraction == pytest.approx(HQ_2D_3SIGMA, abs=0.005)
    assert cov.mode_kl < 0.01


def test_exact_centres_are_all_high_quality(ring8):
    cov = mode_coverage(ring8.centres.repeat(10, 1), ring8.centres, ring8.std)
    assert cov.modes_covered == 8
    assert cov.hq_fraction == 1.0
    assert cov.mode_kl == pytest.approx(0.0, abs=1e-12)
    assert cov.counts == (10,) * 8


def test_three_of_eight_modes_exact(ring8):
    pts = ring8.centres[[0, 3, 5]].repeat(20, 1)
    cov = mode_coverage(pts, ring8.centres, ring8.std)
    assert cov.modes_covered == 3
    assert cov.covered == frozenset({0, 3, 5})
    assert cov.hq_fraction == 1.0
    assert cov.mode_kl == pytest.approx(math.log(8 / 3), abs=1e-9)
    assert cov.counts == (20, 0, 0, 20, 0, 20, 0, 0)


def test_three_of_eight_modes_sampled(ring8):
    g = torch.Generator().manual_seed(3)
    idx = torch.tensor([1, 2, 6])[torch.randint(0, 3, (6000,), generator=g)]
    pts = ring8.centres[idx] + ring8.std * torch.randn(6000, 2, generator=g)
    cov = mode_coverage(pts, ring8.centres, ring8.std)
    assert cov.modes_covered == 3
    assert cov.covered == frozenset({1, 2, 6})
    assert cov.mode_kl == pytest.approx(math.log(8 / 3), abs=0.01)


def test_single_mode_is_a_point_mass(ring8):
    cov = mode_coverage(ring8.centres[[4]].repeat(7, 1), ring8.centres, ring8.std)
    assert cov.modes_covered == 1
    assert cov.mode_kl == pytest.approx(math.log(8), abs=1e-12)


def test_far_away_points_cover_nothing(ring8):
    pts = torch.full((100, 2), 100.0)
    cov = mode_coverage(pts, ring8.centres, ring8.std)
    assert cov.modes_covered == 0
    assert cov.covered == frozenset()
    assert cov.hq_fraction == 0.0
    assert cov.mode_kl == math.log(8)
    assert cov.counts == (0,) * 8


def test_points_between_modes_are_not_high_quality(ring8):
    # the origin is 1 = 100 std away from every centre; 3.5 std off a centre is out too
    pts = torch.tensor([[0.0, 0.0], [1.0 + 3.5 * 0.01, 0.0], [1.0 + 2.5 * 0.01, 0.0]])
    cov = mode_coverage(pts, ring8.centres, ring8.std)
    assert cov.counts == (1, 0, 0, 0, 0, 0, 0, 0)
    assert cov.hq_fraction == pytest.approx(1 / 3)


def test_n_std_widens_the_quality_radius(ring8):
    pts = torch.tensor([[1.0 + 3.5 * 0.01, 0.0]])
    assert mode_coverage(pts, ring8.centres, ring8.std).modes_covered == 0
    assert mode_coverage(pts, ring8.centres, ring8.std, n_std=4.0).modes_covered == 1


def test_nan_samples_are_ignored_and_not_high_quality(ring8):
    good = ring8.centres  # one sample on every mode
    bad = torch.tensor([[float("nan"), 0.0], [float("inf"), 1.0], [float("nan")] * 2,
                        [0.0, -float("inf")]] * 2)
    cov = mode_coverage(torch.cat([good, bad]), ring8.centres, ring8.std)
    assert cov.modes_covered == 8
    assert cov.hq_fraction == pytest.approx(0.5)  # 8 good of 16
    assert cov.mode_kl == pytest.approx(0.0, abs=1e-12)
    assert all(math.isfinite(v) for v in (cov.hq_fraction, cov.mode_kl))


def test_all_nan_samples(ring8):
    cov = mode_coverage(torch.full((10, 2), float("nan")), ring8.centres, ring8.std)
    assert cov.modes_covered == 0 and cov.hq_fraction == 0.0
    assert cov.mode_kl == math.log(8)


def test_min_hq_per_mode_threshold(ring8):
    c = ring8.centres
    pts = torch.cat([c[[0]].repeat(5, 1), c[[1]].repeat(2, 1), c[[2]].repeat(1, 1)])
    assert mode_coverage(pts, c, ring8.std, min_hq_per_mode=1).covered == frozenset({0, 1, 2})
    assert mode_coverage(pts, c, ring8.std, min_hq_per_mode=2).covered == frozenset({0, 1})
    assert mode_coverage(pts, c, ring8.std, min_hq_per_mode=5).covered == frozenset({0})
    cov = mode_coverage(pts, c, ring8.std, min_hq_per_mode=6)
    assert cov.modes_covered == 0
    # the threshold changes coverage only, not quality or the histogram
    assert cov.hq_fraction == 1.0
    p = torch.tensor([5, 2, 1], dtype=torch.float64) / 8
    assert cov.mode_kl == pytest.approx(float((p * torch.log(p * 8)).sum()), abs=1e-9)


def test_wrong_sample_shape_is_refused(ring8):
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        mode_coverage(torch.zeros(4, 3), ring8.centres, ring8.std)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        mode_coverage(torch.zeros(4), ring8.centres, ring8.std)


# --- the registered metric ------------------------------------------------------------


def test_mode_coverage_metric_is_registered():
    assert METRICS.get("mode_coverage") is ModeCoverage
    assert issubclass(ModeCoverage, Metric)
    assert ModeCoverage.provides == (names.MODES_COVERED, names.HQ_FRACTION, names.MODE_KL)


def test_mode_coverage_metric_evaluate(ring8):
    metric = METRICS.build("mode_coverage")
    assert metric.applies_to(ring8)
    pts = torch.cat([ring8.centres[[0, 3, 5]].repeat(4, 1), torch.full((4, 2), 50.0)])
    ev = metric.evaluate(pts, ring8)
    assert isinstance(ev, Evaluation)
    assert set(ev.values) == set(ModeCoverage.provides)
    assert ev.values[names.MODES_COVERED] == 3.0
    assert isinstance(ev.values[names.MODES_COVERED], float)
    assert ev.values[names.HQ_FRACTION] == pytest.approx(12 / 16)
    assert ev.values[names.MODE_KL] == pytest.approx(math.log(8 / 3))
    assert ev.extras["covered_modes"] == frozenset({0, 3, 5})
    assert ev.extras[names.N_MODES] == 8


def test_mode_coverage_metric_params(ring8):
    pts = ring8.centres[[0, 0, 1]]
    assert METRICS.build("mode_coverage", {"min_hq_per_mode": 2}).evaluate(
        pts, ring8).extras["covered_modes"] == frozenset({0})
    far = torch.tensor([[1.0 + 3.5 * 0.01, 0.0]])
    assert METRICS.build("mode_coverage", {"n_std": 4}).evaluate(
        far, ring8).values[names.MODES_COVERED] == 1.0


@pytest.mark.parametrize("params", [{"n_std": 0}, {"n_std": -1.0}, {"min_hq_per_mode": 0}])
def test_mode_coverage_metric_refuses_bad_params(params):
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="metric 'mode_coverage'"):
        METRICS.build("mode_coverage", params)


def test_mode_coverage_does_not_apply_without_centres():
    from harness.data import Dataset

    class Plain(Dataset):
        shape = (2,)

        def train_data(self):
            return torch.zeros(1, 2)

    assert not ModeCoverage().applies_to(Plain())
