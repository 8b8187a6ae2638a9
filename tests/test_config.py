"""Study-file validation: shape (parse_study) and registry checks (resolve)."""

import copy
import re

import pytest
import yaml

from harness import config as config_mod
from harness import names
from harness.config import (
    STUDIES_DIR,
    SearchParam,
    StudySpec,
    TrainSettings,
    TrialConfig,
    find_study_file,
    load_study,
    parse_study,
)
from harness.errors import ConfigError
from harness.resolve import resolve

BASE = {
    "name": "unit",
    "datasets": ["ring8"],
    "search": {"space": {"lr_d": {"type": "loguniform", "low": 1e-4, "high": 1e-3}}},
    "variants": [{"name": "v", "model": "mlp", "loss": "minimax"}],
}


def study(**changes):
    d = copy.deepcopy(BASE)
    d.update(changes)
    return d


def parse_error(raw) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_study(raw)
    return str(exc.value)


def resolve_error(raw) -> str:
    spec = parse_study(raw)
    with pytest.raises(ConfigError) as exc:
        resolve(spec)
    return str(exc.value)


def listed(msg: str) -> list[str]:
    """The comma-separated list after the last 'allowed...:' or 'registered:' in ``msg``."""
    tail = re.split(r"(?:allowed(?: keys here)?|registered): ", msg)[-1]
    return [x.strip() for x in tail.split(",")]


# --- the valid base ------------------------------------------------------------------


def test_base_study_parses_and_resolves():
    spec = parse_study(study())
    assert isinstance(spec, StudySpec)
    assert list(spec.datasets) == ["ring8"] and spec.datasets["ring8"].name == "ring8"
    assert spec.variants[0].model.name == "mlp" and spec.variants[0].model.params == {}
    assert spec.seeds == 3 and spec.search.algorithm == "tpe"
    assert spec.search.direction == "max"
    plans = resolve(spec)
    assert [p.key for p in plans] == ["v/ring8"]
    base = plans[0].base
    assert base.study == "unit" and base.loss.name == "minimax"
    assert [m.name for m in base.metrics] == ["mode_coverage"]  # the dataset's default
    assert set(plans[0].space) == {"lr_d"}


def test_variants_times_datasets():
    raw = study(datasets=["ring8", "grid25"])
    raw["variants"].append({"name": "w", "model": "mlp", "loss": "least_squares",
                            "datasets": ["grid25"], "train": {"lr_g": 5e-4}})
    plans = resolve(parse_study(raw))
    assert [p.key for p in plans] == ["v/ring8", "v/grid25", "w/grid25"]
    assert plans[2].base.train.lr_g == 5e-4 and plans[0].base.train.lr_g == 1e-3


# --- shape errors (parse_study) ---------------------------------------------------------


def test_unknown_top_level_key():
    msg = parse_error(study(bogus=1))
    assert msg.startswith("study: bogus: unknown key; allowed keys here: ")
    assert listed(msg) == list(StudySpec.model_fields)
    assert "variants" in listed(msg) and "search" in listed(msg)


def test_unknown_variant_key():
    raw = study()
    raw["variants"][0]["lossx"] = "minimax"
    msg = parse_error(raw)
    assert msg.startswith("study: variants[0].lossx: unknown key")
    assert listed(msg) == ["name", "model", "loss", "tricks", "datasets", "train", "metrics"]


def test_unknown_search_param_key():
    raw = study()
    raw["search"]["space"]["lr_d"] = {"type": "uniform", "low": 0.1, "hi": 1.0}
    msg = parse_error(raw)
    assert msg.startswith("study: search.space.lr_d.hi: unknown key")
    assert listed(msg) == ["type", "low", "high", "values"]


def test_unknown_train_key_lists_train_keys():
    msg = parse_error(study(train={"step": 10}))
    assert msg.startswith("study: train.step: unknown key")
    assert "steps" in listed(msg) and "eval_every" in listed(msg)


def test_source_prefix():
    with pytest.raises(ConfigError, match=r"^my.yaml: bogus: unknown key"):
        parse_study(study(bogus=1), source="my.yaml")


@pytest.mark.parametrize("changes, prefix", [
    ({"seeds": "many"}, "study: seeds: "),
    ({"seeds": 0}, "study: seeds: "),
    ({"seeds": -2}, "study: seeds: "),
    ({"train": {"steps": "lots"}}, "study: train.steps: "),
    ({"train": {"lr_d": 0}}, "study: train.lr_d: "),
    ({"train": {"beta1": 1.0}}, "study: train.beta1: "),
    ({"train": {"device": "tpu"}}, "study: train.device: "),
    ({"variants": "v"}, "study: variants: "),
    ({"variants": []}, "study: variants: "),
    ({"name": "has space"}, "study: name: "),
    ({"datasets": []}, "study: datasets: "),
    ({"search": {"space": {"lr_d": {"type": "normal", "low": 0, "high": 1}}}},
     "study: search.space.lr_d.type: "),
    ({"search": {"metric": "accuracy", "space": BASE["search"]["space"]}}, "study: search.metric: "),
])
def test_wrong_types_and_values(changes, prefix):
    msg = parse_error(study(**changes))
    assert msg.startswith(prefix), msg


def test_wrong_type_message_shows_the_value():
    assert parse_error(study(seeds="many")) == (
        "study: seeds: Input should be a valid integer, unable to parse string as an "
        "integer (got 'many')")


def test_seeds_zero_refused():
    msg = parse_error(study(seeds=0))
    assert "greater than or equal to 1" in msg and "(got 0)" in msg
    assert parse_study(study(seeds=1)).seeds == 1


def test_missing_required_key():
    raw = study()
    del raw["search"]
    assert parse_error(raw) == "study: search: required key is missing"


def test_empty_search_space_refused():
    msg = parse_error(study(search={"space": {}}))
    assert msg.startswith("study: search.space: the search space is empty")


def test_no_search_takes_no_space_and_refuses_one():
    assert parse_study(study(search={"trials": 0})).search.space == {}
    msg = parse_error(study(search={"trials": 0, "space": {
        "lr_d": {"type": "choice", "values": [1e-3]}}}))
    assert msg.startswith("study: search.space: trials is 0 (no search) but a search space "
                          "is declared (lr_d)")
    assert "or set trials: 0" in parse_error(study(search={"trials": 3}))
    assert "greater than or equal to 0" in parse_error(study(search={"trials": -1, "space": {
        "lr_d": {"type": "choice", "values": [1e-3]}}}))


@pytest.mark.parametrize("param, fragment", [
    ({"type": "choice"}, "non-empty 'values'"),
    ({"type": "choice", "values": []}, "non-empty 'values'"),
    ({"type": "choice", "values": [1], "low": 0}, "not 'low'/'high'"),
    ({"type": "uniform", "low": 1.0}, "needs both 'low' and 'high'"),
    ({"type": "uniform", "low": 2.0, "high": 1.0}, "'low' (2.0) must be smaller than 'high' (1.0)"),
    ({"type": "loguniform", "low": 0.0, "high": 1.0}, "needs low > 0"),
    ({"type": "int", "low": 1.5, "high": 4}, "whole-number"),
    ({"type": "uniform", "low": 0, "high": 1, "values": [1]}, "not 'values'"),
])
def test_search_param_checks(param, fragment):
    msg = parse_error(study(search={"space": {"lr_d": param}}))
    assert msg.startswith("study: search.space.lr_d: ")
    assert fragment in msg


def test_eval_every_larger_than_steps_refused():
    msg = parse_error(study(train={"steps": 100, "eval_every": 250}))
    assert msg.startswith("study: train: ")
    assert "250" in msg and "100" in msg
    assert "allowed: 1..100" in msg


def test_log_every_larger_than_steps_refused():
    msg = parse_error(study(train={"steps": 10, "eval_every": 5, "log_every": 11}))
    assert "log_every (11)" in msg and "steps (10)" in msg


def test_variant_train_override_cadence_checked_in_resolve():
    raw = study(train={"steps": 100, "eval_every": 50})
    raw["variants"][0]["train"] = {"eval_every": 300}
    msg = resolve_error(raw)
    assert msg.startswith("study: variants[0].train")
    assert "300" in msg and "100" in msg


def test_duplicate_variant_and_unknown_variant_dataset():
    raw = study()
    raw["variants"].append(dict(raw["variants"][0]))
    assert "duplicate variant name 'v'" in parse_error(raw)
    raw = study()
    raw["variants"][0]["datasets"] = ["grid25"]
    msg = parse_error(raw)
    assert "variants[0].datasets: unknown dataset 'grid25'; declared: ring8" in msg


# --- registry errors (resolve) -----------------------------------------------------------


def test_unknown_loss_lists_registered_losses():
    from harness.registry import LOSSES

    raw = study()
    raw["variants"][0]["loss"] = "minmax"
    msg = resolve_error(raw)
    assert msg.startswith("study: variants[0].loss: unknown loss 'minmax'; registered: ")
    assert msg.removeprefix("study: ").startswith("variants[0].loss")
    assert set(listed(msg)) == set(LOSSES.names())
    assert {"minimax", "non_saturating", "maximum_likelihood", "least_squares"} <= set(listed(msg))


def test_unknown_loss_in_second_variant_names_its_index():
    raw = study()
    raw["variants"].append({"name": "w", "model": "mlp", "loss": "wasserstein"})
    assert resolve_error(raw).startswith("study: variants[1].loss: unknown loss 'wasserstein'")


def test_unknown_dataset_and_model():
    assert resolve_error(study(datasets=["ring9"])).startswith(
        "study: datasets.ring9: unknown dataset 'ring9'; registered: ")
    raw = study()
    raw["variants"][0]["model"] = "cnn"
    assert resolve_error(raw).startswith("study: variants[0].model: unknown model 'cnn'")


def test_unknown_model_param_lists_allowed():
    raw = study()
    raw["variants"][0]["model"] = {"name": "mlp", "params": {"width": 64}}
    msg = resolve_error(raw)
    assert msg.startswith(
        "study: variants[0].model.params.width: unknown parameter of model 'mlp'; allowed: ")
    assert listed(msg) == ["preset", "z_dim", "g_hidden", "d_hidden", "g_batchnorm", "d_maxout",
                         "activation", "g_output", "d_dropout", "init"]


def test_wrong_model_param_type_and_value():
    raw = study()
    raw["variants"][0]["model"] = {"name": "mlp", "params": {"z_dim": "two"}}
    msg = resolve_error(raw)
    assert msg.startswith("study: variants[0].model.params.z_dim: ")
    assert "(got 'two')" in msg
    raw["variants"][0]["model"] = {"name": "mlp", "params": {"z_dim": 0}}
    msg = resolve_error(raw)
    assert msg.startswith("study: variants[0].model.params: model 'mlp': z_dim must be >= 1")


def test_loss_param_constructor_error():
    raw = study()
    raw["variants"][0]["loss"] = {"name": "least_squares", "params": {"a": 1, "b": 1}}
    msg = resolve_error(raw)
    assert msg.startswith("study: variants[0].loss.params: loss 'least_squares': ")
    assert "must differ" in msg


def test_unknown_metric_and_metric_param():
    assert resolve_error(study(metrics=["fid_score"])).startswith(
        "study: metrics[0]: unknown metric 'fid_score'")
    msg = resolve_error(study(metrics=[{"name": "mode_coverage", "params": {"k": 1}}]))
    assert msg.startswith("study: metrics[0].params.k: unknown parameter")
    assert listed(msg) == ["n_std", "min_hq_per_mode"]


# --- search.metric: a value some metric declares with a direction ---------------------------

_SHARPNESS_PLUGIN = """
import torch

from harness.metrics import Evaluation, Metric
from harness.registry import register_metric
from harness.value_specs import ValueSpec


@register_metric("test-config-sharpness")
class Sharpness(Metric):
    values = {"test_sharpness": ValueSpec("sharpness", 4, "min")}

    def evaluate(self, samples, dataset, context=None):
        d = torch.cdist(samples.double(), dataset.centres.double()).min(dim=1).values
        return Evaluation(values={"test_sharpness": float(d.mean())})
"""


@pytest.fixture
def sharpness_study(tmp_path):
    """A study file whose own plugin module registers a metric with a new objective."""
    import sys

    from harness.registry import METRICS

    (tmp_path / "test_config_sharpness.py").write_text(_SHARPNESS_PLUGIN)
    raw = study(plugins=["test_config_sharpness"],
                metrics=["mode_coverage", "test-config-sharpness"])
    raw["search"]["metric"] = "test_sharpness"
    file = tmp_path / "s.yaml"
    file.write_text(yaml.safe_dump(raw))
    try:
        yield file
    finally:
        METRICS.unregister("test-config-sharpness")
        sys.modules.pop("test_config_sharpness", None)


def test_a_plugin_metric_of_the_study_is_searchable_in_its_declared_direction(sharpness_study):
    from harness import value_specs

    spec = load_study(sharpness_study)  # its plugin is not loaded yet: checked by resolve
    assert "test_sharpness" not in value_specs.objectives()
    plans = resolve(spec, base_dir=sharpness_study.parent)
    assert [m.name for m in plans[0].base.metrics] == ["mode_coverage", "test-config-sharpness"]
    assert spec.search.direction == "min"
    assert "test_sharpness" in value_specs.objectives()


def test_an_unknown_search_metric_is_refused_listing_the_choices(sharpness_study):
    from harness import value_specs

    msg = parse_error(study(search={"metric": "accuracy", "space": BASE["search"]["space"]}))
    assert msg.startswith("study: search.metric: unknown metric 'accuracy': ")
    assert msg.endswith("choices: " + ", ".join(value_specs.objectives()))
    # a study with plugins of its own: refused once they are loaded, listing theirs too
    raw = yaml.safe_load(sharpness_study.read_text())

    def refused(metric: str) -> str:
        raw["search"]["metric"] = metric
        with pytest.raises(ConfigError) as exc:
            resolve(parse_study(raw), base_dir=sharpness_study.parent)
        return str(exc.value)

    msg = refused("accuracy")
    assert msg.startswith("study: search.metric: unknown metric 'accuracy': ")
    assert "test_sharpness" in listed_choices(msg) and "modes_covered" in listed_choices(msg)
    # a value a metric declares without a direction is shown, never searched
    assert refused(names.IS_STD).startswith("study: search.metric: unknown metric 'is_std'")


def listed_choices(msg: str) -> list[str]:
    return [x.strip() for x in msg.rsplit("choices: ", 1)[-1].split(",")]


def test_unsearchable_space_key_lists_allowed():
    msg = resolve_error(study(search={"space": {"steps": {"type": "int", "low": 10, "high": 20}}}))
    assert msg.startswith("study: search.space.steps: cannot search 'steps'; allowed: ")
    for key in config_mod.SEARCHABLE_TRAIN:
        assert key in msg
    assert "model.<param>" in msg and "loss.<param>" in msg


def test_search_space_unknown_model_or_loss_param():
    msg = resolve_error(study(search={"space": {"model.width": {"type": "choice", "values": [8]}}}))
    assert msg.startswith("study: search.space.model.width: model 'mlp' of variant 'v' has no "
                          "parameter 'width'; allowed: preset, z_dim")
    msg = resolve_error(study(search={"space": {"loss.a": {"type": "uniform", "low": 0, "high": 1}}}))
    assert msg.startswith("study: search.space.loss.a: loss 'minimax' of variant 'v' has no "
                          "parameter 'a'; allowed: (none)")


def test_search_space_model_and_loss_params_accepted():
    raw = study(search={"space": {
        "model.z_dim": {"type": "int", "low": 2, "high": 8},
        "lr_g": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
    }})
    raw["variants"][0]["loss"] = "least_squares"
    raw["search"]["space"]["loss.c"] = {"type": "uniform", "low": 0.0, "high": 1.0}
    plans = resolve(parse_study(raw))
    assert set(plans[0].space) == {"model.z_dim", "lr_g", "loss.c"}


def test_grid_needs_choices():
    msg = resolve_error(study(search={"algorithm": "grid", "space": BASE["search"]["space"]}))
    assert msg == ("study: search.space.lr_d: grid search needs every entry to be a 'choice' "
                   "list, got 'loguniform'")
    ok = study(search={"algorithm": "grid",
                       "space": {"lr_d": {"type": "choice", "values": [1e-4, 1e-3]}}})
    assert len(resolve(parse_study(ok))) == 1


def test_search_value_that_makes_an_invalid_trial_is_refused():
    raw = study(search={"space": {"batch_size": {"type": "choice", "values": [0, 32]}}})
    msg = resolve_error(raw)
    assert msg.startswith("study: search.space: with the lowest values for variant v/ring8: ")
    assert "batch_size" in msg


# --- study files -------------------------------------------------------------------------


def test_find_study_file_from_another_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = (STUDIES_DIR / "stability.yaml").resolve()
    assert find_study_file("stability.yaml").resolve() == expected
    assert find_study_file("stability").resolve() == expected
    spec = load_study("stability")
    assert isinstance(spec, StudySpec)


def test_find_study_file_prefers_a_local_path(tmp_path, monkeypatch):
    import yaml

    f = tmp_path / "local.yaml"
    f.write_text(yaml.safe_dump(BASE))
    monkeypatch.chdir(tmp_path)
    assert find_study_file("local.yaml") == f.resolve()
    assert find_study_file(str(f)) == f.resolve()
    assert load_study("local.yaml").name == "unit"


def test_missing_study_file_lists_available(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as exc:
        find_study_file("no-such-study.yaml")
    msg = str(exc.value)
    assert "'no-such-study.yaml' not found" in msg
    assert str(STUDIES_DIR) in msg
    available = sorted(p.name for p in STUDIES_DIR.glob("*.yaml")) if STUDIES_DIR.is_dir() else []
    if available:
        assert msg.endswith("available there: " + ", ".join(available))
    else:
        assert msg.endswith("available there: (none)")


def test_load_study_refuses_bad_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study("bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="a study file is a mapping"):
        load_study("list.yaml")
    import yaml

    (tmp_path / "extra.yaml").write_text(yaml.safe_dump(study(bogus=1)))
    with pytest.raises(ConfigError, match=r"extra\.yaml: bogus: unknown key"):
        load_study("extra.yaml")


# --- TrialConfig ---------------------------------------------------------------------


def trial(**kw):
    base = {
        "study": "t", "variant": "v", "dataset_key": "ring8",
        "model": {"name": "mlp", "params": {"g_hidden": [16, 16]}},
        "loss": {"name": "least_squares", "params": {"b": 1.0}}, "dataset": "ring8",
        "metrics": ["mode_coverage"], "train": {"steps": 40, "eval_every": 20},
    }
    base.update(kw)
    return TrialConfig(**base)


def test_with_params_applies_train_model_and_loss_params():
    cfg = trial()
    new = cfg.with_params({"lr_d": 3e-4, "model.z_dim": 4, "loss.a": -1.0, "d_steps": 2},
                          seed=7, phase="seeds")
    assert new.train.lr_d == 3e-4 and new.train.d_steps == 2
    assert new.train.steps == 40 and new.train.lr_g == cfg.train.lr_g
    assert new.model.name == "mlp" and new.model.params == {"g_hidden": [16, 16], "z_dim": 4}
    assert new.loss.name == "least_squares" and new.loss.params == {"b": 1.0, "a": -1.0}
    assert new.seed == 7 and new.phase == "seeds"
    # the original is unchanged (frozen)
    assert cfg.train.lr_d == 1e-3 and "z_dim" not in cfg.model.params and cfg.seed == 0
    assert new.digest() != cfg.digest()
    assert cfg.with_params({}).digest() == cfg.digest()


def test_with_params_flat_params():
    flat = trial().with_params({"model.z_dim": 4, "loss.a": 0.5}, seed=3).flat_params()
    assert flat["model.z_dim"] == 4 and flat["loss.a"] == 0.5 and flat["loss.b"] == 1.0
    assert flat["seed"] == 3 and flat["lr_d"] == 1e-3 and flat["steps"] == 40


def test_with_params_invalid_value_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^train\.lr_d: "):
        trial().with_params({"lr_d": -1.0})
    with pytest.raises(ConfigError, match=r"^train\.bogus: unknown key"):
        trial().with_params({"bogus": 1})


def test_trial_config_key_and_component_shorthand():
    cfg = trial()
    assert cfg.key == "v/ring8"
    assert cfg.dataset.name == "ring8" and cfg.dataset.params == {}
    assert cfg.metrics[0].name == "mode_coverage"
    assert TrialConfig.model_validate(cfg.model_dump()) == cfg


def test_train_settings_defaults():
    s = TrainSettings()
    assert (s.steps, s.eval_every, s.log_every, s.batch_size, s.d_steps) == (2000, 500, 5, 64, 1)
    assert SearchParam(type="choice", values=[1]).values == [1]


def test_relative_path_params_are_made_absolute_against_the_working_directory(
        tmp_path, monkeypatch, mnist_dir):
    """Trials may start in another directory (Ray): a relative ``Path`` param of a study
    file is resolved where the study is validated, and the trial config carries it."""
    import shutil

    from harness.config import parse_study
    from harness.resolve import resolve

    (tmp_path / "data").mkdir()
    for f in mnist_dir.iterdir():
        shutil.copy(f, tmp_path / "data" / f.name)
    monkeypatch.chdir(tmp_path)
    raw = study()
    raw["datasets"] = {"m": {"name": "mnist", "params": {"root": "data", "download": False}}}
    raw["variants"] = [{"name": "d", "model": "dcgan", "loss": "minimax"}]
    raw["metrics"] = []
    plans = resolve(parse_study(raw))
    assert plans[0].base.dataset.params["root"] == str(tmp_path / "data")


def test_relative_paths_resolve_against_the_study_file_folder(tmp_path, monkeypatch, mnist_dir):
    """`harness study` passes the study file's folder: a relative root found from there,
    whatever the working directory, and checked (the files are read) at validation."""
    import shutil

    from harness.config import load_study
    from harness.resolve import resolve

    (tmp_path / "data").mkdir()
    for f in mnist_dir.iterdir():
        shutil.copy(f, tmp_path / "data" / f.name)
    (tmp_path / "studies").mkdir()
    raw = study()
    raw["datasets"] = {"m": {"name": "mnist", "params": {"root": "../data", "download": False}}}
    raw["variants"] = [{"name": "d", "model": "dcgan", "loss": "minimax"}]
    raw["metrics"] = []
    file = tmp_path / "studies" / "s.yaml"
    file.write_text(yaml.safe_dump(raw))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    plans = resolve(load_study(file), source=file.name, base_dir=file.parent)
    assert plans[0].base.dataset.params["root"] == str(tmp_path / "data")
