"""Every study file shipped in studies/ validates: plugin names, parameters, search space,
model/dataset/trick/metric pairings (datasets are built, so MNIST studies need the files)."""

from pathlib import Path

import pytest

from harness.config import load_study, resolve

STUDIES = sorted((Path(__file__).resolve().parents[1] / "studies").glob("*.yaml"))


def test_there_are_studies():
    assert {"stability.yaml", "tricks-smoke.yaml", "cyclegan-smoke.yaml"} <= {
        p.name for p in STUDIES}


@pytest.mark.parametrize("path", STUDIES, ids=[p.name for p in STUDIES])
def test_study_file_validates(path, request):
    text = path.read_text()
    if "datasets/mnist" in text:
        request.getfixturevalue("mnist_dir")  # skips when the MNIST files are absent
    spec = load_study(path)
    plans = resolve(spec, str(path), path.parent)
    assert plans, f"{path.name} expands to no (variant, dataset) pair"
    assert len({p.key for p in plans}) == len(plans)
