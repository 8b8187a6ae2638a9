"""IDX files (the MNIST format): reading, verifying and finding them.

An IDX file is a big-endian header -- a magic number ``0x000008NN`` (unsigned bytes,
``NN`` dimensions) and one 32-bit size per dimension -- followed by the raw bytes.
MNIST images are ``0x00000803`` (``N x 28 x 28``), labels ``0x00000801`` (``N``).

Every file is checked in full before it is used, in this order, and the first failure
raises :class:`DataFileError` naming the path, what is wrong and what was expected:

1. gzip stream (``.gz`` files): not gzip, or cut short;
2. magic number and number of dimensions;
3. length: header + product of the dimensions, so a truncated file is refused;
4. checksum: a ``.gz`` file with a standard name must have the published MD5 of that
   file (:data:`PUBLISHED_MD5`; a recompressed copy is accepted when its decompressed
   content has a known MD5). An uncompressed file is checked against the MD5 of the
   decompressed published file where that is known (:data:`CONTENT_MD5`: the two t10k
   files, computed from the published ``.gz``); for the uncompressed *train* files only
   the header and size are checked.

Where files are looked up (:func:`resolve_data_dir`): the dataset's ``root`` parameter,
else ``$HARNESS_DATA_DIR``, else the user cache folder :func:`default_data_dir`. Inside
that folder :func:`find_mnist` accepts the file names with or without ``.gz``, directly
in it, in ``mnist/``, or in torchvision's ``MNIST/raw/`` layout.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.errors import ConfigError

MAGIC_IMAGES = 0x00000803
MAGIC_LABELS = 0x00000801
_MAGIC = {"images": MAGIC_IMAGES, "labels": MAGIC_LABELS}
_KIND_TEXT = {"images": "3-D unsigned-byte images, *-idx3-ubyte",
              "labels": "1-D unsigned-byte labels, *-idx1-ubyte"}

#: published MD5 of the four standard MNIST files (as distributed, gzipped)
PUBLISHED_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: MD5 of the decompressed content of the published files, where known (t10k only)
CONTENT_MD5 = {
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

SPLITS = ("train", "t10k")
#: sub-folders of a data directory searched for MNIST files, in order
SUBDIRS = (".", "mnist", "MNIST/raw")
ENV_DATA_DIR = "HARNESS_DATA_DIR"


class DataFileError(ConfigError, ValueError):
    """A data file is missing, malformed, truncated or fails its checksum.

    A :class:`ValueError`, so a dataset constructor raising it is reported by the
    registry with the study key path; a :class:`~harness.errors.HarnessError`, so the
    CLI exits 2 with the message wherever it surfaces.
    """


# --------------------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdxFile:
    """One verified IDX file: its dimensions, the MD5 of its content and its payload."""

    path: Path
    kind: str  # "images" or "labels"
    dims: tuple[int, ...]
    content_md5: str  # MD5 of the decompressed file (header + payload)
    payload: bytes

    def tensor(self) -> torch.Tensor:
        """The payload as a uint8 tensor of shape :attr:`dims` (a copy)."""
        return torch.frombuffer(bytearray(self.payload), dtype=torch.uint8).reshape(self.dims)


def _base_name(path: Path) -> str:
    return path.name.removesuffix(".gz")


def read_idx(path: str | Path, kind: str) -> IdxFile:
    """Read and verify the IDX file at ``path``; ``kind`` is ``"images"`` or ``"labels"``."""
    if kind not in _MAGIC:
        raise ValueError(f"kind must be 'images' or 'labels', got {kind!r}")
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    gz = path.name.endswith(".gz")
    data = _gunzip(raw, path) if gz else raw

    magic_expected = _MAGIC[kind]
    ndim = magic_expected & 0xFF
    if len(data) < 4:
        raise DataFileError(f"{path}: truncated: expected at least {4 + 4 * ndim} bytes of "
                            f"IDX header, got {len(data)}")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != magic_expected:
        raise DataFileError(
            f"{path}: wrong magic number 0x{magic:08X}, expected 0x{magic_expected:08X} "
            f"({_KIND_TEXT[kind]}); not an IDX {kind} file")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{path}: truncated: expected at least {header} bytes of IDX "
                            f"header, got {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(dims)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "too long"
        shape = "x".join(map(str, dims))
        raise DataFileError(
            f"{path}: {what}: expected {expected} bytes ({header}-byte header + {shape} "
            f"payload){' after decompression' if gz else ''}, got {len(data)}")

    content_md5 = hashlib.md5(data).hexdigest()
    _check_md5(path, raw if gz else None, content_md5)
    return IdxFile(path, kind, tuple(dims), content_md5, data[header:])


def _gunzip(raw: bytes, path: Path) -> bytes:
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataFileError(f"{path}: truncated: the gzip stream ends early "
                            f"({len(raw)} bytes); expected a complete gzip file") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataFileError(f"{path}: not a valid gzip file ({exc}); expected a gzipped "
                            "IDX file, or drop the .gz suffix if it is uncompressed") from None


def _check_md5(path: Path, gz_bytes: bytes | None, content_md5: str) -> None:
    base = _base_name(path)
    known_content = CONTENT_MD5.get(base)
    if gz_bytes is not None:
        published = PUBLISHED_MD5.get(path.name)
        if published is None:
            return
        got = hashlib.md5(gz_bytes).hexdigest()
        if got == published or content_md5 == known_content:
            return
        raise DataFileError(
            f"{path}: checksum mismatch: MD5 {got}, expected {published} (published MD5 of "
            f"{path.name}); the file is corrupt or not the original: replace it")
    if known_content is not None and content_md5 != known_content:
        raise DataFileError(
            f"{path}: checksum mismatch: MD5 {content_md5}, expected {known_content} (MD5 of "
            f"the decompressed published {base}.gz); the file is corrupt or not the "
            "original: replace it")


# --------------------------------------------------------------------------------------
# MNIST: finding and loading the files of a split
# --------------------------------------------------------------------------------------


def mnist_names(split: str) -> tuple[str, str]:
    """Base names (without ``.gz``) of the images and labels files of ``split``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"


def expected_names() -> str:
    """The accepted MNIST file names, for error messages."""
    return "; ".join(" + ".join(f"{n}[.gz]" for n in mnist_names(s)) for s in SPLITS)


@dataclass(frozen=True)
class MnistSplit:
    """The two files of one MNIST split."""

    split: str
    images: Path
    labels: Path


def _find_one(directory: Path, base: str) -> Path | None:
    for sub in SUBDIRS:
        for name in (base + ".gz", base):  # the .gz has a published checksum: prefer it
            cand = directory / sub / name
            if cand.is_file():
                return cand
    return None


def find_mnist(directory: str | Path) -> dict[str, MnistSplit]:
    """The MNIST splits (``"train"``, ``"t10k"``) whose two files are both in ``directory``.

    Looks in ``directory``, ``directory/mnist`` and ``directory/MNIST/raw`` (torchvision),
    for each file name with ``.gz`` first, then without. Nothing is read or verified here.
    """
    directory = Path(directory)
    found: dict[str, MnistSplit] = {}
    for split in SPLITS:
        images, labels = (_find_one(directory, n) for n in mnist_names(split))
        if images is not None and labels is not None:
            found[split] = MnistSplit(split, images, labels)
    return found


def load_mnist_split(split: MnistSplit) -> tuple[IdxFile, IdxFile]:
    """Read and verify both files of a split; also checks 28x28 images, matching counts
    and labels 0..9."""
    images = read_idx(split.images, "images")
    labels = read_idx(split.labels, "labels")
    if images.dims[1:] != (28, 28):
        raise DataFileError(f"{split.images}: images are {images.dims[1]}x{images.dims[2]}, "
                            "expected 28x28 MNIST digits")
    if images.dims[0] != labels.dims[0]:
        raise DataFileError(f"{split.labels}: {labels.dims[0]} labels for {images.dims[0]} "
                            f"images in {split.images}; expected one label per image")
    if labels.payload and max(labels.payload) > 9:
        raise DataFileError(f"{split.labels}: label {max(labels.payload)} found, expected "
                            "digits 0..9")
    return images, labels


# --------------------------------------------------------------------------------------
# Where data lives
# --------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """The per-user cache folder for data: ``$XDG_CACHE_HOME/gan-harness/data``, else
    ``~/.cache/gan-harness/data`` (``%LOCALAPPDATA%`` on Windows)."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base and os.name == "nt":
        base = os.environ.get("LOCALAPPDATA")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "gan-harness" / "data"


def resolve_data_dir(root: str | Path | None = None) -> tuple[Path, str]:
    """The data folder and where it came from: ``root`` if given, else
    ``$HARNESS_DATA_DIR``, else :func:`default_data_dir`. ``~`` is expanded."""
    if root is not None and str(root) != "":
        return Path(root).expanduser(), "the dataset's root parameter"
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser(), f"${ENV_DATA_DIR}"
    return default_data_dir(), f"the default cache folder (no root parameter, no ${ENV_DATA_DIR})"
