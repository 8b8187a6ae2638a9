"""``translation_fid``: FID of each translation direction against the target domain.

``fid_ab`` compares G(a) with real B images, ``fid_ba`` F(b) with real A images, both on
the features of the target domain's harness classifier (through torch-fidelity, as the
``fidelity`` metric does). The translations are of the evaluation's held-out images
(``train.eval_samples`` per domain); the real reference is up to ``real_samples`` of the
target domain's ``reference`` images (``train`` by default), cached before trials start.
FID is biased by the sample counts: compare runs at equal counts (tagged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from harness import names
from harness.builtin.translation_accuracy import DomainClassifiers
from harness.classifier import DEFAULT_MIN_ACCURACY
from harness.data import Dataset
from harness.metrics import EvalContext, Evaluation, eval_device
from harness.registry import register_metric
from harness.value_specs import ValueSpec


class TranslationFid(DomainClassifiers):
    """FID per direction on the target domain's classifier features."""

    values = {names.FID_AB: ValueSpec("FID A→B", 2, "min"),
              names.FID_BA: ValueSpec("FID B→A", 2, "min")}

    def __init__(self, real_samples: int = 10_000,
                 reference: Literal["train", "heldout"] = "train",
                 cache_dir: Path | None = None, min_accuracy: float = DEFAULT_MIN_ACCURACY):
        if real_samples < 10:
            raise ValueError(f"real_samples must be >= 10, got {real_samples}")
        super().__init__(cache_dir, min_accuracy)
        self.real_samples, self.reference = int(real_samples), reference
        self._real_for = None

    def _reals(self, dataset: Dataset):
        from harness.fidelity_images import real_images

        if self._real_for is None or self._real_for[0] is not dataset:
            self._real_for = (dataset, (
                real_images(dataset.domain_a, self.reference, self.real_samples),
                real_images(dataset.domain_b, self.reference, self.real_samples)))
        return self._real_for[1]

    def _fid(self, samples: torch.Tensor, real, classifier,
             device: torch.device | None = None) -> float:
        from harness.fidelity import compute

        return compute(samples, real, extractor="classifier", classifier=classifier,
                       fid=True, isc=False, kid=False, prc=False,
                       cache_dir=self.cache_dir, device=device)[names.FID]

    def prepare(self, dataset: Dataset) -> None:
        """Train or load both classifiers and cache the real images' statistics."""
        ca, cb = self.classifiers(dataset)
        real_a, real_b = self._reals(dataset)
        self._fid(real_a.images[:100], real_a, ca)
        self._fid(real_b.images[:100], real_b, cb)

    def provenance(self, dataset: Dataset) -> dict[str, str]:
        real_a, real_b = self._reals(dataset)
        return {**super().provenance(dataset),
                names.TAG_TRANSLATION_FID_REAL: f"a:{real_a.hash},b:{real_b.hash}",
                names.TAG_TRANSLATION_FID_SAMPLES: f"eval_samples of each domain; reference "
                                                   f"{self.reference}, {self.real_samples}"}

    def evaluate(self, samples: torch.Tensor, dataset: Dataset,
                 context: EvalContext | None = None) -> Evaluation:
        t = self.translations(context, "translation_fid")
        ca, cb = self.classifiers(dataset)
        real_a, real_b = self._reals(dataset)
        device = eval_device(context)
        return Evaluation(values={names.FID_AB: self._fid(t.ab, real_b, cb, device),
                                  names.FID_BA: self._fid(t.ba, real_a, ca, device)})


register_metric("translation_fid", TranslationFid)
