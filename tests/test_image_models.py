"""Image models (mlp 'mnist' preset, dcgan, cgan, infogan): tiny real runs on real MNIST,
the InfoGAN latent layout and mutual-information loss, and validation of bad pairings."""

import math

import pytest
import torch
import torch.nn.functional as F

from harness import names
from harness.config import TrialConfig, parse_study
from harness.errors import ConfigError
from harness.plugins import load_plugins
from harness.registry import DATASETS, LOSSES, MODELS
from harness.reporting import MemoryReporter
from harness.resolve import resolve
from harness.trial import run_trial

load_plugins()

TINY = {
    "mlp": {"preset": "mnist", "g_hidden": [32], "d_hidden": [32], "z_dim": 8},
    "dcgan": {"ngf": 4, "ndf": 4, "z_dim": 8},
    "cgan": {"g_hidden": [32], "d_hidden": [32], "z_dim": 8},
    "cgan-conv": {"arch": "conv", "ngf": 4, "ndf": 4, "z_dim": 8},
    "infogan": {"ngf": 4, "ndf": 4, "z_dim": 8, "q_hidden": 8},
    "infogan-paper": {"arch": "paper", "ngf": 4, "ndf": 4, "z_dim": 8, "q_hidden": 8,
                      "fc_hidden": 16},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def config(mnist_dir, model, loss="non_saturating", size=28, steps=4, metrics=(), **train):
    name = model.split("-")[0]
    settings = {"steps": steps, "eval_every": steps, "log_every": 2, "eval_samples": 20,
                "batch_size": 8, "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, **train}
    return TrialConfig(
        study="t", variant=model, dataset_key="mnist",
        model={"name": name, "params": TINY[model]}, loss={"name": loss},
        dataset={"name": "mnist", "params": {"root": str(mnist_dir), "size": size,
                                              "n_train": 64}},
        metrics=list(metrics), train=settings, seed=0)


@pytest.mark.parametrize("loss", ["minimax", "non_saturating", "maximum_likelihood",
                                  "least_squares"])
@pytest.mark.parametrize("model", list(TINY))
def test_every_image_model_and_loss_trains(mnist_dir, model, loss):
    rep = MemoryReporter()
    result = run_trial(config(mnist_dir, model, loss), rep)
    assert result.steps_done == 4 and result.status != names.STATUS_DIVERGED
    expected = set(names.STEP_HISTORIES) | (
        {names.LOSS_Q} if model.startswith("infogan") else set())
    for _, row in result.history:
        assert set(row) == expected
        assert all(math.isfinite(v) for v in row.values()), row
    assert names.ARTIFACT_GENERATOR in rep.artifacts


@pytest.mark.parametrize("model,grids", [
    ("dcgan", ["final_samples.png"]),
    ("cgan", ["final_samples_classes.png"]),
    ("infogan", ["final_samples_code_grid.png", "final_samples_continuous_0.png",
                 "final_samples_continuous_1.png"]),
])
def test_sample_grids_are_logged(mnist_dir, model, grids):
    rep = MemoryReporter()
    # two evaluations: the first's grids under samples/, the last's are the final ones
    run_trial(config(mnist_dir, model, steps=4, eval_every=2), rep)
    pngs = sorted(k for k in rep.artifacts if k.endswith(".png"))
    assert [k for k in pngs if k.startswith("final")] == sorted(grids)
    steps = [k for k in pngs if k.startswith(names.ARTIFACT_SAMPLES_DIR)]
    assert len(steps) == len(grids) and all("step_0000002" in k for k in steps)
    for key in pngs:
        assert rep.artifacts[key][:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("side", [32, 64])
def test_dcgan_resized_images(mnist_dir, side):
    result = run_trial(config(mnist_dir, "dcgan", size=side, steps=2), MemoryReporter())
    assert result.steps_done == 2


def test_dcgan_shapes_for_three_channels():
    class Stack:
        shape = (3, 64, 64)
        n_classes = None
    gan = MODELS.build("dcgan", {"ngf": 4, "ndf": 4}).build(Stack())
    x = gan.generate(torch.randn(5, 100))
    assert x.shape == (5, 3, 64, 64) and x.abs().max() <= 1
    logits, aux = gan.discriminate(x)
    assert logits.shape == (5,) and aux is None
    assert gan.discriminator.features(x).shape[0] == 5


def test_conditional_discriminator_sees_the_labels(mnist_dir):
    """Changing only the label changes D's logit and G's output (the label reaches both)."""
    ds = DATASETS.build("mnist", {"root": str(mnist_dir), "n_train": 16})
    for params in (TINY["cgan"], TINY["cgan-conv"]):
        gan = MODELS.build("cgan", params).build(ds)
        gan.generator.eval()
        z = torch.randn(2, gan.z_dim).repeat(2, 1)
        y = torch.tensor([0, 1, 2, 3])
        x = gan.generate(z, y)
        assert not torch.allclose(x[:2], x[2:])
        x_same = x[:1].repeat(2, 1, 1, 1)
        logits, _ = gan.discriminate(x_same, torch.tensor([0, 7]))
        assert logits[0] != logits[1]


def test_infogan_latent_layout_and_codes():
    model = MODELS.build("infogan", {"z_dim": 5, "categorical": [10, 3], "continuous": 2})
    z = model.noise(1000, 0, torch.Generator().manual_seed(0))
    assert z.shape == (1000, 5 + 10 + 3 + 2)
    one_hot = z[:, 5:15]
    assert torch.equal(one_hot.sum(1), torch.ones(1000)) and set(one_hot.unique().tolist()) == {0, 1}
    counts = torch.bincount(model.codes.codes(z), minlength=10)
    assert counts.min() > 60  # uniform: 100 expected per value
    cont = z[:, 18:]
    assert cont.min() >= -1 and cont.max() <= 1 and cont.std() > 0.5
    assert torch.equal(model.codes.codes(z), one_hot.argmax(1))


def test_infogan_mi_loss_known_answers():
    """Perfect Q: cross-entropy -> 0 and Gaussian NLL at its minimum; uniform Q: log k."""
    model = MODELS.build("infogan", {"z_dim": 2, "categorical": [4], "continuous": 1,
                                     "lambda_cont": 1.0})
    codes = model.codes
    z = model.noise(256, 0, torch.Generator().manual_seed(1))
    cat = z[:, 2:6].argmax(1)
    cont = z[:, 6:7]
    perfect = torch.cat([F.one_hot(cat, 4) * 50.0, cont, torch.full_like(cont, -8.0)], 1)
    nll_floor = 0.5 * (-8.0 + math.log(2 * math.pi))
    assert codes.loss(perfect, z).item() == pytest.approx(nll_floor, abs=1e-3)
    uniform = torch.cat([torch.zeros(256, 4), cont, torch.full_like(cont, -8.0)], 1)
    assert codes.loss(uniform, z).item() == pytest.approx(math.log(4) + nll_floor, abs=1e-3)
    mse = MODELS.build("infogan", {"z_dim": 2, "categorical": [4], "continuous": 1,
                                   "cont_loss": "mse", "lambda_cont": 2.0}).codes
    off = torch.cat([F.one_hot(cat, 4) * 50.0, cont + 0.5], 1)
    assert mse.loss(off, z).item() == pytest.approx(2.0 * 0.25, abs=1e-4)


def test_mlp_mnist_preset_is_the_lecture_gan():
    model = MODELS.build("mlp", {"preset": "mnist"})
    assert model.cfg["z_dim"] == 100 and tuple(model.cfg["g_hidden"]) == (256, 512, 1024)

    class Img:
        shape = (1, 28, 28)
    gan = model.build(Img())
    out = gan.generate(torch.randn(3, 100))
    assert out.shape == (3, 1, 28, 28) and out.abs().max() <= 1  # tanh output
    assert any(isinstance(m, torch.nn.Dropout) for m in gan.discriminator.modules())


# --- validation: refused before anything runs -------------------------------------------------

def study(mnist_dir, model, params=None, metrics=None, dataset="mnist", tricks=()):
    raw = {
        "name": "s",
        "search": {"trials": 1, "metric": "modes_covered", "space": {"lr_d": {"type": "choice", "values": [1.0e-3]}}},
        "datasets": {"d": {"name": dataset, "params": {"root": str(mnist_dir)}}
                     if dataset == "mnist" else dataset},
        "variants": [{"name": "v", "model": {"name": model, "params": params or {}},
                      "loss": "minimax", "tricks": list(tricks)}],
    }
    if metrics is not None:
        raw["metrics"] = metrics
    return parse_study(raw)


@pytest.mark.parametrize("model,params,dataset,fragment", [
    ("dcgan", {}, "ring8", "square images of side 28, 32, 64"),
    ("infogan", {}, "ring8", "square images"),
    ("cgan", {}, "ring8", "cgan needs a labelled dataset"),
    ("infogan", {"categorical": [], "continuous": 0}, "mnist", "at least one code"),
    ("infogan", {"categorical": [1]}, "mnist", ">= 2 values"),
])
def test_bad_image_model_pairings_are_refused(mnist_dir, model, params, dataset, fragment):
    with pytest.raises(ConfigError, match="variants\\[0\\].model") as err:
        resolve(study(mnist_dir, model, params, metrics=[], dataset=dataset))
    assert fragment in str(err.value)


@pytest.mark.parametrize("model,trick", [("cgan", "packing"), ("cgan", "virtual_batch_norm"),
                                         ("infogan", "packing")])
def test_tricks_that_wrap_plain_networks_refuse_conditional_models(mnist_dir, model, trick):
    with pytest.raises(ConfigError, match=f"trick '{trick}' needs"):
        resolve(study(mnist_dir, model, metrics=[], tricks=[trick]))


def test_losses_apply_to_image_models():
    assert {"minimax", "non_saturating", "maximum_likelihood", "least_squares"} <= set(
        LOSSES.names())


@pytest.mark.parametrize("model,metric,needs", [("dcgan", "code_accuracy", "categorical_code"),
                                                ("infogan", "cond_accuracy", "conditional"),
                                                ("mlp", "cond_accuracy", "conditional")])
def test_metric_the_model_cannot_support_is_refused(mnist_dir, model, metric, needs):
    with pytest.raises(ConfigError, match=f"metric '{metric}' needs {needs}"):
        resolve(study(mnist_dir, model, TINY.get(model), metrics=[metric]))


def test_variant_metric_the_model_cannot_support_exits_2(mnist_dir, tmp_path):
    """The CLI path: exit 2, one line naming the key, nothing written."""
    import subprocess
    import sys

    import yaml

    raw = {"name": "bad", "search": {"trials": 1, "space": {"lr_g": {"type": "choice",
                                                                       "values": [1e-3]}}},
           "datasets": {"d": {"name": "mnist", "params": {"root": str(mnist_dir)}}},
           "metrics": [],
           "variants": [{"name": "v", "model": "dcgan", "loss": "minimax",
                         "metrics": ["code_accuracy"]}]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "study", "bad.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "variants[0].metrics[0]: metric 'code_accuracy' needs categorical_code" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]
