"""The xy game V(x, y) = x·y: known answers of each update rule, the orbit classification,
checkpoint/restore, validation, and the report's orbit section on a tiny in-process study."""

from __future__ import annotations

import copy
import itertools
import math
import subprocess
import sys
import time

import pytest
import torch
import yaml

from harness import names
from harness.builtin.xy_game import (
    CONVERGING_BELOW,
    DIVERGING_ABOVE,
    XYLoop,
    classify_orbit,
)
from harness.config import TrialConfig, load_study, parse_study
from harness.errors import ConfigError
from harness.plugins import load_plugins
from harness.registry import DATASETS, METRICS, MODELS, TRICKS
from harness.reporting import MemoryReporter
from harness.resolve import resolve
from harness.trial import build_trainer, run_trial

load_plugins()

TIMING = (names.TRAIN_SECONDS, names.STEPS_PER_SECOND)
PNG = b"\x89PNG\r\n\x1a\n"


def xy_config(update="simultaneous", average=False, lr=0.05, lr_d=None, steps=200,
              eval_every=None, log_every=1, seed=0, lr_scale=1.0, x0=1.0, y0=1.0,
              **train) -> TrialConfig:
    settings = {"steps": steps, "eval_every": eval_every or steps, "log_every": log_every,
                "lr_g": lr, "lr_d": lr if lr_d is None else lr_d, **train}
    return TrialConfig(
        study="t", variant=f"{update}{'-avg' if average else ''}", dataset_key="xy_game",
        model={"name": "xy_game",
               "params": {"update": update, "average": average, "lr_scale": lr_scale}},
        dataset={"name": "xy_game", "params": {"x0": x0, "y0": y0}},
        metrics=["equilibrium_distance"], train=settings, seed=seed)


def loop(**kw) -> XYLoop:
    trainer = build_trainer(xy_config(**kw))
    assert isinstance(trainer, XYLoop)
    return trainer


def walk(trainer: XYLoop, n: int) -> list[tuple[float, float]]:
    """The current iterate (not the reported point) after each of ``n`` steps."""
    out = []
    for _ in range(n):
        trainer.train_step(measure=False)
        trainer.step += 1
        out.append((float(trainer.x), float(trainer.y)))
    return out


@pytest.fixture
def draw_pictures():
    """Requested by the tests that need the orbit PNGs (see ``no_pictures``)."""


@pytest.fixture(autouse=True)
def no_pictures(monkeypatch, request):
    """Orbit PNGs are most of a tiny run's time; only tests asking for them draw them."""
    if "draw_pictures" not in request.fixturenames:
        monkeypatch.setattr(XYLoop, "pictures", lambda self, samples, title, prefix: {})


# --- known answers of the update rules ------------------------------------------------------


@pytest.mark.parametrize("lr,lr_scale", [(0.1, 1.0), (0.3, 1.0), (0.2, 0.5)])
def test_simultaneous_distance_grows_by_sqrt_one_plus_lr_squared_every_step(lr, lr_scale):
    t = loop(update="simultaneous", lr=lr, lr_scale=lr_scale, x0=0.6, y0=-1.3)
    step_lr = lr * lr_scale
    dist = [math.hypot(0.6, -1.3)] + [math.hypot(*p) for p in walk(t, 50)]
    for before, after in itertools.pairwise(dist):
        assert after / before == pytest.approx(math.sqrt(1 + step_lr ** 2), rel=1e-12)
    assert dist[-1] / dist[0] == pytest.approx((1 + step_lr ** 2) ** 25, rel=1e-10)


def test_simultaneous_step_by_hand():
    t = loop(update="simultaneous", lr=0.1, lr_d=0.3, x0=2.0, y0=1.0)
    (x1, y1), (x2, y2) = walk(t, 2)
    assert (x1, y1) == pytest.approx((2.0 - 0.1 * 1.0, 1.0 + 0.3 * 2.0))
    assert (x2, y2) == pytest.approx((x1 - 0.1 * y1, y1 + 0.3 * x1))


def test_alternating_orbit_is_bounded_and_keeps_its_invariant():
    lr = 0.1
    t = loop(update="alternating", lr=lr)
    points = walk(t, 20_000)
    # y moves first, then x answers the new y: x² + y² + lr·x·y is conserved exactly
    q0 = 1.0 + 1.0 + lr * 1.0 * 1.0
    for x, y in points[::997] + points[-1:]:
        assert x * x + y * y + lr * x * y == pytest.approx(q0, rel=1e-9)
    dists = [math.hypot(*p) for p in points]
    # the ellipse's radii: sqrt(q0 / (1 ± lr/2)); bounded, never near 0 nor far away
    assert min(dists) >= math.sqrt(q0 / (1 + lr / 2)) - 1e-9
    assert max(dists) <= math.sqrt(q0 / (1 - lr / 2)) + 1e-9
    assert max(dists) / min(dists) < 1.11


def test_alternating_moves_y_first():
    t = loop(update="alternating", lr=0.1, lr_d=0.3, x0=2.0, y0=1.0)
    ((x1, y1),) = walk(t, 1)
    assert y1 == pytest.approx(1.0 + 0.3 * 2.0)
    assert x1 == pytest.approx(2.0 - 0.1 * y1)


def test_optimistic_update_by_hand_and_convergence():
    lr = 0.1
    t = loop(update="optimistic", lr=lr, x0=2.0, y0=1.0)
    (x1, y1), (x2, y2) = walk(t, 2)
    # first step: g_{-1} = g_0, a plain simultaneous step
    assert (x1, y1) == pytest.approx((2.0 - lr * 1.0, 1.0 + lr * 2.0))
    # then theta_{t+1} = theta_t - 2 lr g_t + lr g_{t-1} (gradient of x is y, of y is x)
    assert x2 == pytest.approx(x1 - 2 * lr * y1 + lr * 1.0)
    assert y2 == pytest.approx(y1 + 2 * lr * x1 - lr * 2.0)
    rest = walk(t, 998)
    # the distance shrinks by about 1 - lr²/2 per step: e^-5 = 0.0067 after 1,000 steps
    assert math.hypot(*rest[-1]) / math.hypot(2.0, 1.0) < 0.01
    assert math.hypot(*rest[-1]) < math.hypot(*rest[499]) < math.hypot(x2, y2)


def test_averaging_reports_the_mean_of_the_iterates_which_converges():
    lr = 0.05
    t = loop(update="simultaneous", average=True, lr=lr, steps=2000)
    points = [(1.0, 1.0)] + walk(t, 2000)
    mean = (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))
    reported = t.sample()
    assert reported.shape == (1, 2) and reported.dtype == torch.float64
    assert reported[0].tolist() == pytest.approx(mean, rel=1e-9, abs=1e-12)
    start = math.sqrt(2)
    assert math.hypot(*points[-1]) / start > 10  # the iterates spiral out
    assert math.hypot(*mean) / start < CONVERGING_BELOW  # their mean converges


# --- the orbit classification ---------------------------------------------------------------


@pytest.mark.parametrize("distances,diverged,expected", [
    ([1.0, 0.49], False, names.ORBIT_CONVERGING),
    ([1.0, 3.0, 0.2], False, names.ORBIT_CONVERGING),  # only the ends count
    ([1.0, 0.5], False, names.ORBIT_OSCILLATING),  # the threshold itself is not below
    ([2.0, 1.5, 2.5, 4.0], False, names.ORBIT_OSCILLATING),  # exactly 2x is not above
    ([1.0, 2.01], False, names.ORBIT_DIVERGING),
    ([1.0, 0.1], True, names.ORBIT_DIVERGING),  # the loop stopped as diverged
    ([1.0, math.inf], False, names.ORBIT_DIVERGING),
    ([1.0, math.nan, 1.0], False, names.ORBIT_DIVERGING),
])
def test_classify_orbit(distances, diverged, expected):
    assert classify_orbit(distances, diverged=diverged) == expected


def test_classify_orbit_thresholds_and_bad_input():
    assert (CONVERGING_BELOW, DIVERGING_ABOVE) == (0.5, 2.0)
    assert classify_orbit([1.0, 0.7], converging_below=0.8) == names.ORBIT_CONVERGING
    assert classify_orbit([1.0, 1.5], diverging_above=1.2) == names.ORBIT_DIVERGING
    with pytest.raises(ValueError, match="at least 2"):
        classify_orbit([1.0])
    with pytest.raises(ValueError, match="start distance must be a positive"):
        classify_orbit([0.0, 1.0])
    with pytest.raises(ValueError, match="negative"):
        classify_orbit([1.0, -0.5])
    with pytest.raises(ValueError, match="thresholds"):
        classify_orbit([1.0, 1.0], converging_below=2.0)


# --- whole trials ----------------------------------------------------------------------------


@pytest.mark.parametrize("update,average,orbit", [
    ("simultaneous", False, names.ORBIT_DIVERGING),
    ("alternating", False, names.ORBIT_OSCILLATING),
    ("optimistic", False, names.ORBIT_CONVERGING),
    ("simultaneous", True, names.ORBIT_CONVERGING),
])
def test_trial_records_histories_metrics_and_orbit(update, average, orbit):
    cfg = xy_config(update=update, average=average, lr=0.05, steps=2000, eval_every=500,
                    log_every=10)
    reporter = MemoryReporter()
    result = run_trial(cfg, reporter)
    assert result.status == names.STATUS_OK and result.steps_done == 2000
    assert result.tags == {names.TAG_ORBIT: orbit}
    assert [s for s, _ in result.history] == list(range(10, 2001, 10))
    for _, row in result.history:
        assert set(row) == {names.XY_X, names.XY_Y, names.XY_DISTANCE, names.LOSS_D,
                            names.LOSS_G}
        assert row[names.XY_DISTANCE] == pytest.approx(math.hypot(row[names.XY_X],
                                                                  row[names.XY_Y]))
        assert row[names.LOSS_D] == -row[names.LOSS_G]
    last = result.history[-1][1]
    final = result.final
    assert final[names.XY_FINAL_DISTANCE] == pytest.approx(last[names.XY_DISTANCE])
    assert final[names.XY_DISTANCE_RATIO] == pytest.approx(
        final[names.XY_FINAL_DISTANCE] / math.sqrt(2))
    assert [s for s, _ in reporter.evals] == [500, 1000, 1500, 2000]
    if not average:  # the loss is V at the current iterate, which is the reported point
        assert last[names.LOSS_G] == pytest.approx(last[names.XY_X] * last[names.XY_Y])


def test_the_seed_changes_nothing():
    a = run_trial(xy_config(seed=0), MemoryReporter())
    b = run_trial(xy_config(seed=123), MemoryReporter())
    assert a.history == b.history


def test_divergence_stops_training_and_is_a_diverging_orbit():
    cfg = xy_config(update="simultaneous", lr=1.0, steps=2000, eval_every=500, log_every=1)
    result = run_trial(cfg, MemoryReporter())
    # lr = 1 from (1, 1): (x + iy) is multiplied by 1 + i each step, so r² doubles and the
    # angle turns by 45°; |V| = r²/2·|sin 2θ| is 2^t at even steps t, 0 at odd ones: the
    # first above diverge_loss = 1e6 is 2^20 at step 20, where training stops
    assert result.status == names.STATUS_DIVERGED
    assert result.steps_done == 20 and result.history[-1][0] == 20
    assert abs(result.history[-1][1][names.LOSS_G]) == 2.0 ** 20
    assert result.final[names.XY_DISTANCE_RATIO] == pytest.approx(2.0 ** 10)
    # the first logged loss to go bad names the step and the limit it crossed
    assert result.tags == {
        names.TAG_ORBIT: names.ORBIT_DIVERGING,
        names.TAG_DIVERGED_REASON: "loss_d = -1.04858e+06 at step 20, beyond diverge_loss 1e+06",
    }


def test_pictures_draw_the_orbit(draw_pictures):
    reporter = MemoryReporter()
    run_trial(xy_config(steps=100, eval_every=50, log_every=5), reporter)
    assert set(reporter.artifacts) == {"samples/step_0000050.png", names.ARTIFACT_FINAL_SAMPLES}
    assert all(v.startswith(PNG) for v in reporter.artifacts.values())


# --- checkpoint / restore --------------------------------------------------------------------


class SnapshotReporter(MemoryReporter):
    def evaluation(self, step, values, artifacts, checkpoint):
        super().evaluation(step, values, artifacts, lambda: copy.deepcopy(checkpoint()))


@pytest.mark.parametrize("update,average", [("simultaneous", False), ("alternating", False),
                                            ("optimistic", False), ("optimistic", True)])
def test_restore_continues_bit_identically(update, average):
    cfg = xy_config(update=update, average=average, lr=0.07, steps=300, eval_every=100,
                    log_every=7)
    full = SnapshotReporter(keep_checkpoints=True)
    result = run_trial(cfg, full)
    state = full.checkpoints[0]
    assert state["step"] == 100
    assert (state["xy_game"]["prev_gx"] is not None) == (update == "optimistic")
    resumed = MemoryReporter(resume=copy.deepcopy(state))
    again = run_trial(cfg, resumed)
    assert again.history == result.history  # exact float equality, every row
    assert {k: v for k, v in again.final.items() if k not in TIMING} == \
        {k: v for k, v in result.final.items() if k not in TIMING}
    assert again.tags == result.tags
    assert [s for s, _ in resumed.evals] == [200, 300]
    # and the game state itself: the same bits
    t_full, t_again = build_trainer(cfg), build_trainer(cfg)
    t_full.load_state_dict(full.checkpoints[-1])
    t_again.load_state_dict(copy.deepcopy(full.checkpoints[0]))
    for _ in range(200):
        t_again.train_step(measure=False)
    for key in ("x", "y", "mean_x", "mean_y"):
        assert torch.equal(getattr(t_again, key), getattr(t_full, key)), key


# --- validation ------------------------------------------------------------------------------

XY_STUDY = {
    "name": "xy-unit",
    "seeds": 1,
    "datasets": ["xy_game"],
    "train": {"steps": 50, "eval_every": 50, "log_every": 10, "lr_g": 0.05, "lr_d": 0.05},
    "search": {"trials": 1, "metric": names.XY_FINAL_DISTANCE,
               "space": {"lr_g": {"type": "choice", "values": [0.05]}}},
    "variants": [{"name": "sim", "model": "xy_game"}],
}


def xy_study(**variant_changes) -> dict:
    d = copy.deepcopy(XY_STUDY)
    d["variants"][0].update(variant_changes)
    return d


def resolve_error(raw) -> str:
    with pytest.raises(ConfigError) as exc:
        resolve(parse_study(raw))
    return str(exc.value)


def test_base_xy_study_resolves_with_its_default_metric():
    plans = resolve(parse_study(xy_study()))
    assert [p.key for p in plans] == ["sim/xy_game"]
    assert plans[0].base.loss is None
    assert [m.name for m in plans[0].base.metrics] == ["equilibrium_distance"]


def test_loss_is_refused_by_the_cli_with_exit_2_and_the_key_path(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(xy_study(loss="minimax")))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "study", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert "variants[0].loss: model 'xy_game' plays its own game and takes no loss" in err[0]
    assert "remove 'loss: minimax'" in err[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("trick", TRICKS.names())
def test_every_trick_is_refused(trick):
    msg = resolve_error(xy_study(tricks=[trick]))
    assert msg.startswith("study: variants[0].tricks: model 'xy_game'"), msg
    assert trick in msg


def test_xy_model_on_a_mixture_is_refused():
    raw = xy_study(datasets=["ring8"])
    raw["datasets"] = ["xy_game", "ring8"]
    msg = resolve_error(raw)
    assert "variants[0].model: model 'xy_game' cannot be built for dataset 'ring8'" in msg
    assert "the xy game is played on the 'xy_game' dataset" in msg


def test_a_gan_on_the_xy_dataset_is_refused_by_its_metric():
    msg = resolve_error(xy_study(model="mlp", loss="minimax"))
    assert "metrics[0]: metric 'equilibrium_distance' needs xy_players, which model 'mlp'" in msg


def test_the_distance_metric_only_applies_to_the_xy_dataset():
    raw = xy_study()
    raw["metrics"] = ["mode_coverage"]
    msg = resolve_error(raw)
    assert "metrics[0]: metric 'mode_coverage' does not apply to dataset 'xy_game'" in msg
    metric = METRICS.build("equilibrium_distance")
    assert not metric.applies_to(DATASETS.build("ring8"))
    with pytest.raises(ValueError, match=r"shape \(1, 2\); got shape \(3, 2\)"):
        metric.evaluate(torch.zeros(3, 2), DATASETS.build("xy_game"))
    ev = metric.evaluate(torch.tensor([[3.0, 4.0]]), DATASETS.build("xy_game", {"x0": 0.0,
                                                                                "y0": 2.0}))
    assert ev.values == {names.XY_FINAL_DISTANCE: 5.0, names.XY_DISTANCE_RATIO: 2.5}


@pytest.mark.parametrize("model,fragment", [
    ({"name": "xy_game", "params": {"update": "sideways"}},
     ("variants[0].model.params.update: Input should be 'simultaneous', 'alternating' or "
      "'optimistic'")),
    ({"name": "xy_game", "params": {"lr_scale": 0}}, "lr_scale must be a positive number"),
    ({"name": "xy_game", "params": {"lr": 0.1}},
     "unknown parameter of model 'xy_game'; allowed: update, average, lr_scale"),
])
def test_bad_model_params(model, fragment):
    assert fragment in resolve_error(xy_study(model=model))


def test_start_at_the_equilibrium_is_refused():
    raw = xy_study()
    raw["datasets"] = {"xy_game": {"name": "xy_game", "params": {"x0": 0, "y0": 0}}}
    msg = resolve_error(raw)
    assert "datasets.xy_game.params: dataset 'xy_game'" in msg
    assert "(0, 0) is the equilibrium itself" in msg


def test_d_steps_is_refused_when_the_trial_starts():
    with pytest.raises(ValueError, match="train.d_steps must be 1, got 2"):
        build_trainer(xy_config(d_steps=2))


def test_the_study_file_resolves():
    spec = load_study("studies/xy-game.yaml")
    plans = resolve(spec)
    assert [p.base.variant for p in plans] == [
        "simultaneous", "alternating", "optimistic", "averaging", "simultaneous-small-lr"]
    assert spec.search.space and spec.search.metric == names.XY_FINAL_DISTANCE
    assert spec.seeds == 2


def test_harness_variants_lists_the_xy_game(capsys):
    from harness.cli import main

    assert main(["variants"]) == 0
    out = capsys.readouterr().out
    models = out.split("models:", 1)[1].split("losses:", 1)[0]
    datasets = out.split("datasets:", 1)[1].split("metrics:", 1)[0]
    metrics = out.split("metrics:", 1)[1]
    assert "  xy_game " in models and "update: Literal['simultaneous'" in models
    assert "  xy_game " in datasets and "x0: float = 1.0" in datasets
    assert "  equilibrium_distance " in metrics
    assert MODELS.get("xy_game").uses_loss is False


# --- the report --------------------------------------------------------------------------------

REPORT_VARIANTS = {  # variant -> (model params, expected orbit); lr 0.05, 2000 steps
    "sim": ({"update": "simultaneous"}, names.ORBIT_DIVERGING),
    "alt": ({"update": "alternating"}, names.ORBIT_OSCILLATING),
    "ogda": ({"update": "optimistic"}, names.ORBIT_CONVERGING),
    "avg": ({"update": "simultaneous", "average": True}, names.ORBIT_CONVERGING),
}


def _xy_trial(uri, exp, parent, variant, params, seed, phase=names.PHASE_SEEDS):
    from harness.tracking import MlflowReporter

    cfg = TrialConfig(
        study="xy", variant=variant, dataset_key="xy_game",
        model={"name": "xy_game", "params": params}, dataset="xy_game",
        metrics=["equilibrium_distance"], seed=seed, phase=phase,
        train={"steps": 2000, "eval_every": 1000, "log_every": 20, "lr_g": 0.05, "lr_d": 0.05})
    return run_trial(cfg, MlflowReporter(uri, exp, parent, run_name=f"{variant} {seed}"))


@pytest.fixture(scope="module")
def xy_store(tmp_path_factory, request):
    """A tiny xy study run in-process into a fresh MLflow store: 2 seeds per variant and one
    search trial of 'sim'. The orbit pictures are not drawn (the report does not read them)."""
    from tests.test_report import study_store

    tmp = tmp_path_factory.mktemp("xy_store")
    client, uri, exp, parent = study_store(tmp, getattr(request.config, "cache", None), "xy")
    mp = pytest.MonkeyPatch()
    mp.setattr(XYLoop, "pictures", lambda self, samples, title, prefix: {})
    try:
        runs = []
        for variant, (params, _) in REPORT_VARIANTS.items():
            for seed in (10_000, 10_001):
                runs.append(_xy_trial(uri, exp, parent, variant, params, seed))
            if variant == "sim":
                runs.append(_xy_trial(uri, exp, parent, variant, params, 0, names.PHASE_SEARCH))
    finally:
        mp.undo()
    client.set_terminated(parent, "FINISHED")
    return {"client": client, "uri": uri, "exp": exp, "parent": parent, "runs": runs,
            "tmp": tmp}


@pytest.fixture(scope="module")
def xy_report(xy_store, tmp_path_factory):
    from harness.reports.stability import build_report

    out = tmp_path_factory.mktemp("xy_report")
    t0 = time.perf_counter()
    paths = build_report(xy_store["client"], xy_store["exp"], xy_store["parent"], out)
    return {"paths": paths, "md": paths["md"].read_text(),
            "seconds": time.perf_counter() - t0}


def _orbit_section(md: str) -> str:
    assert "## Orbits (xy game)" in md
    return md.split("## Orbits (xy game)", 1)[1].split("\n## ", 1)[0]


def _orbit_rows(section: str) -> list[str]:
    return [line for line in section.splitlines()
            if line.startswith("| ") and " | xy_game | " in line]


def test_report_orbit_table(xy_store, xy_report):
    section = _orbit_section(xy_report["md"])
    rows = {line.split(" | ")[0].lstrip("| "): line for line in _orbit_rows(section)}
    assert set(rows) == set(REPORT_VARIANTS)
    for variant, (_, orbit) in REPORT_VARIANTS.items():
        # the seeds phase: 2 runs, both with the expected orbit (the search run left out)
        assert f"| {variant} | xy_game | seeds | 2 | {orbit} 2 |" in rows[variant], rows[variant]
    assert {r.tags[names.TAG_ORBIT] for r in xy_store["runs"]} == set(names.ORBITS)
    # the deterministic game: both seeds end at the same distance (sd 0)
    sim = next(r for r in xy_store["runs"] if r.tags[names.TAG_ORBIT] == names.ORBIT_DIVERGING)
    assert f"| {sim.final[names.XY_FINAL_DISTANCE]:.3g} ± 0 |" in rows["sim"], rows["sim"]
    assert rows["sim"].endswith("| 0.05 | 0.05 | model.update=simultaneous |"), rows["sim"]
    assert rows["avg"].endswith("| model.average=True, model.update=simultaneous |")
    # sorted by final / start distance: the converging ones first, the diverging one last
    order = [line.split(" | ")[0].lstrip("| ") for line in _orbit_rows(section)]
    assert order[-2:] == ["alt", "sim"] and set(order[:2]) == {"ogda", "avg"}
    assert f"**converging**: {order[0]}, {order[1]}; **oscillating**: alt; " \
           "**diverging**: sim." in section


def test_report_orbit_figure(xy_report):
    paths, md = xy_report["paths"], xy_report["md"]
    assert "orbits_xy_game" in paths
    assert paths["orbits_xy_game"].read_bytes().startswith(PNG)
    assert "](orbits_xy_game.png)" in _orbit_section(md)
    html = paths["html"].read_text()
    assert html.count("<img") == sum(p.suffix == ".png" for p in paths.values())
    assert "<h2>Orbits (xy game)</h2>" in html


def test_report_gan_sections_survive_a_study_of_only_xy_runs(xy_report):
    md = xy_report["md"]
    for heading in ("## Summary over seeds", "## Pairwise comparisons", "## Score vs budget",
                    "## Dataset `xy_game`", "## Best hyperparameters", "## Search trials",
                    "## Failures"):
        assert heading in md, heading
    assert "| sim | xy_game | seeds | 2 | — |" in md  # no modes to cover: dashes
    assert "No finished search-phase trials with `modes_covered`" in md
    assert "No run failed or was stopped." in md
    # no modes to count: the variants are compared on their final distance to (0, 0)
    pairwise = md[md.index("## Pairwise comparisons"):md.index("## Score vs budget")]
    assert "compared on `xy_final_distance`" in pairwise and "| 0 / 0 |" not in pairwise
    assert "| alt | avg | 2 / 2 |" in pairwise
    # the orbit section comes right after the summary table
    assert md.index("## Summary over seeds") < md.index("## Orbits (xy game)") \
        < md.index("## Pairwise comparisons")


def test_report_finds_xy_runs_by_their_histories_not_their_names(xy_store, tmp_path):
    """A study with a GAN run and one xy run under an unhelpful variant name."""
    import pandas as pd

    from harness.reports.stability import build_report
    from tests.test_report import _make_run, _png

    client, exp = xy_store["client"], xy_store["exp"]
    parent = client.create_run(exp, tags={names.TAG_KIND: "study",
                                          names.TAG_STUDY: "mixed"}).info.run_id
    _make_run(client, exp, parent, "gan", 0, names.PHASE_SEEDS, 8.0, "0.001",
              _png(tmp_path / names.ARTIFACT_FINAL_SAMPLES))
    mp = pytest.MonkeyPatch()
    mp.setattr(XYLoop, "pictures", lambda self, samples, title, prefix: {})
    try:
        _xy_trial(xy_store["uri"], exp, parent, "mystery", {"update": "optimistic"}, 1)
    finally:
        mp.undo()
    paths = build_report(client, exp, parent, tmp_path / "out", attach=False)
    md = paths["md"].read_text()
    rows = _orbit_rows(_orbit_section(md))
    assert len(rows) == 1 and rows[0].startswith("| mystery | xy_game | seeds | 1 | converging 1 |")
    assert "| gan | ring8 | seeds | 1 | 8.00 / 8 |" in md  # the GAN row as before
    csv = pd.read_csv(paths["csv"])
    assert list(csv.loc[csv[names.TAG_VARIANT] == "mystery", names.TAG_ORBIT]) == ["converging"]
    assert csv.loc[csv[names.TAG_VARIANT] == "gan", names.TAG_ORBIT].isna().all()


def test_is_xy_run_and_an_orbit_free_frame():
    import pandas as pd

    from harness.reports.orbits import is_xy_run, summarize_orbits

    df = pd.DataFrame({names.XY_X: [0.1, float("nan"), float("nan")],
                       names.TAG_ORBIT: [None, names.ORBIT_CONVERGING, None]})
    assert list(is_xy_run(df)) == [True, True, False]
    assert not is_xy_run(pd.DataFrame({names.MODES_COVERED: [8.0]})).any()
    assert summarize_orbits(pd.DataFrame({names.MODES_COVERED: [8.0]}), {}).empty
