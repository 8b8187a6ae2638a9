"""Which torch device a trial trains on: :func:`resolve_device`."""

from __future__ import annotations

import torch

from harness.errors import DeviceError


def _no_cuda_reason() -> str:
    built = torch.version.cuda
    return (f"torch {torch.__version__} was built without CUDA" if built is None else
            f"torch {torch.__version__} (CUDA {built}) sees no GPU (no driver, or "
            "CUDA_VISIBLE_DEVICES hides them)")


def resolve_device(name: str, granted_gpus: float | None = None) -> torch.device:
    """The torch device of a trial whose ``train.device`` is ``name``.

    ``granted_gpus`` is the GPU share the scheduler granted the trial (Ray's assigned
    ``GPU`` resource, e.g. 0.25), or None when no scheduler placed it (``harness run``,
    tests, benchmarks). Ray makes a granted GPU the only one visible, so ``cuda`` is it.

    * ``cpu``: the CPU, always.
    * ``auto``: ``cuda`` when a GPU was granted; the CPU when the scheduler granted none
      (even if the node has GPUs: other trials hold them); outside a scheduler ``cuda`` if
      torch can use one, else the CPU.
    * ``cuda``: ``cuda``; :class:`~harness.errors.DeviceError` when the scheduler granted
      no GPU or torch cannot use one -- before anything is built, not deep inside torch.
    """
    cpu = torch.device("cpu")
    if name == "cpu":
        return cpu
    if name not in ("auto", "cuda"):
        raise DeviceError(f"train.device: unknown device {name!r}; allowed: cpu, cuda, auto")
    if granted_gpus is not None and granted_gpus <= 0:
        if name == "auto":
            return cpu
        raise DeviceError("train.device is 'cuda' but the trial was granted no GPU; set "
                          "resources.gpu > 0 in the study file (e.g. 0.25: four trials per "
                          "GPU), or train.device: auto to train on the CPU")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "auto" and granted_gpus is None:
        return cpu
    asked = ("train.device is 'cuda'" if granted_gpus is None else
             f"the trial was granted {granted_gpus:g} GPU (train.device {name!r})")
    raise DeviceError(f"{asked} but torch cannot use CUDA in this process: {_no_cuda_reason()}; "
                      "use train.device: cpu (and resources.gpu: 0), or run where a GPU is")
