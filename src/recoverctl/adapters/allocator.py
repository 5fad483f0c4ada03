"""glibc's allocator, told once at start-up to give large buffers back when they are freed.

glibc serves a large allocation with its own mapping, unmapped when freed, but raises that
threshold to the size of each such block freed (up to 32 MiB): after the first S3 part
(5 MiB) or dump chunk is freed, the next ones come from the heap, where they outlive their
use as fragments that count in the resident set. A fixed threshold keeps every buffer of
M_MMAP_THRESHOLD bytes or more a mapping of its own, returned whole: a backup with an
off-site push peaked about 5 MiB lower (bench/offsite.py). Smaller blocks are not affected.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
THRESHOLD = 1 << 20


def tune(threshold: int = THRESHOLD) -> bool:
    """True when the C library took the setting; elsewhere (musl ignores it, macOS has no
    mallopt) the allocator keeps its defaults, which only costs memory."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
