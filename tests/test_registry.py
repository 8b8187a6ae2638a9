"""Registration, lookup and parameter validation of plugin registries."""

import re
from abc import ABC, abstractmethod
from typing import Literal

import pytest
import torch

from harness import registry as reg_mod
from harness.errors import ConfigError, HarnessError, RegistryError
from harness.losses import Loss
from harness.plugins import load_plugins
from harness.registry import LOSSES, MODELS, Param, Registry, register_loss

load_plugins()


class Thing(ABC):
    @abstractmethod
    def run(self) -> int: ...


class Alpha(Thing):
    """Alpha thing: the first one.

    More text that describe() must not show.
    """

    def __init__(self, size: int = 3, rate: float = 0.5, mode: Literal["x", "y"] = "x"):
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.size, self.rate, self.mode = size, rate, mode

    def run(self) -> int:
        return self.size


class Beta(Thing):
    def __init__(self, width: int, widths: tuple[int, ...] = (1, 2), flag: bool | None = None,
                 anything=None):
        self.width, self.widths, self.flag, self.anything = width, widths, flag, anything

    def run(self) -> int:
        return self.width


class NoInit(Thing):
    def run(self) -> int:
        return 0


class StillAbstract(Thing):
    """Forgets to implement run()."""


class NotAThing:
    def run(self) -> int:
        return 1


@pytest.fixture
def things():
    r = Registry("thing", Thing)
    r.register("alpha", Alpha)
    r.register("beta", Beta)
    return r


# --- registration ------------------------------------------------------------------


def test_register_and_get(things):
    assert things.names() == ["alpha", "beta"]
    assert things.get("alpha") is Alpha
    assert "alpha" in things and "gamma" not in things
    assert Alpha.registered_name == "alpha"


def test_register_returns_the_class_and_decorator_form():
    r = Registry("thing", Thing)

    @reg_mod._decorator(r, "deco", None)
    class Deco(Thing):
        def run(self):
            return 7

    assert r.get("deco") is Deco and Deco().run() == 7
    assert r.register("noinit", NoInit) is NoInit


def test_duplicate_is_refused_naming_the_existing_class(things):
    class Other(Thing):
        def run(self):
            return 2

    with pytest.raises(RegistryError) as exc:
        things.register("alpha", Other)
    msg = str(exc.value)
    assert "thing 'alpha' is already registered by" in msg
    assert f"{Alpha.__module__}.Alpha" in msg
    assert things.get("alpha") is Alpha  # unchanged
    # the same class again is a duplicate too
    with pytest.raises(RegistryError, match="already registered"):
        things.register("alpha", Alpha)


def test_errors_are_harness_errors():
    assert issubclass(RegistryError, HarnessError) and issubclass(ConfigError, HarnessError)


@pytest.mark.parametrize("bad", [NotAThing, object, int, "Alpha", None, Alpha()])
def test_wrong_type_is_refused(things, bad):
    with pytest.raises(RegistryError, match=r"expected a subclass of .*Thing"):
        things.register("gamma", bad)
    assert "gamma" not in things


def test_abstract_class_is_refused(things):
    with pytest.raises(RegistryError, match="StillAbstract leaves abstract methods unimplemented: run"):
        things.register("gamma", StillAbstract)
    with pytest.raises(RegistryError, match="abstract"):
        things.register("base", Thing)
    assert things.names() == ["alpha", "beta"]


@pytest.mark.parametrize("bad", ["", "Alpha", "1abc", "_x", "-x", "has space", "a.b", "a/b",
                                 "ä", None, 3])
def test_bad_names_are_refused(things, bad):
    class Fine(Thing):
        def run(self):
            return 0

    with pytest.raises(RegistryError, match="names are lower-case letters"):
        things.register(bad, Fine)
    assert things.names() == ["alpha", "beta"]


@pytest.mark.parametrize("good", ["a", "a1", "a_b", "a-b", "x9_-z"])
def test_good_names_are_accepted(good):
    r = Registry("thing", Thing)
    r.register(good, NoInit)
    assert r.names() == [good]


def test_var_args_constructors_are_refused():
    class Star(Thing):
        def __init__(self, **kw):
            pass

        def run(self):
            return 0

    class Pos(Thing):
        def __init__(self, *args):
            pass

        def run(self):
            return 0

    r = Registry("thing", Thing)
    with pytest.raises(RegistryError, match=r"takes \*kw"):
        r.register("star", Star)
    with pytest.raises(RegistryError, match=r"takes \*args"):
        r.register("pos", Pos)
    assert r.names() == []


def test_unregister(things):
    things.unregister("alpha")
    assert things.names() == ["beta"]
    things.unregister("never-there")  # no error
    things.register("alpha", Alpha)  # the name is free again
    assert things.get("alpha") is Alpha


# --- lookup ------------------------------------------------------------------------


def test_unknown_lookup_lists_choices(things):
    with pytest.raises(RegistryError) as exc:
        things.get("gama")
    assert str(exc.value) == "unknown thing 'gama'; registered: alpha, beta"
    with pytest.raises(RegistryError, match="registered: alpha, beta"):
        things.get(["unhashable"])
    with pytest.raises(RegistryError, match=r"\(none registered\)"):
        Registry("thing", Thing).get("x")


def test_unknown_lookup_in_global_registry_lists_builtins():
    with pytest.raises(RegistryError) as exc:
        LOSSES.get("minmax")
    msg = str(exc.value)
    assert msg.startswith("unknown loss 'minmax'; registered: ")
    for name in ("least_squares", "maximum_likelihood", "minimax", "non_saturating"):
        assert name in msg


# --- parameters --------------------------------------------------------------------


def test_params(things):
    ps = things.params("alpha")
    assert [p.name for p in ps] == ["size", "rate", "mode"]
    assert [p.default for p in ps] == [3, 0.5, "x"]
    assert not any(p.required for p in ps)
    beta = {p.name: p for p in things.params("beta")}
    assert beta["width"].required and not beta["widths"].required


def test_no_init_has_no_params():
    r = Registry("thing", Thing)
    r.register("noinit", NoInit)
    assert r.params("noinit") == []
    assert r.validate_params("noinit", {}, "w") == {}
    with pytest.raises(ConfigError, match=r"^w\.x: unknown parameter of thing 'noinit'; allowed: \(none\)$"):
        r.validate_params("noinit", {"x": 1}, "w")


def test_validate_params_refuses_unknown_listing_allowed(things):
    with pytest.raises(ConfigError) as exc:
        things.validate_params("alpha", {"size": 1, "sise": 2}, "variants[0].model.params")
    assert str(exc.value) == (
        "variants[0].model.params.sise: unknown parameter of thing 'alpha'; "
        "allowed: size, rate, mode"
    )


def test_validate_params_coerces(things):
    out = things.validate_params("alpha", {"size": "4", "rate": 1, "mode": "y"}, "p")
    assert out == {"size": 4, "rate": 1.0, "mode": "y"}
    assert type(out["size"]) is int and type(out["rate"]) is float
    out = things.validate_params("beta", {"width": 2.0, "widths": [3, "4"], "flag": "yes",
                                          "anything": [1, "x"]}, "p")
    assert out == {"width": 2, "widths": (3, 4), "flag": True, "anything": [1, "x"]}
    assert things.validate_params("beta", {"width": 1, "flag": None}, "p")["flag"] is None


@pytest.mark.parametrize("params, key, fragment", [
    ({"size": "big"}, "size", "valid integer"),
    ({"size": 2.5}, "size", "integer"),
    ({"rate": "fast"}, "rate", "valid number"),
    ({"mode": "z"}, "mode", "'x' or 'y'"),
    ({"size": [1]}, "size", "integer"),
])
def test_validate_params_complains_about_wrong_types(things, params, key, fragment):
    with pytest.raises(ConfigError) as exc:
        things.validate_params("alpha", params, "where")
    msg = str(exc.value)
    assert msg.startswith(f"where.{key}: ")
    assert fragment in msg
    assert f"(got {params[key]!r})" in msg


def test_validate_params_requires_required(things):
    with pytest.raises(ConfigError, match=r"^w\.width: required parameter of thing 'beta'$"):
        things.validate_params("beta", {"widths": [1]}, "w")


def test_validate_params_unknown_name(things):
    with pytest.raises(RegistryError, match="unknown thing 'zeta'"):
        things.validate_params("zeta", {}, "w")


def test_build(things):
    a = things.build("alpha", {"size": "5"})
    assert isinstance(a, Alpha) and a.size == 5 and a.rate == 0.5 and a.run() == 5
    assert things.build("alpha").size == 3
    with pytest.raises(ConfigError, match=r"^model\.params: thing 'alpha': size must be >= 0, got -1$"):
        things.build("alpha", {"size": -1}, where="model.params")


def test_describe_lists_parameters_with_defaults(things):
    rows = things.describe()
    assert [r[0] for r in rows] == ["alpha", "beta"]
    _, doc, params = rows[0]
    assert doc == "Alpha thing: the first one."
    assert [p.describe() for p in params] == [
        "size: int = 3", "rate: float = 0.5", "mode: Literal['x', 'y'] = 'x'"]
    params_b = rows[1][2]
    described = [p.describe() for p in params_b]
    assert described[0] == "width: int"  # required: no default shown
    assert described[1] == "widths: tuple[int, ...] = (1, 2)"
    assert described[3] == "anything = None"  # no annotation


def test_describe_does_not_show_inherited_docstrings():
    class Undocumented(Loss):
        def d_loss(self, r, f):
            return r.mean()

        def g_loss(self, f):
            return f.mean()

    r = Registry("loss", Loss)
    r.register("undocumented", Undocumented)
    assert r.describe() == [("undocumented", "", [])]


def test_param_describe():
    assert Param("n", int, 1).describe() == "n: int = 1"
    assert Param("n", int, reg_mod._EMPTY).describe() == "n: int"
    assert Param("n", reg_mod._EMPTY, reg_mod._EMPTY).describe() == "n"
    assert Param("s", "int | None", None).describe() == "s: int | None = None"


def test_builtin_describe_lists_defaults():
    rows = {name: (doc, params) for name, doc, params in LOSSES.describe()}
    doc, params = rows["least_squares"]
    assert doc
    assert [p.describe() for p in params] == ["a: float = 0.0", "b: float = 1.0", "c: float = 1.0"]
    assert rows["minimax"][1] == []
    mlp = {p.name: p for p in MODELS.params("mlp")}
    assert mlp["preset"].default == "default"
    assert mlp["z_dim"].describe() == "z_dim: int | None = None"


# --- global registries: register and always unregister ------------------------------


@pytest.fixture
def temp_loss():
    name = "test-registry-tmp-loss"

    class TmpLoss(Loss):
        def __init__(self, scale: float = 1.0):
            self.scale = scale

        def d_loss(self, real_logits, fake_logits):
            return self.scale * (fake_logits - real_logits).mean()

        def g_loss(self, fake_logits):
            return -self.scale * fake_logits.mean()

    try:
        yield name, register_loss(name)(TmpLoss)
    finally:
        LOSSES.unregister(name)
    assert name not in LOSSES


def test_global_register_loss(temp_loss):
    name, cls = temp_loss
    assert LOSSES.get(name) is cls
    loss = LOSSES.build(name, {"scale": "2"})
    assert float(loss.g_loss(torch.ones(3))) == -2.0
    with pytest.raises(RegistryError, match="already registered"):
        register_loss(name, cls)
    with pytest.raises(RegistryError, match=r"expected a subclass of harness\.losses\.Loss"):
        register_loss("test-registry-not-a-loss", Alpha)
    assert "test-registry-not-a-loss" not in LOSSES


def test_builtin_duplicate_is_refused_naming_the_builtin():
    class Impostor(Loss):
        def d_loss(self, r, f):
            return r.mean()

        def g_loss(self, f):
            return f.mean()

    with pytest.raises(RegistryError, match=r"'minimax' is already registered by harness\.builtin\.minimax\.Minimax"):
        register_loss("minimax", Impostor)
    assert LOSSES.get("minimax").__module__ == "harness.builtin.minimax"


def test_global_registries():
    assert set(reg_mod.ALL) == {"models", "losses", "tricks", "datasets", "metrics"}
    assert reg_mod.ALL["losses"] is LOSSES and LOSSES.kind == "loss" and LOSSES.base is Loss


# --- known bug: string annotations from `from __future__ import annotations` --------


def test_mlp_preset_is_validated():
    assert MODELS.validate_params("mlp", {"preset": "pacgan"}, "m") == {"preset": "pacgan"}
    with pytest.raises(ConfigError, match=r"^m\.preset: "):
        MODELS.validate_params("mlp", {"preset": "huge"}, "m")


# --- metrics declare their values -----------------------------------------------------------


def _metric_class(values: dict | None = None, provides: tuple | None = None):
    from harness.metrics import Evaluation, Metric

    body = {"evaluate": lambda self, samples, dataset, context=None: Evaluation(values={})}
    if values is not None:
        body["values"] = values
    if provides is not None:
        body["provides"] = provides
    return type("TmpMetric", (Metric,), body)


@pytest.fixture
def metric_names():
    """Names registered by a test: unregistered (and their values forgotten) afterwards."""
    from harness.registry import METRICS

    used: list[str] = []
    yield used
    for name in used:
        METRICS.unregister(name)
        assert name not in METRICS


def test_a_metric_provides_what_it_declares_and_its_values_become_searchable(metric_names):
    from harness import chance_rule, value_specs
    from harness.registry import METRICS, register_metric
    from harness.value_specs import ValueSpec

    cls = _metric_class({"test_blur": ValueSpec("blur", 4, "min"),
                         "test_blur_sd": ValueSpec("blur sd")})
    assert cls.provides == ("test_blur", "test_blur_sd")
    assert "test_blur" not in value_specs.objectives()
    metric_names.append("test-registry-blur")
    register_metric("test-registry-blur", cls)
    assert value_specs.spec("test_blur") == ValueSpec("blur", 4, "min")
    assert value_specs.objectives()["test_blur"] == "min"
    assert "test_blur_sd" in value_specs.declared()
    assert "test_blur_sd" not in value_specs.objectives()  # no direction: shown, not searched
    # the chance rule judges in the declared direction: lower is better
    assert chance_rule.lower_is_better("test_blur")
    assert chance_rule.bound("test_blur", [2.0, 4.0]) == pytest.approx(0.3)
    METRICS.unregister("test-registry-blur")
    assert value_specs.spec("test_blur") is None and "test_blur" not in value_specs.objectives()


def _bad_metric(case: str):
    from harness.value_specs import ValueSpec

    if case == "undeclared":  # an old-style metric: provides, no values
        return _metric_class(provides=("test_x",))
    if case == "unprovided":
        return _metric_class({"test_x": ValueSpec("x"), "test_y": ValueSpec("y")},
                             provides=("test_x",))
    cls = _metric_class({"test_x": ValueSpec("x")})
    cls.values = {"test_x": None} if case == "not a spec" else "test_x"
    return cls


@pytest.mark.parametrize("case, fragment", [
    ("undeclared", "provided without a ValueSpec: test_x; declared but not provided: none"),
    ("unprovided", "provided without a ValueSpec: none; declared but not provided: test_y"),
    ("not a spec", "value 'test_x' is declared as None, not a harness.value_specs.ValueSpec"),
    ("not a dict", "values must be a dict of value name -> ValueSpec"),
])
def test_a_metric_whose_values_disagree_with_provides_is_refused_by_name(case, fragment):
    from harness import value_specs
    from harness.registry import METRICS, register_metric

    with pytest.raises(RegistryError, match="^cannot register metric 'test-registry-bad': ") as err:
        register_metric("test-registry-bad", _bad_metric(case))
    assert fragment in str(err.value)
    assert "test-registry-bad" not in METRICS and value_specs.spec("test_x") is None


def test_a_value_means_one_thing_to_every_metric(metric_names):
    from harness import names, value_specs
    from harness.registry import METRICS, register_metric
    from harness.value_specs import ValueSpec

    # as the built-in coverage metrics declare it: accepted
    same = _metric_class({names.HQ_FRACTION: value_specs.spec(names.HQ_FRACTION)})
    metric_names.append("test-registry-same")
    register_metric("test-registry-same", same)
    other = _metric_class({names.HQ_FRACTION: ValueSpec("hq", 2, "min")})
    with pytest.raises(RegistryError, match=r"cannot register metric 'test-registry-other': it "
                                            r"declares 'hq_fraction' as .* but metric '"):
        register_metric("test-registry-other", other)
    assert "test-registry-other" not in METRICS
    assert value_specs.direction(names.HQ_FRACTION) == "max"
    harness_own = _metric_class({names.STABILITY_SCORE: ValueSpec("stability", 1, "max")})
    with pytest.raises(RegistryError, match=r"but \(the harness\) declares it"):
        register_metric("test-registry-other", harness_own)


def test_the_report_shows_a_plugin_metric_as_it_declares_itself(metric_names):
    from harness import names
    from harness.registry import register_metric
    from harness.reports import display
    from harness.value_specs import ValueSpec

    assert (display.label("test_blur"), display.decimals("test_blur"),
            display.direction("test_blur")) == ("test_blur", 3, None)
    metric_names.append("test-registry-blur")
    register_metric("test-registry-blur",
                    _metric_class({"test_blur": ValueSpec("blur", 4, "min")}))
    assert (display.label("test_blur"), display.decimals("test_blur"),
            display.direction("test_blur")) == ("blur", 4, "min")
    assert display.headed("test_blur") == "blur ↓"
    # values no metric declares keep the report's own words
    assert display.label(names.LOSS_D) == "loss_d (discriminator)"
    assert display.direction(names.LOSS_D) is None


@pytest.mark.parametrize("kwargs, fragment", [
    ({"label": ""}, "non-empty text"),
    ({"label": "x", "decimals": -1}, "whole number 0..12"),
    ({"label": "x", "decimals": 2.5}, "whole number 0..12"),
    ({"label": "x", "direction": "maximize"}, "direction must be one of max, min or None"),
])
def test_a_value_spec_checks_itself(kwargs, fragment):
    from harness.value_specs import ValueSpec

    with pytest.raises(ValueError, match=re.escape(fragment)):
        ValueSpec(**kwargs)


def test_every_builtin_metric_declares_every_value_it_provides():
    from harness.registry import METRICS
    from harness.value_specs import ValueSpec

    for name in METRICS.names():
        cls = METRICS.get(name)
        assert cls.provides and set(cls.provides) == set(cls.values), name
        assert all(isinstance(s, ValueSpec) for s in cls.values.values()), name
