"""Where a trial trains and evaluates: ``train.device`` x ``resources.gpu`` x what Ray granted.

Fast CPU tests of the device-choice logic (``torch.cuda.is_available`` and the granted GPU
share are monkeypatched), of the plumbing that hands the trial's device to the metrics,
and of the study-level checks; the tests at the end need a real GPU and are skipped
without one.
"""


import pytest
import torch

from harness import names
from harness.config import TrialConfig, parse_study
from harness.device import resolve_device
from harness.errors import ClusterError, ConfigError, DeviceError, HarnessError
from harness.metrics import EvalContext, Evaluation, Metric, eval_device
from harness.reporting import MemoryReporter
from harness.resolve import resolve
from harness.study import check_resources
from harness.trial import build_trainer, run_trial
from tests.test_config import study

CPU, CUDA = torch.device("cpu"), torch.device("cuda")



@pytest.fixture
def cuda_visible(monkeypatch):
    """Pretend torch can use CUDA (no tensor is ever put there by the tests using it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# --- resolve_device -----------------------------------------------------------------------

@pytest.mark.parametrize("granted", [None, 0.0, 0.25, 1.0])
def test_cpu_is_always_the_cpu(cuda_visible, granted):
    assert resolve_device("cpu", granted) == CPU


@pytest.mark.parametrize("granted, expected", [(None, CUDA), (0.25, CUDA), (1.0, CUDA),
                                               (0.0, CPU)])
def test_auto_follows_the_granted_gpu(cuda_visible, granted, expected):
    # granted 0.0: Ray placed the trial without a GPU; the node's GPUs belong to other trials
    # (Ray 2.60 leaves CUDA_VISIBLE_DEVICES unset for such trials, so torch still sees them)
    assert resolve_device("auto", granted) == expected


def test_auto_outside_ray_without_cuda_is_the_cpu(no_cuda):
    assert resolve_device("auto", None) == CPU
    assert resolve_device("auto", 0.0) == CPU


def test_cuda_with_a_gpu(cuda_visible):
    assert resolve_device("cuda", None) == CUDA
    assert resolve_device("cuda", 0.5) == CUDA


def test_cuda_without_cuda_is_a_clear_error(no_cuda):
    with pytest.raises(DeviceError) as exc:
        resolve_device("cuda", None)
    msg = str(exc.value)
    assert isinstance(exc.value, HarnessError)
    assert "train.device is 'cuda'" in msg and "torch" in msg and "train.device: cpu" in msg


def test_granted_gpu_that_torch_cannot_use_is_an_error_even_for_auto(no_cuda):
    # Ray says the trial has a GPU, torch cannot use it: training on the CPU while holding
    # the GPU share would be silently slow, so it is refused
    with pytest.raises(DeviceError, match=r"granted 0.25 GPU .*cannot use CUDA"):
        resolve_device("auto", 0.25)


def test_cuda_granted_no_gpu_names_the_resource(cuda_visible):
    with pytest.raises(DeviceError, match=r"granted no GPU; set resources.gpu > 0"):
        resolve_device("cuda", 0.0)


def test_unknown_device_is_refused():
    with pytest.raises(DeviceError, match="allowed: cpu, cuda, auto"):
        resolve_device("tpu")


def ring_config(**train) -> TrialConfig:
    return TrialConfig(study="unit", variant="v", dataset_key="ring8", model="mlp",
                       loss="minimax", dataset="ring8", metrics=["mode_coverage"],
                       train={"steps": 4, "eval_every": 2, "log_every": 2, "eval_samples": 64,
                              "batch_size": 16, **train})


def test_gpu_trial_without_cuda_fails_before_building_anything(no_cuda, monkeypatch):
    import harness.trial as trial_mod

    monkeypatch.setattr(trial_mod, "load_plugins", lambda *a: pytest.fail("built anyway"))
    reporter = MemoryReporter()
    with pytest.raises(DeviceError, match="train.device is 'cuda'"):
        run_trial(ring_config(device="cuda"), reporter)
    assert isinstance(reporter.error, DeviceError)


def test_build_trainer_passes_the_granted_share(cuda_visible, one_thread):
    # auto with no GPU granted trains on the CPU even though torch "sees" one
    trainer = build_trainer(ring_config(device="auto"), granted_gpus=0.0)
    assert trainer.device == CPU and trainer.data.device == CPU


# --- the study file: resources.gpu and train.device ---------------------------------------

@pytest.mark.parametrize("gpu", [0.25, 0.5, 1, 2, 0.0001])
def test_gpu_shares_ray_accepts(gpu):
    assert parse_study(study(resources={"gpu": gpu})).resources.gpu == gpu


@pytest.mark.parametrize("gpu, words", [(1.5, "whole GPUs"), (0.00001, "finer than 0.0001"),
                                        (-1, "greater than or equal to 0")])
def test_gpu_shares_ray_refuses(gpu, words):
    with pytest.raises(ConfigError) as exc:
        parse_study(study(resources={"gpu": gpu}))
    assert "resources.gpu" in str(exc.value) and words in str(exc.value)


def devices(raw) -> set[str]:
    return {p.base.train.device for p in resolve(parse_study(raw))}


def test_device_defaults_to_auto_with_a_gpu_share_and_cpu_without():
    assert devices(study(resources={"gpu": 0.25})) == {"auto"}
    assert devices(study()) == {"cpu"}
    assert devices(study(resources={"gpu": 0})) == {"cpu"}


def test_explicit_device_is_kept():
    assert devices(study(resources={"gpu": 0.5}, train={"device": "cuda"})) == {"cuda"}
    assert devices(study(train={"device": "auto"})) == {"auto"}


def resolve_error(raw) -> str:
    with pytest.raises(ConfigError) as exc:
        resolve(parse_study(raw))
    return str(exc.value)


def test_cpu_device_with_a_gpu_share_is_refused():
    msg = resolve_error(study(resources={"gpu": 0.25}, train={"device": "cpu"}))
    assert "train.device: 'cpu' wastes the GPU share" in msg and "auto, cuda" in msg


def test_cuda_device_without_a_gpu_share_is_refused():
    msg = resolve_error(study(train={"device": "cuda"}))
    assert "train.device: 'cuda' needs a GPU" in msg and "resources.gpu" in msg


def test_a_variant_device_is_checked_under_its_own_key():
    raw = study(resources={"gpu": 0.25})
    raw["variants"][0]["train"] = {"device": "cpu"}
    assert resolve_error(raw).startswith("study: variants[0].train.device: 'cpu'")


# --- the cluster must be able to place a trial ----------------------------------------------

def spec_with(**resources):
    return parse_study(study(resources=resources))


def test_resources_that_fit_pass():
    assert check_resources(spec_with(cpu=1, gpu=0.25), {"CPU": 16, "GPU": 1}, joined=False) is None
    assert check_resources(spec_with(cpu=1), {"CPU": 2}, joined=False) is None


def test_gpu_trials_on_local_ray_without_gpu_are_refused():
    with pytest.raises(ClusterError) as exc:
        check_resources(spec_with(cpu=1, gpu=0.25), {"CPU": 2}, joined=False)
    msg = str(exc.value)
    assert "0.25 GPU" in msg and "has 2 CPU and 0 GPU" in msg and "resources.gpu: 0" in msg


def test_too_many_cpus_on_local_ray_are_refused():
    with pytest.raises(ClusterError, match=r"set resources.cpu to at most 2"):
        check_resources(spec_with(cpu=4), {"CPU": 2}, joined=False)


def test_a_joined_cluster_only_warns():
    line = check_resources(spec_with(gpu=1), {"CPU": 8}, joined=True)
    assert line.startswith("warning: ") and "1 GPU" in line


def test_granted_gpus_outside_ray_is_none():
    from harness.tune_glue import _granted_gpus

    assert _granted_gpus() is None


# --- evaluation runs on the trial's device ---------------------------------------------------

class DeviceRecorder(Metric):
    provides = ()

    def __init__(self):
        self.seen = []

    def evaluate(self, samples, dataset, context=None):
        self.seen.append(context.device)
        return Evaluation(values={})


def test_the_loop_hands_its_device_to_every_metric(one_thread):
    trainer = build_trainer(ring_config())
    recorder = DeviceRecorder()
    trainer.metrics = [recorder]
    trainer.evaluate()
    assert recorder.seen == [CPU]


def test_eval_device_defaults_to_the_cpu():
    assert eval_device(None) == CPU
    assert eval_device(EvalContext(step=0, final=False, generate=lambda n: None)) == CPU
    ctx = EvalContext(step=0, final=False, generate=lambda n: None, device=torch.device("meta"))
    assert eval_device(ctx) == torch.device("meta")


def tiny_classifier():
    from harness.classifier import DigitNet, TrainedClassifier

    net = DigitNet(1, 28, 28, 10, width=2, hidden=8).eval().requires_grad_(False)
    return TrainedClassifier(net=net, accuracy=1.0, key="k", weights_path=None,
                             weights_sha256="0" * 64, recipe={})


def test_classifier_copies_its_network_once_per_device():
    clf = tiny_classifier()
    assert clf.net_on(None) is clf.net and clf.net_on("cpu") is clf.net
    meta = clf.net_on("meta")  # a device that needs no hardware
    assert meta is not clf.net and meta is clf.net_on(torch.device("meta"))
    assert next(meta.parameters()).device.type == "meta"
    assert next(clf.net.parameters()).device == CPU  # the shared network never moves


def test_classifier_results_come_back_on_the_cpu():
    clf = tiny_classifier()
    images = torch.rand(5, 1, 28, 28) * 2 - 1
    images[0] = float("nan")
    cls, conf = clf.classify(images, CPU)
    assert cls.device == CPU and conf.device == CPU and int(cls[0]) == -1
    assert torch.equal(clf.features(images[1:], "cpu"), clf.features(images[1:]))


class SpyClassifier:
    n_classes = 10

    def __init__(self):
        self.devices = []

    def classify(self, samples, device=None):
        self.devices.append(device)
        n = samples.shape[0]
        return torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.float64)

    def predict(self, samples, device=None):
        return self.classify(samples, device)[0]


@pytest.mark.parametrize("metric_name", ["class_modes", "cond_accuracy", "code_accuracy"])
def test_classifier_metrics_run_on_the_context_device(metric_name, monkeypatch):
    from harness.plugins import load_plugins
    from harness.registry import METRICS

    load_plugins([])
    metric = METRICS.build(metric_name, {}, "metrics[0].params")
    spy = SpyClassifier()
    monkeypatch.setattr(metric, "classifier", lambda dataset: spy)

    class Digits:
        n_classes = 10

    samples = torch.zeros(4, 1, 28, 28)
    ctx = EvalContext(step=1, final=False, generate=lambda n: samples[:n],
                      labels=torch.zeros(4, dtype=torch.long),
                      codes=torch.zeros(4, dtype=torch.long), device=torch.device("meta"))
    metric.evaluate(samples, Digits(), ctx)
    assert spy.devices == [torch.device("meta")]


def test_fidelity_metric_passes_the_context_device(monkeypatch):
    import harness.fidelity
    from harness.plugins import load_plugins
    from harness.registry import METRICS

    load_plugins([])
    metric = METRICS.build("fidelity", {"eval_samples": 10}, "metrics[0].params")
    seen = {}

    def fake_compute(samples, real, **kwargs):
        seen.update(kwargs)
        return {names.FID: 1.0}

    monkeypatch.setattr(harness.fidelity, "compute", fake_compute)
    monkeypatch.setattr(metric, "classifier", lambda dataset: None)
    monkeypatch.setattr(metric, "_real", lambda dataset: None)
    ctx = EvalContext(step=1, final=False, generate=lambda n: torch.zeros(n, 1, 28, 28),
                      device=torch.device("cuda", 1))
    metric.evaluate(None, object(), ctx)
    assert seen["device"] == torch.device("cuda", 1)


@pytest.mark.parametrize("device, cuda", [("cpu", False), ("cuda", True), (None, False)])
def test_fidelity_compute_runs_the_extractor_on_the_given_device(device, cuda, tmp_path,
                                                                  monkeypatch, no_cuda):
    import torch_fidelity

    from harness.fidelity import compute

    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        return {"frechet_inception_distance": 0.0}

    monkeypatch.setattr(torch_fidelity, "calculate_metrics", fake)
    images = torch.zeros(4, 1, 28, 28)
    compute(images, images, extractor="inception", fid=True, isc=False, kid=False, prc=False,
            cache_dir=tmp_path, device=device)
    # device=None falls back to `cuda`, whose default is torch.cuda.is_available() (False here)
    assert seen["cuda"] is cuda


# --- on a real GPU ---------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
def test_trial_trains_and_evaluates_on_the_gpu(one_thread):
    trainer = build_trainer(ring_config(device="cuda"))
    assert trainer.data.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in trainer.G.parameters())
    recorder = DeviceRecorder()
    trainer.metrics.append(recorder)
    result = trainer.fit(MemoryReporter())
    assert result.steps_done == 4 and result.final[names.TRAIN_SECONDS] > 0
    assert all(d.type == "cuda" for d in recorder.seen)
    assert trainer.sample().device == CPU


@needs_cuda
def test_classifier_on_the_gpu_matches_the_cpu():
    clf = tiny_classifier()
    images = torch.rand(300, 1, 28, 28) * 2 - 1
    on_gpu = clf.logits(images, "cuda")
    assert on_gpu.device == CPU
    torch.testing.assert_close(on_gpu, clf.logits(images), rtol=1e-4, atol=1e-4)
