"""The torch-fidelity bridge: FID, IS, KID and precision/recall on the harness's features.

:func:`compute` scores generated images against real ones with
``torch_fidelity.calculate_metrics``, on one of two feature extractors:

* ``"classifier"`` (the default, works offline): the harness's digit classifier
  (:mod:`harness.classifier`) wrapped as a torch-fidelity feature extractor,
  :class:`ClassifierExtractor`. FID, KID and precision/recall use its penultimate
  features, the Inception Score its logits (for stacked datasets: the per-channel
  features concatenated and the log-probabilities of the combined classes). Numbers are
  therefore *not* comparable with published Inception-based FIDs, only with each other
  -- which is why the metric logs the extractor's hash as provenance.
* ``"inception"``: torch-fidelity's ``inception-v3-compat``, the published protocol. It
  needs its weights file (:data:`INCEPTION_FILE`), downloaded once into torch hub's
  checkpoint folder; :func:`check_inception` says how to provide it offline. Single-channel
  images are repeated to three channels.

What FID compares with (docs/fidelity.md):

* **The reference** (:func:`~harness.fidelity_images.real_images`): by default the dataset's
  :meth:`~harness.data.LabelledImages.reference_data`, real images the classifier never
  trained on (:mod:`harness.fidelity_images` says why).
* **The real-data floor** (:func:`fid_floor`, reported as ``fid_floor`` beside ``fid``):
  the FID of real images that neither the classifier nor the reference contains (the
  held-out part; the reference part when the reference is the held-out part) against the
  same reference, at the same sample count: what a generator indistinguishable from the
  data scores. A FID below it means samples closer to the reference than unseen real
  images are -- possible memorisation of the reference, which the ``mnist`` datasets make
  part of the GAN's training images. Cached per sample count in ``<harness
  cache>/fidelity/floor-<reference cache name>-<floor set's name>.json``.

Choices that follow torch-fidelity 0.4.0's API and its traps:

* Images go in as an :class:`~harness.fidelity_images.ImageSet`, a dataset returning one
  bare uint8 ``C x H x W`` tensor per item (torch-fidelity refuses tuples); generated
  samples in [-1, 1] are mapped to uint8 by :func:`~harness.fidelity_images.to_uint8`. Never through torch-fidelity's generator-model
  path, which calls ``np.int`` (gone in numpy 2).
* The extractor *class* is registered once per process per classifier, lazily
  (:func:`register_classifier_extractor`), so every Ray worker registers its own. The
  registered name holds the hash of the classifier's weights file: torch-fidelity's cache
  keys on that name, not on the weights, so a retrained classifier must get a new name or
  it would reuse stale statistics. The weights path travels as the
  ``feature_extractor_weights_path`` argument of ``calculate_metrics``, which torch-fidelity
  hands to the extractor's constructor.
* Only the real images are cached (``input2_cache_name``: the real set's name, which holds
  the dataset's fingerprint and the images' hash, plus the extractor's name), under
  ``<harness cache>/fidelity``; torch-fidelity writes cache entries atomically.
* ``save_cpu_ram=True``: the only switch that makes torch-fidelity read the in-memory
  images without DataLoader worker processes (pointless copies here, and forking inside a
  Ray worker), and that computes precision/recall in row blocks of ``prc_batch_size``
  instead of a full ``n x n`` distance matrix.
* ``kid_subset_size = min(1000, n1, n2)`` and ``isc_splits = min(10, n1)``: torch-fidelity
  fails when a KID subset is larger than either sample set.
* The extractor runs on ``device`` (metrics pass the trial's, ``EvalContext.device``): a
  CUDA device means torch-fidelity's ``cuda=True``, under ``torch.cuda.device(device)``
  when it has an index (torch-fidelity moves the extractor and each batch to the current
  GPU itself). Without ``device``, ``cuda`` decides, by default
  ``torch.cuda.is_available()`` (the driver's ``prepare``). On a CPU the classifier runs on
  one thread (see :func:`harness.classifier.single_thread`).
* Convention (torch-fidelity's): input 1 is generated, input 2 is real. Precision is the
  fraction of generated samples inside the real manifold (k=3 nearest neighbours), recall
  the fraction of real samples inside the generated one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from harness import names
from harness.classifier import (
    TrainedClassifier,
    _atomic_write,
    _file_lock,
    cache_root,
    load_net,
    single_thread,
    stacked_outputs,
)
from harness.errors import HarnessError
from harness.fidelity_images import (
    ImageSet,
    RealImages,
    _three_channels,
    real_images,  # noqa: F401  (callers reach it here too)
    to_uint8,
)

Extractor = Literal["classifier", "inception"]
EXTRACTORS: tuple[str, ...] = ("classifier", "inception")

#: random subsets of the floor set averaged for the floor at a sample count below its size
FLOOR_SUBSETS = 5
#: random subsets of each of two sizes that measure FID's 1/n slope, to extrapolate the
#: floor to a sample count above the floor set's size
FLOOR_FIT_SUBSETS = 10

#: torch-fidelity's registered name of Inception-v3 and its weights file
INCEPTION_NAME = "inception-v3-compat"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"

#: part of the extractor's registered name (and so of torch-fidelity's cache keys): bump
#: when what the extractor computes from the same weights changes
EXTRACTOR_VERSION = "1"

#: feature names the classifier extractor provides
FEATURES = "features"
LOGITS = "logits"

#: torch-fidelity's result keys -> harness names
_RESULT_NAMES = {
    "frechet_inception_distance": names.FID,
    "inception_score_mean": names.IS_MEAN,
    "inception_score_std": names.IS_STD,
    "kernel_inception_distance_mean": names.KID_MEAN,
    "kernel_inception_distance_std": names.KID_STD,
    "precision": names.PRECISION,
    "recall": names.RECALL,
}


class InceptionUnavailable(HarnessError):
    """Inception-v3's weights cannot be loaded (offline, and not in the cache)."""


# --- the classifier as a torch-fidelity feature extractor ------------------------------------

class ClassifierExtractor(FeatureExtractorBase):
    """torch-fidelity feature extractor over the harness's digit classifier.

    Input: uint8 ``N x C x H x W`` (as torch-fidelity delivers it), mapped to [-1, 1].
    Features: ``"features"`` (penultimate; FID, KID, PRC) and ``"logits"`` (IS).
    Registered subclasses fix :attr:`stack` (stacked digit channels) and a default weights
    file; a ``feature_extractor_weights_path`` argument overrides the latter.
    """

    stack: ClassVar[int] = 1
    default_weights_path: ClassVar[str | None] = None

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        path = feature_extractor_weights_path or self.default_weights_path
        if path is None:
            raise ValueError(f"feature extractor {name!r} needs feature_extractor_weights_path")
        self.net = load_net(path)

    @staticmethod
    def get_provided_features_list():
        return FEATURES, LOGITS

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return LOGITS if metric == "isc" else FEATURES

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 28, 28, dtype=torch.uint8)

    def forward(self, x):
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4):
            raise ValueError(f"expected uint8 images N x C x H x W, got {getattr(x, 'shape', x)}")
        x = x.to(torch.float32) / 127.5 - 1.0
        feats, logits = stacked_outputs(self.net, x, self.stack)
        out = {FEATURES: feats, LOGITS: logits}
        return tuple(out[name] for name in self.features_list)


_register_lock = threading.Lock()


def extractor_name(classifier: TrainedClassifier) -> str:
    """The torch-fidelity name of ``classifier``'s extractor: holds its weights' hash."""
    return f"harness-digits-v{EXTRACTOR_VERSION}-{classifier.hash}-x{classifier.stack}"


def register_classifier_extractor(classifier: TrainedClassifier) -> str:
    """Register ``classifier``'s extractor class with torch-fidelity (once per process); its name."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    name = extractor_name(classifier)
    with _register_lock:
        if name not in FEATURE_EXTRACTORS_REGISTRY:
            cls = type(f"ClassifierExtractor_{classifier.hash}_x{classifier.stack}",
                       (ClassifierExtractor,),
                       {"stack": classifier.stack,
                        "default_weights_path": str(classifier.weights_path),
                        "__module__": __name__})
            register_feature_extractor(name, cls)
    return name


# --- Inception-v3 ---------------------------------------------------------------------------
def inception_hint(weights_path: str | os.PathLike | None = None) -> str:
    """Where torch-fidelity looks for Inception-v3's weights, and how to put them there."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    hub = Path(torch.hub.get_dir()) / "checkpoints"
    where = (f"the file {str(weights_path)!r} given as 'inception_weights' could not be loaded"
             if weights_path else
             f"torch-fidelity downloads {INCEPTION_FILE} from {URL_INCEPTION_V3} into {hub}")
    return (f"{where}. Offline, copy {INCEPTION_FILE} into {hub} (the folder follows $TORCH_HOME: "
            "$TORCH_HOME/hub/checkpoints), or set the fidelity metric's parameter "
            "'inception_weights' to the file's path, or use extractor: classifier")


def check_inception(weights_path: str | os.PathLike | None = None) -> None:
    """Build torch-fidelity's Inception-v3 once; raise :class:`InceptionUnavailable` if it cannot."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    try:
        FeatureExtractorInceptionV3(INCEPTION_NAME, ["2048"], feature_extractor_weights_path=weights_path,
                                    verbose=False)
    except Exception as exc:  # noqa: BLE001  (URLError offline, FileNotFoundError, bad file)
        raise InceptionUnavailable(
            f"Inception-v3 weights are unavailable ({type(exc).__name__}: {exc}); "
            + inception_hint(weights_path)) from None


# --- scoring --------------------------------------------------------------------------------
def _weights_tag(path: str | os.PathLike | None) -> str:
    """``-<hash>`` of user-given Inception weights (they must not share the published
    weights' cached statistics); empty for the published ones."""
    if not path:
        return ""
    st = os.stat(path)
    return "-" + _file_sha(str(path), st.st_mtime_ns, st.st_size)[:16]


@functools.lru_cache(maxsize=8)
def _file_sha(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fidelity_cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where torch-fidelity caches the real images' features and statistics."""
    return cache_root(cache_dir) / "fidelity"


@dataclass
class _Call:
    """What :func:`compute` and :func:`compute_many` hand torch-fidelity: its kwargs and
    the contexts (CUDA device, single classifier thread) the call runs under."""

    kwargs: dict
    contexts: list
    #: the extractor part of the cache names: its registered name plus its weights' tag
    extractor_tag: str = ""


def _prepare(n1: int, real: RealImages | torch.Tensor, extractor: Extractor,
             classifier: TrainedClassifier | None, flags: dict[str, bool],
             cache_dir, cuda: bool | None, inception_weights, kid_subsets: int,
             device) -> tuple[_Call, torch.Tensor]:
    """torch-fidelity's arguments for ``n1`` generated images against ``real``, and the
    real images (uint8, three channels for Inception)."""
    if not any(flags.values()):
        raise ValueError("nothing to compute: fid, isc, kid and prc are all off")
    if isinstance(real, RealImages):
        ref, ref_name = real.images, real.name
    else:
        ref, ref_name = to_uint8(real), None
    n2 = int(ref.shape[0])
    if n1 < 2 or n2 < 2:
        raise ValueError(f"need at least 2 generated and 2 real images, got {n1} and {n2}")
    gpu = contextlib.nullcontext()
    if device is not None:
        device = torch.device(device)
        cuda = device.type == "cuda"
        if cuda and device.index is not None:
            gpu = torch.cuda.device(device)
    if cuda is None:
        cuda = torch.cuda.is_available()
    kwargs: dict = {}
    if extractor == "classifier":
        if classifier is None:
            raise ValueError("extractor 'classifier' needs a trained classifier")
        fe_name = register_classifier_extractor(classifier)
        kwargs["feature_extractor_weights_path"] = str(classifier.weights_path)
    elif extractor == "inception":
        fe_name = INCEPTION_NAME
        ref = _three_channels(ref)
        if inception_weights:
            kwargs["feature_extractor_weights_path"] = str(inception_weights)
    else:
        raise ValueError(f"unknown extractor {extractor!r}; one of {', '.join(EXTRACTORS)}")
    weights_tag = _weights_tag(inception_weights) if extractor == "inception" else ""
    if ref_name is not None:
        kwargs["input2_cache_name"] = f"{ref_name}-{fe_name}{weights_tag}"
    root = fidelity_cache_root(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    threads = single_thread() if extractor == "classifier" and not cuda else contextlib.nullcontext()
    kwargs.update(
        input2=ImageSet(ref), cuda=bool(cuda), feature_extractor=fe_name,
        kid_subset_size=min(1000, n1, n2), kid_subsets=kid_subsets, isc_splits=min(10, n1),
        batch_size=256, save_cpu_ram=True, prc_batch_size=1000,
        cache=True, cache_root=str(root), verbose=False, **flags)
    return _Call(kwargs, [threads, gpu], f"{fe_name}{weights_tag}"), ref


def compute(
    samples: torch.Tensor,
    real: RealImages | torch.Tensor,
    *,
    extractor: Extractor = "classifier",
    classifier: TrainedClassifier | None = None,
    fid: bool = True,
    isc: bool = True,
    kid: bool = True,
    prc: bool = True,
    cache_dir: str | os.PathLike | None = None,
    cuda: bool | None = None,
    inception_weights: str | os.PathLike | None = None,
    kid_subsets: int = 100,
    device: torch.device | str | None = None,
    floor: bool = True,
) -> dict[str, float]:
    """FID / IS / KID / precision-recall of ``samples`` against ``real``, keyed by harness names.

    ``samples`` and a tensor ``real`` are images in [-1, 1] (or uint8). A :class:`RealImages`
    ``real`` is cached by torch-fidelity under its name; a plain tensor is not cached.
    ``classifier`` is required with ``extractor="classifier"``. KID averages ``kid_subsets``
    subsets of ``min(1000, n1, n2)`` samples; its cost (~80 ms a subset on a CPU) dominates
    the whole call with the classifier extractor. ``device`` (when given, it overrides
    ``cuda``) is where the extractor runs: the trial's device inside a metric. With ``fid``
    and ``floor`` on and a ``real`` that has a floor set, the result also holds
    ``fid_floor`` (:func:`fid_floor` at the samples' count).
    """
    import torch_fidelity

    gen = to_uint8(samples)
    flags = {"fid": fid, "isc": isc, "kid": kid, "prc": prc}
    call, _ = _prepare(int(gen.shape[0]), real, extractor, classifier, flags, cache_dir, cuda,
                       inception_weights, kid_subsets, device)
    if extractor == "inception":
        gen = _three_channels(gen)
    with contextlib.ExitStack() as stack:
        for ctx in call.contexts:
            stack.enter_context(ctx)
        raw = torch_fidelity.calculate_metrics(input1=ImageSet(gen), **call.kwargs)
        out = {_RESULT_NAMES[k]: float(v) for k, v in raw.items() if k in _RESULT_NAMES}
        if fid and floor and isinstance(real, RealImages) and real.floor is not None:
            out[names.FID_FLOOR] = _floor_value(int(gen.shape[0]), real, call, extractor)
    return out


def compute_many(
    samples: Sequence[torch.Tensor],
    real: RealImages | torch.Tensor,
    *,
    extractor: Extractor = "classifier",
    classifier: TrainedClassifier | None = None,
    fid: bool = True,
    isc: bool = True,
    kid: bool = True,
    prc: bool = True,
    cache_dir: str | os.PathLike | None = None,
    cuda: bool | None = None,
    inception_weights: str | os.PathLike | None = None,
    kid_subsets: int = 100,
    device: torch.device | str | None = None,
    floor: bool = True,
) -> list[dict[str, float]]:
    """:func:`compute` of every image set in ``samples`` (the copies of a vectorized
    trial, all of one size), with one feature-extractor pass over all of them.

    The steps are ``torch_fidelity.calculate_metrics``'s for one extractor, with input 1's
    features extracted once for the concatenation of the sets and split per set: the real
    features and FID statistics come from (or go into) torch-fidelity's cache as in
    :func:`compute`; IS, FID, KID and precision/recall are torch-fidelity's own functions
    of each set's features with the same arguments (KID subsets and IS splits seeded alike),
    so set ``k``'s values equal ``compute(samples[k], ...)`` up to the rounding of a feature
    computed in another batch (``fid_floor`` included: one value for the sets' common size).
    """
    from torch_fidelity.metric_fid import (
        fid_featuresdict_to_statistics,
        fid_featuresdict_to_statistics_cached,
        fid_statistics_to_metric,
    )
    from torch_fidelity.metric_isc import isc_featuresdict_to_metric
    from torch_fidelity.metric_kid import kid_featuresdict_to_metric
    from torch_fidelity.metric_prc import prc_featuresdict_to_metric
    from torch_fidelity.utils import (
        create_feature_extractor,
        extract_featuresdict_from_input_id_cached,
        get_cacheable_input_name,
        get_featuresdict_from_dataset,
        resolve_feature_layer_for_metric,
    )

    gens = [to_uint8(s) for s in samples]
    sizes = {int(g.shape[0]) for g in gens}
    if len(sizes) != 1:
        raise ValueError(f"compute_many needs image sets of one size, got sizes {sorted(sizes)}")
    flags = {"fid": fid, "isc": isc, "kid": kid, "prc": prc}
    call, _ = _prepare(sizes.pop(), real, extractor, classifier, flags, cache_dir, cuda,
                       inception_weights, kid_subsets, device)
    if extractor == "inception":
        gens = [_three_channels(g) for g in gens]
    kw = call.kwargs
    layers = {m: resolve_feature_layer_for_metric(m, **kw) for m, on in flags.items() if on}
    out: list[dict] = [{} for _ in gens]
    with contextlib.ExitStack() as stack:
        for ctx in call.contexts:
            stack.enter_context(ctx)
        fe = create_feature_extractor(kw["feature_extractor"], sorted(set(layers.values())), **kw)
        every = get_featuresdict_from_dataset(ImageSet(torch.cat(gens)), fe, kw["batch_size"],
                                              kw["cuda"], kw["save_cpu_ram"], False)
        n = int(gens[0].shape[0])
        per_set = [{name: f[k * n:(k + 1) * n] for name, f in every.items()}
                   for k in range(len(gens))]
        real_feats = None
        if fid or kid or prc:
            real_feats = extract_featuresdict_from_input_id_cached(2, fe, **kw)
        if fid:
            stats_2 = fid_featuresdict_to_statistics_cached(
                real_feats, get_cacheable_input_name(2, **kw), fe, layers["fid"], **kw)
        for feats, res in zip(per_set, out):
            if isc:
                res.update(isc_featuresdict_to_metric(feats, layers["isc"], **kw))
            if fid:
                stats_1 = fid_featuresdict_to_statistics(feats, layers["fid"])
                res.update(fid_statistics_to_metric(stats_1, stats_2, False))
            if kid:
                res.update(kid_featuresdict_to_metric(feats, real_feats, layers["kid"], **kw))
            if prc:
                res.update(prc_featuresdict_to_metric(feats, real_feats, layers["prc"], **kw))
        results = [{_RESULT_NAMES[k]: float(v) for k, v in raw.items() if k in _RESULT_NAMES}
                   for raw in out]
        if fid and floor and isinstance(real, RealImages) and real.floor is not None:
            value = _floor_value(n, real, call, extractor)
            for res in results:
                res[names.FID_FLOOR] = value
    return results


# --- the real-data floor ----------------------------------------------------------------------
def fid_floor(
    n: int,
    real: RealImages,
    *,
    extractor: Extractor = "classifier",
    classifier: TrainedClassifier | None = None,
    cache_dir: str | os.PathLike | None = None,
    cuda: bool | None = None,
    inception_weights: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
) -> float | None:
    """The real-data floor of FID at ``n`` samples: the FID that ``n`` real images from
    ``real.floor`` (never seen by the classifier, not in the reference) score against
    ``real`` -- what a generator indistinguishable from the data scores at that count.
    None when ``real`` has no floor set.

    ``n`` below the floor set's size ``m``: the mean over :data:`FLOOR_SUBSETS` random
    subsets of ``n``; equal to it: the whole set; above it: the whole set's FID moved along
    FID's ``1/n`` slope, ``FID_m + b (1/n - 1/m)``, with ``b`` fitted through the whole
    set's point (least squares) to :data:`FLOOR_FIT_SUBSETS` random subsets each of ``m/4``
    and ``m/2`` images -- FID's bias is linear in ``1/n`` (Chong & Forsyth, "Effectively
    unbiased FID and Inception Score and where to find them", CVPR 2020). The floor is an
    estimate from ``m`` real images and as noisy as a FID of ``m`` samples (measured in
    docs/fidelity.md). Computed once per reference, extractor, floor set and ``n``, and
    cached on disk beside the reference's statistics (with how it was obtained).
    """
    if real.floor is None:
        return None
    flags = {"fid": True, "isc": False, "kid": False, "prc": False}
    call, _ = _prepare(max(2, int(n)), real, extractor, classifier, flags, cache_dir, cuda,
                       inception_weights, 1, device)
    with contextlib.ExitStack() as stack:
        for ctx in call.contexts:
            stack.enter_context(ctx)
        return _floor_value(int(n), real, call, extractor)


def floor_cache_path(real: RealImages, call: _Call) -> Path:
    """The JSON file holding the floors of ``real`` (every sample count measured)."""
    return (Path(call.kwargs["cache_root"])
            / f"floor-{call.kwargs['input2_cache_name']}-{real.floor.name}.json")


def _read_floors(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _floor_value(n: int, real: RealImages, call: _Call, extractor: str) -> float:
    """:func:`fid_floor` inside a prepared call: from the cache file, else measured and
    added to it (under a file lock, written atomically)."""
    path = floor_cache_path(real, call)
    entry = _read_floors(path).get(str(n))
    if entry is None:
        with _file_lock(path.with_name(path.name + ".lock")):
            entries = _read_floors(path)
            entry = entries.get(str(n))
            if entry is None:
                entry = _measure_floor(n, real, call, extractor)
                entries[str(n)] = entry
                blob = json.dumps(entries, indent=2, sort_keys=True).encode()
                _atomic_write(path, lambda f: f.write(blob))
    return float(entry["fid_floor"])


def _measure_floor(n: int, real: RealImages, call: _Call, extractor: str) -> dict:
    import numpy as np
    from torch_fidelity.metric_fid import (
        fid_features_to_statistics,
        fid_featuresdict_to_statistics_cached,
        fid_statistics_to_metric,
    )
    from torch_fidelity.utils import (
        create_feature_extractor,
        extract_featuresdict_from_input_id_cached,
        get_cacheable_input_name,
        resolve_feature_layer_for_metric,
    )

    kw = call.kwargs
    layer = resolve_feature_layer_for_metric("fid", **kw)
    fe = create_feature_extractor(kw["feature_extractor"], [layer], **kw)
    ref_stats = fid_featuresdict_to_statistics_cached(
        extract_featuresdict_from_input_id_cached(2, fe, **kw), get_cacheable_input_name(2, **kw),
        fe, layer, **kw)
    images = real.floor.images
    if extractor == "inception":
        images = _three_channels(images)
    floor_kw = {**kw, "input1": ImageSet(images),
                "input1_cache_name": f"{real.floor.name}-{call.extractor_tag}"}
    feats = extract_featuresdict_from_input_id_cached(1, fe, **floor_kw)[layer]
    m = int(feats.shape[0])
    g = torch.Generator().manual_seed(0)

    def fids(k: int, count: int = FLOOR_SUBSETS) -> list[float]:
        """FID of ``count`` random subsets of k floor images (the whole set once)."""
        if k >= m:
            subsets = [torch.arange(m)]
        else:
            subsets = [torch.randperm(m, generator=g)[:k] for _ in range(count)]
        return [float(fid_statistics_to_metric(fid_features_to_statistics(feats[idx]), ref_stats,
                                               False)["frechet_inception_distance"])
                for idx in subsets]

    if n <= m:
        values = fids(n)
        value = sum(values) / len(values)
        method = ("the whole floor set" if n == m
                  else f"mean of {len(values)} random subsets of the floor set")
    elif m // 4 < 2:
        value, method = fids(m)[0], "the whole floor set (too small to extrapolate)"
    else:
        whole = fids(m)[0]
        dx, dy = [], []
        for k in (m // 4, m // 2):
            for v in fids(k, FLOOR_FIT_SUBSETS):
                dx.append(1.0 / k - 1.0 / m), dy.append(v - whole)
        slope = float(np.dot(dx, dy) / np.dot(dx, dx))
        value = whole + slope * (1.0 / n - 1.0 / m)
        method = (f"the whole floor set's FID ({whole:.4f}) moved to n={n} along FID's 1/n "
                  f"slope ({slope:.1f}), fitted to {FLOOR_FIT_SUBSETS} random subsets each of "
                  f"{m // 4} and {m // 2} floor images")
    return {"fid_floor": value, "n": n, "floor_images": m, "method": method,
            "floor_set": real.floor.name}
