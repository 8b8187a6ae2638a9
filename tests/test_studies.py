"""Every study file shipped in studies/ validates: plugin names, parameters, search space,
model/dataset/trick/metric pairings (datasets are built, so MNIST studies need the files)."""

from pathlib import Path

import pytest

from harness.config import load_study
from harness.resolve import resolve

ROOT = Path(__file__).resolve().parents[1] / "studies"
STUDIES = sorted(ROOT.glob("**/*.yaml"))  # presets in subfolders (reproduce/) too


def test_there_are_studies():
    assert {"stability.yaml", "tricks-smoke.yaml", "cyclegan-smoke.yaml"} <= {
        p.name for p in STUDIES}


@pytest.mark.parametrize("path", STUDIES, ids=[str(p.relative_to(ROOT)) for p in STUDIES])
def test_study_file_validates(path, request):
    text = path.read_text()
    if "datasets/mnist" in text:
        request.getfixturevalue("mnist_dir")  # skips when the MNIST files are absent
    spec = load_study(path)
    plans = resolve(spec, str(path), path.parent)
    assert plans, f"{path.name} expands to no (variant, dataset) pair"
    assert len({p.key for p in plans}) == len(plans)


def test_the_default_study_runs_each_pairs_copies_vectorized():
    """stability.yaml's ``vectorize: auto``: per pair, one trial holding its two search
    suggestions and one holding its six seeds (64 runs in 16 Tune trials)."""
    from harness.study import tune_trials
    from harness.vector.plan import plan_vectorize

    path = next(p for p in STUDIES if p.name == "stability.yaml")
    spec = load_study(path)
    plans = resolve(spec, str(path), path.parent)
    vector = plan_vectorize(spec, plans)
    keys = {p.key for p in plans}
    assert spec.vectorize == "auto" and len(keys) == 8
    assert vector.seeds == dict.fromkeys(keys, 6)
    assert vector.search == {k: [2] for k in keys}
    assert tune_trials(spec, plans, vector) == 16
