"""The harness's digit classifier: trained once on the real data, cached on disk, shared by metrics.

Image metrics on labelled digits (modes covered, conditional and code accuracy, and
FID / IS / KID / precision-recall through :mod:`harness.fidelity`) need a network that
knows the data. Inception-v3 needs weights from the network and knows nothing of digits,
so the harness trains its own small CNN on the real training images.

Choices, all fixed by :data:`DEFAULT_RECIPE` and :data:`CLASSIFIER_VERSION`:

* **Architecture** (:class:`DigitNet`): two ``kernel`` x ``kernel`` conv layers with
  stride 2 (``width`` and ``2 * width`` channels, ReLU; strided rather than max-pooled:
  about 10x faster to train on a CPU for the same accuracy), a hidden fully connected layer
  of ``hidden`` ReLU units -- the *penultimate features* FID / KID / precision-recall use,
  the analogue of Inception's pool features -- and a linear layer giving the class logits
  (what the Inception Score uses). Like any classifier's features they place
  out-of-distribution images (noise, blank frames) among faint real digits, so
  *precision* is not informative against such samples (measured: 0.75-1.0 for uniform
  noise against real MNIST); FID, KID and recall are.
* **Training images**: those of :meth:`~harness.data.LabelledImages.classifier_source`,
  which for the ``mnist`` datasets exclude the FID reference (:mod:`harness.builtin.mnist`; with
  only t10k, the classifier trains on 6,000 of its 10,000 images), so the reference
  statistics never come from images the extractor learned (docs/fidelity.md).
* **Training**: Adam with the learning rate decayed linearly to zero, ``epochs`` passes
  over the training images in shuffled minibatches, each image moved by a random
  whole-pixel shift of up to ``shift`` pixels on both axes (:func:`random_shift`; the
  augmentation buys back what the smaller training part costs), from a fixed ``seed``
  (initialisation, order and shifts), on one CPU thread (:func:`single_thread`). Measured
  2026-12-06 on a 2-core Intel Xeon (AVX-512), torch 2.14.1, one thread beside other load
  (``python benchmarks/fid_reference.py [--accuracy-only] [--recipe JSON]``: the ``mnist``
  dataset with split seeds 0-5, 6,000 training and 2,000 held-out images each): 3.6-3.9 s,
  held-out accuracy 97.85-98.5% (training accuracy 99.3-99.6%). On the same 6,000-image
  parts the version-1 recipe (4 epochs, no shifts) reached 97.05-97.7% in 2.6 s (it had
  reached 97.6-98.0% on the 8,000 images it used to train on, with 99.65% training
  accuracy), 6 epochs without shifts 97.35-97.8%, 6 epochs with ``shift: 2`` 97.45-98.55%,
  and 8 epochs with ``shift: 1`` 97.95-98.6% in 5.0-5.3 s. Float numerics may still differ
  in the last bits across
  machines, which is why fidelity caches key on the hash of the weights file, not only on
  the recipe.
* **Inference** (features, logits, predictions inside metrics) runs on the trial's device
  (:attr:`harness.metrics.EvalContext.device`): :meth:`TrainedClassifier.net_on` keeps one
  copy of the network per device; results come back on the CPU.
* **Scoring**: accuracy on the source's held-out images, recorded in the cache entry and,
  by every metric that uses the classifier, on the run as the ``classifier.accuracy`` tag
  (:meth:`ClassifierMetric.provenance`). Below ``min_accuracy`` the classifier is refused
  (:class:`ClassifierAccuracyError`): counting modes with a classifier that misreads digits
  counts its mistakes.
* **Cache**: ``<cache dir>/classifier/<key>.pt`` (architecture + state dict) and
  ``<key>.json`` (accuracy, key, recipe, weights hash, the numbers of training and
  held-out images), where ``key`` is the sha256 of the
  source's fingerprint, the recipe, the torch version and :data:`CLASSIFIER_VERSION`.
  Both files are written to a temporary name and moved into place with ``os.replace``
  (the JSON last: it marks the entry complete), so a concurrent reader sees a whole entry
  or none; an advisory file lock keeps concurrent processes from training twice. The
  cache directory is the ``cache_dir`` argument, else ``$HARNESS_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/gan-harness``, else ``~/.cache/gan-harness``.

**Stacked datasets** (``channels_stacked``, e.g. Stacked MNIST): the single-digit
classifier is applied to every channel. An image's class is
``sum(digit_c * base ** (C - 1 - c))`` (``d0 * 100 + d1 * 10 + d2`` for three MNIST
channels), its features are the per-channel features concatenated, and its "logits" are
the log-probabilities of the ``base ** C`` combined classes (the per-channel
log-softmaxes summed over every combination), so the Inception Score is over the
combined classes.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness import names
from harness.data import LabelledImages
from harness.errors import HarnessError
from harness.metrics import Metric

#: bump when the architecture or the training loop changes: every cached classifier is retrained
CLASSIFIER_VERSION = "2"

#: the training recipe; part of the cache key
DEFAULT_RECIPE: dict[str, Any] = {
    "epochs": 6,
    "shift": 1,
    "lr": 3e-3,
    "batch_size": 64,
    "seed": 0,
    "width": 16,
    "kernel": 5,
    "hidden": 128,
}

#: the held-out accuracy a classifier must reach unless a metric's ``min_accuracy`` says otherwise
DEFAULT_MIN_ACCURACY = 0.95

#: batch size of inference (features, logits, predictions)
_INFER_BATCH = 1024


class ClassifierAccuracyError(HarnessError):
    """The harness's classifier scored below the accuracy floor on held-out real images."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The harness's cache directory: ``cache_dir``, ``$HARNESS_CACHE_DIR``,
    ``$XDG_CACHE_HOME/gan-harness`` or ``~/.cache/gan-harness``, first one set."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "gan-harness"


# --- the network ---------------------------------------------------------------------------
class DigitNet(nn.Module):
    """conv(k, stride 2) - ReLU - conv(k, stride 2) - ReLU - FC(hidden) - ReLU - FC(classes)."""

    def __init__(self, in_channels: int, height: int, width_px: int, n_classes: int,
                 width: int = 16, kernel: int = 5, hidden: int = 128):
        super().__init__()
        self.arch = {"in_channels": in_channels, "height": height, "width_px": width_px,
                     "n_classes": n_classes, "width": width, "kernel": kernel, "hidden": hidden}
        pad = kernel // 2
        self.conv1 = nn.Conv2d(in_channels, width, kernel, stride=2, padding=pad)
        self.conv2 = nn.Conv2d(width, 2 * width, kernel, stride=2, padding=pad)
        with torch.no_grad():
            flat = self.conv2(self.conv1(torch.zeros(1, in_channels, height, width_px))).numel()
        self.fc = nn.Linear(flat, hidden)
        self.out = nn.Linear(hidden, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (the hidden layer after its ReLU), ``(N, hidden)``;
        ``x`` is float in [-1, 1]."""
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return F.relu(self.fc(x.flatten(1)))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from :meth:`features`."""
        return self.out(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def save_net(net: DigitNet, path: Path) -> None:
    """Write architecture + weights atomically."""
    _atomic_write(path, lambda f: torch.save({"arch": net.arch, "state_dict": net.state_dict()}, f))


def load_net(path: str | os.PathLike) -> DigitNet:
    """Rebuild a :class:`DigitNet` from a file written by :func:`save_net` (CPU, eval mode)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    net = DigitNet(**blob["arch"])
    net.load_state_dict(blob["state_dict"])
    return net.eval().requires_grad_(False)


def stacked_outputs(net: DigitNet, x: torch.Tensor, stack: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, logits) of float images ``x`` in [-1, 1].

    With ``stack == 1`` these are the network's own. With ``stack = C > 1`` every channel
    is classified alone: features are concatenated, and the logits are the log-probabilities
    of the ``base ** C`` combined classes, class ``sum(d_c * base ** (C - 1 - c))``.
    """
    if stack == 1:
        feats = net.features(x)
        return feats, net.head(feats)
    n, c = x.shape[:2]
    if c != stack:
        raise ValueError(f"expected {stack} stacked channels, got images of shape {tuple(x.shape)}")
    flat = x.reshape(n * c, 1, *x.shape[2:])
    feats = net.features(flat)
    logp = F.log_softmax(net.head(feats), dim=1).reshape(n, c, -1)  # (n, C, base)
    base = logp.shape[2]
    combined = logp[:, 0]
    for ch in range(1, c):  # outer sum: index d0 * base + d1 after two channels, ...
        combined = (combined[:, :, None] + logp[:, ch, None, :]).reshape(n, -1)
    assert combined.shape[1] == base ** c
    return feats.reshape(n, -1), combined


# --- the trained classifier ----------------------------------------------------------------
@dataclass
class TrainedClassifier:
    """A trained digit classifier and where it lives, applied as ``dataset`` needs it.

    ``stack`` is the number of stacked digit channels (1 for plain digits) and ``base``
    the number of digit classes, so predictions range over ``base ** stack`` classes.
    """

    net: DigitNet
    accuracy: float
    key: str
    weights_path: Path
    weights_sha256: str
    recipe: dict[str, Any]
    stack: int = 1
    base: int = 10
    meta: dict[str, Any] = field(default_factory=dict)
    #: copies of :attr:`net` on other devices, made once per device (see :meth:`net_on`)
    _copies: dict[str, DigitNet] = field(default_factory=dict, repr=False, compare=False)

    def net_on(self, device: torch.device | str | None = None) -> DigitNet:
        """The network on ``device`` (None: the CPU): :attr:`net` itself on the CPU, else a
        copy moved there once and kept, so trials sharing this object never move it."""
        device = torch.device(device or "cpu")
        if device.type == "cpu":
            return self.net
        key = str(device)
        with _copy_lock:
            if key not in self._copies:
                self._copies[key] = copy.deepcopy(self.net).to(device)
            return self._copies[key]

    @property
    def hash(self) -> str:
        """Short hash of the weights file: changes whenever the weights do."""
        return self.weights_sha256[:16]

    @property
    def n_classes(self) -> int:
        return self.base ** self.stack

    def _batched(self, images: torch.Tensor, device: torch.device | str | None = None
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(features, logits) per inference batch, computed on ``device``, returned on the CPU."""
        images = _as_float_images(images)
        net = self.net_on(device)
        dev = next(net.parameters()).device
        with torch.no_grad():
            for chunk in images.split(_INFER_BATCH):
                feats, logits = stacked_outputs(net, chunk.to(dev), self.stack)
                yield feats.cpu(), logits.cpu()

    def features(self, images: torch.Tensor, device: torch.device | str | None = None
                 ) -> torch.Tensor:
        """Penultimate features (per-channel, concatenated when stacked), ``(N, D)``, on
        the CPU; the network runs on ``device`` (default: the CPU)."""
        return torch.cat([f for f, _ in self._batched(images, device)])

    def logits(self, images: torch.Tensor, device: torch.device | str | None = None
               ) -> torch.Tensor:
        """Class logits, ``(N, n_classes)`` (combined log-probabilities when stacked), on
        the CPU; the network runs on ``device`` (default: the CPU)."""
        return torch.cat([lg for _, lg in self._batched(images, device)])

    def classify(self, images: torch.Tensor, device: torch.device | str | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted class, its probability) of every image, on the CPU; NaN/inf images
        get class -1 and probability 0. The network runs on ``device`` (default: the CPU)."""
        images = _as_float_images(images)
        finite = torch.isfinite(images.flatten(1)).all(dim=1)
        cls = torch.full((images.shape[0],), -1, dtype=torch.long)
        conf = torch.zeros(images.shape[0], dtype=torch.float64)
        if finite.any():
            logp = torch.log_softmax(self.logits(images[finite], device).double(), dim=1)
            best, idx = logp.max(dim=1)
            cls[finite], conf[finite] = idx, best.exp()
        return cls, conf

    def predict(self, images: torch.Tensor, device: torch.device | str | None = None
                ) -> torch.Tensor:
        """Predicted class of every image, ``(N,)`` int64 (-1 for non-finite images)."""
        return self.classify(images, device)[0]


def _as_float_images(images: torch.Tensor) -> torch.Tensor:
    """Float CPU images in [-1, 1]; uint8 input is rescaled from [0, 255]."""
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 127.5 - 1.0
    return images.to(torch.float32)


def classifier_key(source: LabelledImages, recipe: dict[str, Any]) -> str:
    """sha256 of what determines the classifier: data, recipe, torch, harness version."""
    shape = list(source.shape)
    blob = json.dumps({
        "fingerprint": source.fingerprint(),
        "recipe": recipe,
        "shape": shape,
        "n_classes": source.n_classes,
        "torch": torch.__version__,
        "version": CLASSIFIER_VERSION,
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _stacking(dataset: LabelledImages) -> tuple[LabelledImages, int]:
    source = dataset.classifier_source()
    if not dataset.channels_stacked:
        return source, 1
    stack = int(dataset.shape[0])
    src_ch = int(source.shape[0])
    if src_ch != 1:
        raise ValueError(f"a stacked dataset needs a single-channel classifier source, got {src_ch} "
                         "channels")
    return source, stack


_memo: dict[tuple[str, str, int], TrainedClassifier] = {}
_memo_lock = threading.Lock()
_copy_lock = threading.Lock()


def load_or_train(dataset: LabelledImages, cache_dir: str | os.PathLike | None = None,
                  min_accuracy: float = DEFAULT_MIN_ACCURACY,
                  recipe: dict[str, Any] | None = None,
                  floor_param: str = "min_accuracy") -> TrainedClassifier:
    """The classifier for ``dataset``: from the cache, else trained and cached.

    Raises :class:`ClassifierAccuracyError` when its held-out accuracy is below
    ``min_accuracy``; ``floor_param`` names the parameter that sets the floor in the message.
    """
    recipe = {**DEFAULT_RECIPE, **(recipe or {})}
    source, stack = _stacking(dataset)
    if source.n_classes is None:
        raise ValueError(f"{type(source).__name__} has no n_classes; the classifier needs labels")
    key = classifier_key(source, recipe)
    folder = cache_root(cache_dir) / "classifier"
    memo_key = (str(folder.resolve()), key, stack)
    with _memo_lock:
        clf = _memo.get(memo_key)
        if clf is None or not clf.weights_path.exists():
            clf = _load_or_train(source, folder, key, recipe, stack)
            _memo[memo_key] = clf
    if clf.accuracy < min_accuracy:
        raise ClassifierAccuracyError(
            f"the harness's digit classifier reached held-out accuracy {clf.accuracy:.4f}, below "
            f"the floor {min_accuracy:.4f} set by the metric parameter {floor_param!r} "
            f"(classifier {clf.key[:16]} in {clf.weights_path.parent}); lower {floor_param!r} "
            "or give the dataset more training images"
        )
    return clf


def _load_or_train(source: LabelledImages, folder: Path, key: str, recipe: dict[str, Any],
                   stack: int) -> TrainedClassifier:
    weights, meta_path = folder / f"{key}.pt", folder / f"{key}.json"
    folder.mkdir(parents=True, exist_ok=True)
    meta = _read_entry(meta_path, weights)
    if meta is None:
        with _file_lock(folder / f"{key}.lock"):
            meta = _read_entry(meta_path, weights)  # another process may have trained it meanwhile
            if meta is None:
                net, accuracy = train(source, recipe)
                save_net(net, weights)
                meta = {"key": key, "accuracy": accuracy, "recipe": recipe,
                        "weights_sha256": _sha256_file(weights), "torch": torch.__version__,
                        "version": CLASSIFIER_VERSION, "fingerprint": source.fingerprint(),
                        "train": int(source.train_labels().shape[0]),
                        "heldout": int(source.heldout_labels().shape[0])}
                _atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=2).encode()))
    sha = _sha256_file(weights)
    return TrainedClassifier(net=load_net(weights), accuracy=float(meta["accuracy"]), key=key,
                             weights_path=weights, weights_sha256=sha, recipe=dict(meta["recipe"]),
                             stack=stack, base=int(source.n_classes), meta=meta)


def _read_entry(meta_path: Path, weights: Path) -> dict[str, Any] | None:
    if not (meta_path.exists() and weights.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("weights_sha256") != _sha256_file(weights):
        return None  # weights replaced behind the JSON's back: retrain
    return meta


# --- training -----------------------------------------------------------------------------
@contextlib.contextmanager
def single_thread():
    """Run torch on one intra-op thread, then restore the previous count.

    The network is so small that extra threads buy little, and on a busy machine (Ray
    trials side by side, other processes) oversubscribed threads make training ~10x
    slower (measured: 7 s with one thread, 65 s with two, on a loaded 2-core machine).
    One thread also makes the result independent of the machine's core count.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(source: LabelledImages, recipe: dict[str, Any]) -> tuple[DigitNet, float]:
    """Train a :class:`DigitNet` on ``source``'s training images; return it and its held-out accuracy."""
    x, y = source.train_data().detach().cpu().float(), source.train_labels().detach().cpu().long()
    _, c, h, w = x.shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(recipe["seed"]))
        net = DigitNet(c, h, w, int(source.n_classes), int(recipe["width"]),
                       int(recipe["kernel"]), int(recipe["hidden"]))
    order = torch.Generator().manual_seed(int(recipe["seed"]) + 1)
    augment = torch.Generator().manual_seed(int(recipe["seed"]) + 2)
    max_shift = int(recipe.get("shift", 0))
    opt = torch.optim.Adam(net.parameters(), lr=float(recipe["lr"]))
    bs = int(recipe["batch_size"])
    steps = int(recipe["epochs"]) * -(-x.shape[0] // bs)
    # linear decay to zero: the last steps settle instead of jittering at the full rate
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - i / steps)
    net.train()
    with single_thread():
        for _ in range(int(recipe["epochs"])):
            perm = torch.randperm(x.shape[0], generator=order)
            for i in range(0, x.shape[0], bs):
                idx = perm[i:i + bs]
                loss = F.cross_entropy(net(random_shift(x[idx], max_shift, augment)), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    net.eval().requires_grad_(False)
    return net, accuracy(net, source.heldout_data(), source.heldout_labels())


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` ``(N, C, H, W)`` moved by its own random whole-pixel offset in
    ``[-max_shift, max_shift]`` on both axes; the border pixels are repeated into the space
    it leaves (so inverted digits keep their white background). ``max_shift=0``: ``x``."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s), mode="replicate")
    dy = torch.randint(0, 2 * s + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * s + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (N, 1, W)
    batch = torch.arange(n)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def accuracy(net: DigitNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` whose predicted class is ``labels``."""
    if labels.numel() == 0:
        raise ValueError("no held-out images to score the classifier on")
    with torch.no_grad():
        pred = torch.cat([net(c) for c in _as_float_images(images).split(_INFER_BATCH)]).argmax(1)
    return float((pred == labels.cpu()).double().mean())


# --- files --------------------------------------------------------------------------------
def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, write) -> None:
    """Write through ``write(file)`` to a temporary file beside ``path``, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def _file_lock(path: Path):
    """An advisory exclusive lock (no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class ClassifierMetric(Metric):
    """Base of the metrics that read the harness's classifier.

    Its parameters (``cache_dir``, ``min_accuracy``) are every such metric's; it applies to
    labelled images (stacked ones need a single-channel source), trains or loads the
    classifier in :meth:`prepare` (once per study, on the driver), tags runs with the
    classifier's hash and accuracy, and loads it once per dataset object and process.
    """

    def __init__(self, cache_dir: Path | None = None,
                 min_accuracy: float = DEFAULT_MIN_ACCURACY):
        if not 0.0 <= min_accuracy <= 1.0:
            raise ValueError(f"min_accuracy must be in [0, 1], got {min_accuracy}")
        self.cache_dir = cache_dir
        self.min_accuracy = float(min_accuracy)

    def classifier(self, dataset: LabelledImages) -> TrainedClassifier:
        held = getattr(self, "_classifier_for", None)
        if held is not None and held[0] is dataset:
            return held[1]
        clf = load_or_train(dataset, self.cache_dir, self.min_accuracy)
        self._classifier_for = (dataset, clf)
        return clf

    def applies_to(self, dataset) -> bool:
        """Labelled images with classes; stacked ones need a single-channel source."""
        if not isinstance(dataset, LabelledImages) or dataset.n_classes is None:
            return False
        try:
            _stacking(dataset)
        except ValueError:
            return False
        return True

    def prepare(self, dataset) -> None:
        self.classifier(dataset)

    def provenance(self, dataset) -> dict[str, str]:
        clf = self.classifier(dataset)
        return {names.TAG_CLASSIFIER_HASH: clf.hash,
                names.TAG_CLASSIFIER_ACCURACY: f"{clf.accuracy:.4f}"}
