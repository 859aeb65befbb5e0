"""glibc ``malloc`` settings for tensor workloads on CPU. No Lightning.

glibc returns freed memory above ``M_TRIM_THRESHOLD`` to the OS and serves large requests with fresh
``mmap`` pages, so a training loop that frees and re-allocates the same ~1 MB activation tensors
every step pays page faults on every step: on the development CPUs an elementwise op over 1 MB took
~400 us instead of ~35 us in such steps, and an MBPO ensemble epoch varied between 0.46 and 0.55 s.
:func:`keep_freed_memory` makes the process keep freed memory for reuse (PyTorch's CPU performance
guide recommends jemalloc or tcmalloc for the same reason; this needs no extra library). The cost is
a resident size that does not shrink after a peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems


def keep_freed_memory(trim_threshold: int = 1 << 30, top_pad: int = 256 << 20,
                      mmap_threshold: int = MMAP_THRESHOLD_MAX) -> bool:
    """Set glibc's trim threshold, top pad and mmap threshold for this process; ``False`` where there
    is no glibc (macOS, Windows, musl) or a value was refused."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_TRIM_THRESHOLD, trim_threshold), (M_TOP_PAD, top_pad), (M_MMAP_THRESHOLD, mmap_threshold))
    return all(mallopt(param, value) == 1 for param, value in settings)
