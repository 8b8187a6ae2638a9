"""``fidelity``: FID, IS, KID and precision/recall of generated images, through torch-fidelity.

See :mod:`harness.fidelity` for the bridge and :mod:`harness.classifier` for the default
feature extractor (the harness's own digit classifier, so everything works offline;
``extractor: inception`` uses torch-fidelity's Inception-v3 where its weights are cached).

Protocol:

* intermediate evaluations score ``eval_samples`` (default 2,000) samples, the final one
  ``final_samples`` (default 10,000), both drawn through ``context.generate`` -- from
  noise fixed per trial, so successive evaluations differ only by the generator. A direct
  call without a context scores the samples it is given.
* the real reference is up to ``real_samples`` (default 10,000) images of the dataset's
  ``reference`` part, a seeded subset when there are more: ``reference`` (the default:
  :meth:`~harness.data.LabelledImages.reference_data`, real images the classifier --
  the feature extractor -- never trained on; with ``mnist``, 2,000 images of the GAN's
  training set kept from the classifier), ``heldout`` (images nobody trained on) or
  ``train`` (the GAN's training images; with ``mnist`` they include the classifier's own,
  which flatters a generator that memorised them -- kept only for comparison). Its
  features and statistics are cached on disk by :meth:`prepare`, before any trial starts.
* beside FID, ``fid_floor``: the real-data floor (:func:`harness.fidelity.fid_floor`),
  the FID of real images that neither the classifier nor the reference contains against
  the same reference, at the same sample count (``eval_samples`` or ``final_samples``;
  extrapolated in ``1/n`` where there are fewer such images). A generator scoring below it
  is closer to the reference than unseen real data -- possible memorisation (the report
  flags it). Computed once per count, in :meth:`prepare`, and cached (docs/fidelity.md).
* FID and KID are biased by the sample counts, and precision/recall depend on them
  through the k-NN radii: runs are comparable only at equal counts and equal extractor,
  which the provenance tags (``fidelity.*``, ``classifier.accuracy``) record.
* ``kid_subsets`` (default 100, the published protocol) subsets of
  ``min(1000, samples, real)`` -- the bulk of an evaluation's time on a CPU (~80 ms a
  subset); lower it for frequent intermediate evaluations.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

from harness import names
from harness.classifier import DEFAULT_MIN_ACCURACY, ClassifierMetric, TrainedClassifier
from harness.data import Dataset, LabelledImages
from harness.metrics import EvalContext, Evaluation, eval_device
from harness.registry import register_metric
from harness.value_specs import FRACTION, ValueSpec

_ALL = (names.FID, names.IS_MEAN, names.IS_STD, names.KID_MEAN, names.KID_STD,
        names.PRECISION, names.RECALL)


class Fidelity(ClassifierMetric):
    """FID, IS, KID and precision/recall via torch-fidelity, on the harness classifier's features."""

    #: every value an instance may provide; its parameters switch some off (``provides``)
    values = {
        names.FID: ValueSpec("FID", 2, "min"),
        names.FID_FLOOR: ValueSpec("FID real-data floor", 2),  # a reference level
        names.IS_MEAN: ValueSpec("IS", 2, "max"),
        names.IS_STD: ValueSpec("IS std", 2),
        names.KID_MEAN: ValueSpec("KID", 4, "min"),
        names.KID_STD: ValueSpec("KID std", 4),
        names.PRECISION: ValueSpec("precision", 3, "max", bounds=FRACTION),
        names.RECALL: ValueSpec("recall", 3, "max", bounds=FRACTION),
    }

    def __init__(
        self,
        extractor: Literal["classifier", "inception"] = "classifier",
        eval_samples: int = 2000,
        final_samples: int = 10_000,
        real_samples: int = 10_000,
        reference: Literal["reference", "heldout", "train"] = "reference",
        fid: bool = True,
        isc: bool = True,
        kid: bool = True,
        prc: bool = True,
        kid_subsets: int = 100,
        cache_dir: Path | None = None,
        min_accuracy: float = DEFAULT_MIN_ACCURACY,
        inception_weights: Path | None = None,
    ):
        for key, value in (("eval_samples", eval_samples), ("final_samples", final_samples),
                           ("real_samples", real_samples)):
            if value < 10:
                raise ValueError(f"{key} must be >= 10, got {value}")
        if kid_subsets < 1:
            raise ValueError(f"kid_subsets must be >= 1, got {kid_subsets}")
        if not (fid or isc or kid or prc):
            raise ValueError("fid, isc, kid and prc are all false: nothing to compute")
        self.extractor = extractor
        self.eval_samples, self.final_samples = int(eval_samples), int(final_samples)
        self.real_samples, self.reference = int(real_samples), reference
        self.flags = {"fid": fid, "isc": isc, "kid": kid, "prc": prc}
        self.kid_subsets = int(kid_subsets)
        super().__init__(cache_dir, min_accuracy)
        self.inception_weights = inception_weights
        self.provides = tuple(n for n, on in zip(_ALL, (fid, isc, isc, kid, kid, prc, prc)) if on)
        if fid:
            self.provides = (names.FID, names.FID_FLOOR, *self.provides[1:])
        self._real_for = None

    def applies_to(self, dataset: Dataset) -> bool:
        if self.extractor == "inception":
            return isinstance(dataset, LabelledImages) and dataset.shape[0] in (1, 3)
        return super().applies_to(dataset)

    # -- shared state, once per dataset and process ---------------------------------------
    def _real(self, dataset: LabelledImages):
        from harness.fidelity_images import real_images

        if self._real_for is None or self._real_for[0] is not dataset:
            self._real_for = (dataset, real_images(dataset, self.reference, self.real_samples,
                                                   floor=self.flags["fid"]))
        return self._real_for[1]

    def _extractor_classifier(self, dataset: LabelledImages) -> TrainedClassifier | None:
        return self.classifier(dataset) if self.extractor == "classifier" else None

    def _score(self, samples: torch.Tensor, dataset: LabelledImages,
               device: torch.device | None = None, floor: bool = True) -> dict[str, float]:
        from harness.fidelity import compute

        return compute(samples, self._real(dataset), extractor=self.extractor,
                       classifier=self._extractor_classifier(dataset), cache_dir=self.cache_dir,
                       inception_weights=self.inception_weights, kid_subsets=self.kid_subsets,
                       device=device, floor=floor, **self.flags)

    # -- Metric ------------------------------------------------------------------------------
    def prepare(self, dataset: Dataset) -> None:
        """Train or load the classifier (or check Inception's weights), then compute the
        real images' features and statistics, and the real-data floor at ``eval_samples``
        and ``final_samples``, into the cache."""
        from harness.fidelity import check_inception, fid_floor

        if self.extractor == "inception":
            check_inception(self.inception_weights)
        real = self._real(dataset)
        warm = real.images[: min(1000, real.images.shape[0])]
        self._score(warm, dataset, floor=False)
        if self.flags["fid"]:
            for n in sorted({self.eval_samples, self.final_samples}):
                fid_floor(n, real, extractor=self.extractor,
                          classifier=self._extractor_classifier(dataset),
                          cache_dir=self.cache_dir, inception_weights=self.inception_weights)

    def provenance(self, dataset: Dataset) -> dict[str, str]:
        from harness.fidelity import INCEPTION_FILE, _weights_tag

        tags = {
            names.TAG_FIDELITY_EXTRACTOR: self.extractor,
            names.TAG_FIDELITY_REAL_HASH: self._real(dataset).hash,
            names.TAG_FIDELITY_SAMPLES_EVAL: str(self.eval_samples),
            names.TAG_FIDELITY_SAMPLES_FINAL: str(self.final_samples),
        }
        if self.extractor == "classifier":
            clf = self.classifier(dataset)
            tags[names.TAG_FIDELITY_EXTRACTOR_HASH] = clf.hash
            tags[names.TAG_CLASSIFIER_HASH] = clf.hash
            tags[names.TAG_CLASSIFIER_ACCURACY] = f"{clf.accuracy:.4f}"
        elif self.inception_weights:
            tags[names.TAG_FIDELITY_EXTRACTOR_HASH] = _weights_tag(self.inception_weights)[1:]
        else:  # torch-fidelity's published weights: their file name carries their hash
            tags[names.TAG_FIDELITY_EXTRACTOR_HASH] = INCEPTION_FILE.rsplit("-", 1)[1].split(".")[0]
        return tags

    def evaluate(self, samples: torch.Tensor, dataset: Dataset,
                 context: EvalContext | None = None) -> Evaluation:
        if context is not None:
            samples = context.generate(self.final_samples if context.final else self.eval_samples)
        return Evaluation(values=self._score(samples, dataset, eval_device(context)))

    def evaluate_copies(self, samples: Sequence[torch.Tensor], dataset: Dataset,
                        contexts: Sequence[EvalContext]) -> list[Evaluation]:
        """Every copy's samples through the extractor in one pass
        (:func:`harness.fidelity.compute_many`), scored per copy; copies at their final
        evaluation and copies at an intermediate one are two such passes."""
        from harness.fidelity import compute_many

        clf = self._extractor_classifier(dataset)
        out: list[Evaluation | None] = [None] * len(contexts)
        for final in (False, True):
            ks = [k for k, c in enumerate(contexts) if bool(c.final) == final]
            if not ks:
                continue
            n = self.final_samples if final else self.eval_samples
            values = compute_many(
                [contexts[k].generate(n) for k in ks], self._real(dataset),
                extractor=self.extractor, classifier=clf, cache_dir=self.cache_dir,
                inception_weights=self.inception_weights, kid_subsets=self.kid_subsets,
                device=eval_device(contexts[ks[0]]), **self.flags)
            for k, v in zip(ks, values):
                out[k] = Evaluation(values=v)
        return out


register_metric("fidelity", Fidelity)
