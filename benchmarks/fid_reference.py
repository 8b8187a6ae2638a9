"""The FID reference and its real-data floor on the ``mnist`` dataset (docs/fidelity.md).

For each split seed: trains the harness's classifier (in a temporary cache, as a study
would), then scores real image sets with the ``fidelity`` metric (FID only) against the
default reference (2,000 images the classifier never saw):

* ``acc`` / ``train_acc``: the classifier's held-out / training accuracy, ``train_s`` its
  training time;
* ``floor_2k`` / ``floor_10k``: the real-data floor at 2,000 and 10,000 samples;
* ``own_2k``: 2,000 of the classifier's training images (not in the reference);
* ``memo_2k`` / ``memo_10k``: a generator that copies its training images (draws with
  replacement from the 8,000 of the train part, a quarter of them reference images);
* ``copies_10k``: one that copies only reference images (``n_train`` <= 2,000);
* ``few_2k``: 2,000 draws from only 500 reference images (memorised, but not diverse);
* ``old_seen`` / ``old_unseen``: against the old default ``reference: train``, 2,000 of
  the classifier's training images / the 2,000 held-out images.

    python benchmarks/fid_reference.py [--seeds 0,1,2,3,4,5] [--root ../shared/datasets/mnist]
    python benchmarks/fid_reference.py --accuracy-only --recipe '{"epochs": 4, "shift": 0}'

One JSON line per seed. ``--recipe`` overrides entries of the classifier's recipe
(:data:`harness.classifier.DEFAULT_RECIPE`); ``--accuracy-only`` stops after the
classifier. Needs the MNIST files; runs on the CPU (~8 s a seed on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from harness import classifier as C
from harness import fidelity as F
from harness import names
from harness.plugins import load_plugins
from harness.registry import DATASETS, METRICS

ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def measure(seed: int, root: Path, recipe: dict | None = None,
            accuracy_only: bool = False) -> dict:
    cache = tempfile.mkdtemp(prefix="fid-reference-")
    ds = DATASETS.build("mnist", {"root": str(root), "split_seed": seed}, "dataset.params")
    start = time.perf_counter()
    clf = C.load_or_train(ds, cache_dir=cache, min_accuracy=0.0, recipe=recipe)
    train_s = time.perf_counter() - start
    source = ds.classifier_source()
    row = {"seed": seed, "acc": clf.accuracy,
           "train_acc": C.accuracy(clf.net, source.train_data(), source.train_labels()),
           "train_s": train_s}
    if accuracy_only:
        return _rounded(row)
    metric = METRICS.build("fidelity", {"cache_dir": cache, "eval_samples": 2000,
                                        "final_samples": 10_000, "isc": False, "kid": False,
                                        "prc": False})
    metric.prepare(ds)
    g = torch.Generator().manual_seed(100 + seed)
    train, own, ref = ds.train_data(), source.train_data(), ds.reference_data()

    def fid(samples: torch.Tensor) -> dict[str, float]:
        return metric.evaluate(samples, ds).values

    def draws(pool: torch.Tensor, n: int) -> torch.Tensor:
        return pool[torch.randint(0, pool.shape[0], (n,), generator=g)]

    row["floor_2k"] = fid(ds.heldout_data())[names.FID_FLOOR]
    row["own_2k"] = fid(own[torch.randperm(own.shape[0], generator=g)[:2000]])[names.FID]
    row["memo_2k"] = fid(draws(train, 2000))[names.FID]
    memo = fid(draws(train, 10_000))
    row["memo_10k"], row["floor_10k"] = memo[names.FID], memo[names.FID_FLOOR]
    row["copies_10k"] = fid(draws(ref, 10_000))[names.FID]
    row["few_2k"] = fid(draws(ref[torch.randperm(ref.shape[0], generator=g)[:500]], 2000))[names.FID]
    old = F.real_images(ds, "train")
    old_fid = {name: F.compute(x, old, classifier=clf, cache_dir=cache, isc=False, kid=False,
                               prc=False)[names.FID]
               for name, x in (("old_seen", own[:2000]), ("old_unseen", ds.heldout_data()))}
    row.update(old_fid)
    return _rounded(row)


def _rounded(row: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--recipe", type=json.loads, default=None,
                        help="JSON object overriding entries of the classifier's recipe")
    parser.add_argument("--accuracy-only", action="store_true")
    args = parser.parse_args()
    load_plugins()
    for seed in (int(s) for s in args.seeds.split(",")):
        print(json.dumps(measure(seed, args.root, args.recipe, args.accuracy_only)), flush=True)


if __name__ == "__main__":
    main()
