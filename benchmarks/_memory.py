"""Peak resident memory of this process on Linux, shared by the benchmarks.

    exact = reset_peak()                    # VmHWM := VmRSS now (False where /proc cannot be written)
    ...work...
    used = status_mb("VmHWM:") - base_mb    # MiB above the resident set before the work
"""
from __future__ import annotations


def status_mb(field: str) -> float:
    """A ``/proc/self/status`` field (``"VmRSS:"``, ``"VmHWM:"``) in MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def reset_peak() -> bool:
    """Reset the high-water mark ``VmHWM`` to the current resident set (``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
