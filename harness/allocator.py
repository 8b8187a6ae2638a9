"""Keep freed memory in the process: glibc's ``malloc`` tuned for a training process.

PyTorch's CPU allocator is ``malloc``. glibc serves a block of 128 KiB or more (until its
adaptive threshold has grown) with a fresh ``mmap`` and gives freed memory at the top of
the heap back to the kernel, so a training step that allocates a few MB of activations
and gradients and frees them again gets new pages every step, each faulted in and zeroed
by the kernel on first touch. Measured with ``/usr/bin/time`` on the 2-core CPU: a
32-copy vectorized ring-MLP trial (``harness.vector.engine``, one thread) took about 3,900
page faults per step, 77 with the settings below, and its step ran 5-15 % faster in
back-to-back runs (the README's vectorize section has the benchmark). PyTorch's
performance guide recommends jemalloc or tcmalloc for the same reason; these three
``mallopt`` settings get the effect without preloading a library:

* ``M_MMAP_THRESHOLD`` 32 MiB: blocks up to 32 MiB come from the heap, not from ``mmap``;
* ``M_TRIM_THRESHOLD`` 1 GiB: free memory at the top of the heap stays in the process;
* ``M_TOP_PAD`` 64 MiB: the heap grows in steps of 64 MiB, not page by page.

The price is that the process keeps the memory of its peak step until it exits, which a
trial process, whose steps all allocate the same, uses again at once.

:func:`keep_freed_memory` applies them once per process; trial processes call it
(``harness.tune_glue``). It does nothing where the C library is not glibc, or when the
environment variable ``HARNESS_KEEP_FREED_MEMORY`` is ``0`` (to measure without it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: ``mallopt`` parameters (glibc's <malloc.h>)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3

#: what :func:`keep_freed_memory` sets, in bytes
SETTINGS = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 1 << 30, M_TOP_PAD: 64 << 20}

#: the environment variable that turns :func:`keep_freed_memory` off (value ``0``)
ENV = "HARNESS_KEEP_FREED_MEMORY"

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Applies :data:`SETTINGS` with glibc's ``mallopt`` (once per process); True when
    they are in effect, False where this is not glibc or ``HARNESS_KEEP_FREED_MEMORY=0``."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "1").strip() == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 -- glibc only (musl has no mallopt effect)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
    return _applied


__all__ = ["ENV", "SETTINGS", "keep_freed_memory"]
