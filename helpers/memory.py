"""The peak resident memory of this process, measured so that a child process does not inherit its parent's."""
from __future__ import annotations

import sys
from pathlib import Path


def peak_rss_mib() -> float | None:
    """The largest resident memory this program has had, in MiB (None where the OS does not say).

    On Linux, ``ru_maxrss`` carries the parent's peak across fork and exec: a server started from a notebook that
    holds two models would report the notebook's memory. ``VmHWM`` in ``/proc/self/status`` starts afresh with
    each program, so it is read first.
    """
    try:
        return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux
