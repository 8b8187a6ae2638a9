"""Every default recorded: a trial's config (its ``config.json``) and MLflow params name every
parameter of its model, loss, tricks, dataset and metrics, defaults filled in (issue 24)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from pydantic_core import to_jsonable_python

from harness import names
from harness.config import (
    ComponentSpec,
    TrialConfig,
    config_json,
    load_study,
    parse_study,
)
from harness.registry import DATASETS, LOSSES, METRICS, MODELS, TRICKS, Registry
from harness.resolve import resolve, resolved_component

SMALL = {
    "name": "recorded",
    "seeds": 1,
    "datasets": {"ring8": {"name": "ring8", "params": {"std": 0.02}}},
    "metrics": [{"name": "mode_coverage", "params": {"n_std": 2}}],
    "train": {"steps": 40, "eval_every": 20, "eval_samples": 200, "log_every": 10,
              "batch_size": 32},
    "search": {"trials": 1, "space": {"lr_d": {"type": "loguniform", "low": 1e-4, "high": 1e-3}}},
    "variants": [{"name": "v", "model": {"name": "mlp", "params": {"g_hidden": [8], "d_hidden": [8]}},
                  "loss": "least_squares"}],
}
WITH_TRICKS = copy.deepcopy(SMALL)
WITH_TRICKS["variants"][0]["tricks"] = [
    "one_sided_label_smoothing", {"name": "minibatch_discrimination", "params": {"b": 4}}]


def components(cfg: TrialConfig):
    """(registry, spec, flat prefix) of every plugin of ``cfg``."""
    out = [(MODELS, cfg.model, "model."), (DATASETS, cfg.dataset, "dataset.")]
    if cfg.loss is not None:
        out.append((LOSSES, cfg.loss, "loss."))
    out += [(TRICKS, t, f"trick.{t.name}.") for t in cfg.tricks]
    out += [(METRICS, m, f"metric.{m.name}.") for m in cfg.metrics]
    return out


def assert_every_default(cfg: TrialConfig, given: dict[str, dict]) -> None:
    """Every registered parameter is in ``cfg`` and its flat params: ``given[name]``'s value
    where the study set one, else the default."""
    flat = cfg.flat_params()
    for reg, comp, prefix in components(cfg):
        registered = reg.params(comp.name)
        assert set(comp.params) == {p.name for p in registered}, (comp.name, comp.params)
        for p in registered:
            want = given.get(comp.name, {}).get(p.name, to_jsonable_python(p.default))
            assert comp.params[p.name] == want, (comp.name, p.name)
            assert flat[prefix + p.name] == want, (prefix, p.name)


def test_the_default_study_records_every_default():
    plans = resolve(load_study("stability"))
    assert len(plans) == 8
    for plan in plans:
        assert_every_default(plan.base, {})
    ls = next(p.base for p in plans if p.base.loss.name == "least_squares")
    assert ls.loss.params == {"a": 0.0, "b": 1.0, "c": 1.0}
    ring = next(p.base for p in plans if p.base.dataset_key == "ring8")
    assert ring.dataset.params["std"] == 0.01 and ring.dataset.params["radius"] == 1.0
    grid = next(p.base for p in plans if p.base.dataset_key == "grid25")
    assert grid.dataset.params["std"] == 0.05 and grid.dataset.params["spacing"] == 2.0
    # metrics the dataset chose (bare names) get their defaults too
    assert [m.name for m in ring.metrics] == ["mode_coverage"]
    assert ring.metrics[0].params == {"n_std": 3.0, "min_hq_per_mode": 1}
    # derived values stay as the plugin derives them: the mlp widths come from its preset
    assert ring.model.params["preset"] == "default" and ring.model.params["g_hidden"] is None


def test_flat_params_name_every_plugin_parameter():
    cfg = resolve(load_study("stability"))[0].base
    flat = cfg.flat_params()
    for p in MODELS.params("mlp"):
        assert f"model.{p.name}" in flat
    for key in ("dataset.radius", "dataset.std", "dataset.modes", "dataset.n_train",
                "metric.mode_coverage.n_std", "metric.mode_coverage.min_hq_per_mode"):
        assert key in flat, key
    assert flat["model.preset"] == "default" and flat["lr_d"] == 1e-3 and flat["seed"] == 0


def test_given_values_are_coerced_and_the_rest_filled():
    cfg = resolve(parse_study(WITH_TRICKS))[0].base
    given = {"mlp": {"g_hidden": [8], "d_hidden": [8]}, "ring8": {"std": 0.02},
             "mode_coverage": {"n_std": 2.0}, "minibatch_discrimination": {"b": 4}}
    assert_every_default(cfg, given)
    assert [t.name for t in cfg.tricks] == ["one_sided_label_smoothing", "minibatch_discrimination"]
    flat = cfg.flat_params()
    assert flat["trick.one_sided_label_smoothing.alpha"] == 0.9
    assert flat["trick.minibatch_discrimination.b"] == 4
    assert flat["trick.minibatch_discrimination.c"] == 8
    assert flat["metric.mode_coverage.n_std"] == 2.0 and flat["model.g_hidden"] == [8]


def test_a_models_default_loss_gets_its_defaults():
    from harness.builtin.mlp import MLP

    class WithDefaultLoss(MLP):
        default_loss = "least_squares"

    MODELS.register("test-default-loss", WithDefaultLoss)
    try:
        raw = copy.deepcopy(SMALL)
        raw["variants"] = [{"name": "v", "model": "test-default-loss"}]
        cfg = resolve(parse_study(raw))[0].base
    finally:
        MODELS.unregister("test-default-loss")
    assert cfg.loss == ComponentSpec(name="least_squares", params={"a": 0.0, "b": 1.0, "c": 1.0})
    assert cfg.flat_params()["loss.c"] == 1.0


def test_searched_values_override_the_filled_in_defaults():
    cfg = resolve(parse_study(SMALL))[0].base
    new = cfg.with_params({"model.z_dim": 5, "loss.a": -1.0, "lr_d": 3e-4}, seed=2)
    assert new.model.params["z_dim"] == 5 and cfg.model.params["z_dim"] is None
    assert new.loss.params == {"a": -1.0, "b": 1.0, "c": 1.0}
    flat = new.flat_params()
    assert flat["model.z_dim"] == 5 and flat["loss.a"] == -1.0 and flat["lr_d"] == 3e-4
    assert flat["model.g_hidden"] == [8]
    from harness.trial import build_trainer

    assert build_trainer(new).gan.z_dim == 5  # the override reaches the model
    # a searched preset still decides what the study left to it
    pac = cfg.with_params({"model.preset": "pacgan"})
    assert MODELS.build("mlp", pac.model.params).cfg["d_maxout"] == 5


def test_config_json_round_trips_with_the_same_digest():
    for cfg in [p.base for p in resolve(load_study("stability"))] + [
            resolve(parse_study(WITH_TRICKS))[0].base]:
        back = TrialConfig.model_validate(json.loads(config_json(cfg)))
        assert back == cfg and back.digest() == cfg.digest()


def test_digest_ignores_the_order_of_keys():
    cfg = resolve(parse_study(SMALL))[0].base
    data = cfg.model_dump()
    data["model"]["params"] = dict(reversed(list(data["model"]["params"].items())))
    assert TrialConfig.model_validate(data).digest() == cfg.digest()


def test_resolved_values_are_json_and_build_the_same_plugin():
    class Thing:
        def __init__(self, root: Path | None = Path("/tmp/x"), sizes: tuple[int, ...] = (1, 2),
                     scale: float = 1.0, opaque: object = object()):
            self.root, self.sizes, self.scale = root, sizes, scale

    reg = Registry("thing", object)
    reg.register("thing", Thing)
    spec = resolved_component(reg, ComponentSpec(name="thing", params={"scale": 2}))
    # a default JSON cannot hold is left to the constructor rather than recorded wrongly
    assert spec.params == {"root": "/tmp/x", "sizes": [1, 2], "scale": 2.0}
    assert json.loads(json.dumps(spec.params)) == spec.params
    built = reg.build("thing", spec.params)
    assert (built.root, built.sizes, built.scale) == (Path("/tmp/x"), (1, 2), 2.0)


def test_vectorized_grouping_still_accepts_the_default_study():
    from harness.vector.plan import plan_vectorize
    from harness.vector.trial import copy_configs, fallback_reason

    spec = load_study("stability")
    plans = resolve(spec)
    assert all(fallback_reason(p.base) is None for p in plans)
    vp = plan_vectorize(spec, plans)
    assert set(vp.seeds) == {p.key for p in plans}
    copies = copy_configs(plans[0].base, [1, 2], [{"lr_d": 1e-4}, {"lr_d": 2e-4}])
    assert [c.model for c in copies] == [plans[0].base.model] * 2


def test_a_run_records_every_default_in_mlflow(tmp_path, one_thread):
    """``harness run`` (in-process): the child run's params and its ``config.json``."""
    from harness.study import run_single
    from harness.tracking import open_store

    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(WITH_TRICKS))
    _, run_id = run_single(path, "v", seed=3, workdir=tmp_path)
    client = open_store(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}", create=False)
    run = client.get_run(run_id)
    params = run.data.params
    assert params["model.g_hidden"] == "8" and params["model.preset"] == "default"
    assert params["model.z_dim"] == "2"  # left to the preset: the preset's value
    assert params["loss.a"] == "0.0" and params["loss.b"] == "1.0"
    assert params["dataset.std"] == "0.02" and params["dataset.radius"] == "1.0"
    assert params["trick.one_sided_label_smoothing.alpha"] == "0.9"
    assert params["trick.minibatch_discrimination.c"] == "8"
    assert params["metric.mode_coverage.n_std"] == "2.0"
    assert params["metric.mode_coverage.min_hq_per_mode"] == "1"
    assert params["seed"] == "3"
    # how it ran: one copy, not vectorized, on the CPU
    tags = run.data.tags
    assert (tags[names.TAG_VECTORIZED], tags[names.TAG_VECTOR_COPIES]) == ("false", "1")
    assert tags[names.TAG_DEVICE] == "cpu"
    local = Path(client.download_artifacts(run_id, names.ARTIFACT_CONFIG, str(tmp_path)))
    recorded = TrialConfig.model_validate(json.loads(local.read_text()))
    assert recorded.digest() == run.data.tags[names.TAG_CONFIG_DIGEST]
    assert_every_default(recorded, {"mlp": {"g_hidden": [8], "d_hidden": [8]},
                                    "ring8": {"std": 0.02}, "mode_coverage": {"n_std": 2.0},
                                    "minibatch_discrimination": {"b": 4}})
    assert set(recorded.flat_params()) <= set(params)
    assert recorded.model.params["z_dim"] is None  # config.json keeps what the study said


@pytest.mark.parametrize("key", ["model", "dataset"])
def test_an_explicit_default_and_an_omitted_one_make_the_same_config(key):
    """Trials that differ only in whether the study spelled out a default are one config
    (the vectorized plan and resume compare configs)."""
    raw = copy.deepcopy(SMALL)
    if key == "model":
        raw["variants"][0]["model"]["params"]["preset"] = "default"
    else:
        raw["datasets"]["ring8"]["params"]["radius"] = 1
    a = resolve(parse_study(SMALL))[0].base
    b = resolve(parse_study(raw))[0].base
    assert a == b and a.digest() == b.digest()


# --- derived values: what a plugin worked out for a parameter left at None ---------------

#: the mlp presets' values, as the MLflow params record them (lists as "a,b,c")
PRESET_PARAMS = {
    "default": {"model.z_dim": "2", "model.g_hidden": "128,128,128",
                "model.d_hidden": "128,128,128", "model.g_batchnorm": "False",
                "model.d_maxout": "1", "model.activation": "relu", "model.g_output": "linear",
                "model.d_dropout": "0.0", "model.init": "pytorch"},
    "pacgan": {"model.z_dim": "2", "model.g_hidden": "400,400,400,400",
               "model.d_hidden": "200,200,200", "model.g_batchnorm": "True",
               "model.d_maxout": "5", "model.activation": "relu", "model.g_output": "linear",
               "model.d_dropout": "0.0", "model.init": "normal"},
}


def _study(model_params: dict) -> dict:
    raw = copy.deepcopy(SMALL)
    raw["train"]["steps"] = raw["train"]["eval_every"] = 10
    raw["variants"][0]["model"]["params"] = model_params
    return raw


def _recorded(cfg: TrialConfig):
    from harness.trial import _build, recorded_params

    return recorded_params(cfg, **_build(cfg)[1])


def test_the_mlp_records_the_values_its_preset_gave():
    from harness.tracking import _param_value

    cfg = resolve(load_study("stability"))[0].base
    assert cfg.model.params["preset"] == "default" and cfg.model.params["g_hidden"] is None
    params, derived = _recorded(cfg)
    assert derived == {"model.z_dim": 2, "model.g_hidden": [128, 128, 128],
                       "model.d_hidden": [128, 128, 128], "model.g_batchnorm": False,
                       "model.d_maxout": 1, "model.activation": "relu",
                       "model.g_output": "linear", "model.d_dropout": 0.0,
                       "model.init": "pytorch"}
    assert {k: _param_value(params[k]) for k in PRESET_PARAMS["default"]} == PRESET_PARAMS["default"]
    assert {k: v for k, v in params.items() if k not in derived} == {
        k: v for k, v in cfg.flat_params().items() if k not in derived}
    assert cfg.model.params["g_hidden"] is None  # the config is left as it is
    # a searched preset decides the recorded widths
    pac_params, _ = _recorded(cfg.with_params({"model.preset": "pacgan"}))
    assert {k: _param_value(pac_params[k]) for k in PRESET_PARAMS["pacgan"]} == PRESET_PARAMS["pacgan"]
    # a given value wins and is not reported as derived
    mine, derived = _recorded(cfg.with_params({"model.g_hidden": [32, 16], "model.z_dim": 5}))
    assert mine["model.g_hidden"] == [32, 16] and mine["model.z_dim"] == 5
    assert "model.g_hidden" not in derived and "model.z_dim" not in derived
    assert derived["model.d_hidden"] == [128, 128, 128]


def test_only_none_parameters_of_the_plugins_take_derived_values():
    from harness.trial import recorded_params

    class Plugin:
        def __init__(self, values):
            self.values = values

        def derived_params(self):
            return self.values

    cfg = resolve(parse_study(WITH_TRICKS))[0].base
    flat = cfg.flat_params()
    params, derived = recorded_params(
        cfg, model=Plugin({"z_dim": (3,), "g_hidden": [99], "not_a_param": 1}),
        dataset=Plugin({"std": 9.0}), loss=object(),
        tricks=[object(), Plugin({"c": 3})], metrics=[Plugin({"n_std": 1.0})])
    assert derived == {"model.z_dim": [3]}  # tuples as lists; given values stay
    assert params == {**flat, "model.z_dim": [3]}


@pytest.mark.parametrize("given, expected", [
    ({}, PRESET_PARAMS["default"]),
    ({"preset": "pacgan"}, PRESET_PARAMS["pacgan"]),
    ({"preset": "pacgan", "g_hidden": [16, 8], "z_dim": 3},
     {**PRESET_PARAMS["pacgan"], "model.g_hidden": "16,8", "model.z_dim": "3"}),
])
def test_a_run_records_the_derived_values_in_mlflow(tmp_path, one_thread, given, expected):
    """``harness run``: the child run's params hold the architecture the preset gave,
    ``derived_params.json`` those values, and ``config.json`` still the study's ``None``."""
    from harness.study import run_single
    from harness.tracking import _param_value, open_store

    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(_study(given)))
    _, run_id = run_single(path, "v", seed=1, workdir=tmp_path)
    client = open_store(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}", create=False)
    run = client.get_run(run_id)
    assert {k: run.data.params[k] for k in expected} == expected
    derived = json.loads(Path(client.download_artifacts(
        run_id, names.ARTIFACT_DERIVED_PARAMS, str(tmp_path))).read_text())
    assert set(derived) == {k for k in expected if k.removeprefix("model.") not in given}
    assert {k: _param_value(v) for k, v in derived.items()} == {k: expected[k] for k in derived}
    local = Path(client.download_artifacts(run_id, names.ARTIFACT_CONFIG, str(tmp_path)))
    recorded = TrialConfig.model_validate(json.loads(local.read_text()))
    assert recorded.digest() == run.data.tags[names.TAG_CONFIG_DIGEST]
    for k in derived:
        assert recorded.model.params[k.removeprefix("model.")] is None, k


def test_a_vectorized_copy_records_the_params_of_the_single_trial(one_thread):
    """A vectorized trial's copies (:func:`harness.trial.copy_info` of a
    :class:`~harness.vector.trial.VectorTrainer`) log the params :func:`harness.trial.run_trial`
    logs for the same config."""
    from harness.reporting import MemoryReporter
    from harness.trial import build_copies, copy_info, run_trial
    from harness.vector.trial import copy_configs, fallback_reason

    base = resolve(parse_study(_study({})))[0].base
    assert fallback_reason(base) is None
    cfgs = copy_configs(base, [4, 5], [{"lr_d": 1e-4}, {"lr_d": 2e-4}])
    loop, plugins = build_copies(cfgs)
    for k, cfg in enumerate(cfgs):
        single = MemoryReporter()
        run_trial(cfg, single)
        info = copy_info(loop, plugins, cfg, k)
        assert info.params == single.info.params, k
        assert info.derived == single.info.derived, k
        assert info.params["model.g_hidden"] == [128, 128, 128] and info.params["lr_d"] == cfg.train.lr_d
        assert info.config is cfg and info.resumed_from_step == 0
