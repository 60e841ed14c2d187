"""Checks a trainer runs while it is built, before step 0: the device exists, the model fits in
memory, the data loader's workers fit the machine. (What a recipe file alone can tell is checked
by :func:`zoo.recipes.load_recipe`.)"""
from __future__ import annotations

import contextlib
import logging
import math
import os

import torch
from torch.overrides import TorchFunctionMode

from zoo.errors import RecipeError

log = logging.getLogger("zoo.train")

_FACTORIES = (torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.randint,
              torch.empty_strided)


def pick_device(name: str) -> torch.device:
    """``run.device`` as a device this machine has (``"auto"``: CUDA if there is one), else a RecipeError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(name)
    return torch.device(name)


def check_device(name: str) -> None:
    """``run.device`` names a device this machine has."""
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if count == 0:
            raise RecipeError(f"run.device = {name!r} but no CUDA device is available; use 'cpu' or 'auto'.")
        if index >= count:
            raise RecipeError(f"run.device = {name!r} but this machine has {count} CUDA device(s) (cuda:0 … "
                              f"cuda:{count - 1}); pick one of them or 'auto'.")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RecipeError("run.device = 'mps' but Apple's MPS backend is not available here; use 'cpu' or 'auto'.")


def worker_count(requested: int) -> int:
    """``data.num_workers``, capped at the CPUs this process may use (with a warning): more worker
    processes than CPUs only add memory and start-up time."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if requested > cpus:
        log.warning("data.num_workers = %d is more than the %d CPUs available; using %d workers", requested, cpus, cpus)
        return cpus
    return requested


def memory_bytes() -> tuple[int, int]:
    """``(available, total)`` bytes of RAM (``(0, 0)`` where the platform does not say)."""
    try:
        import psutil
        vm = psutil.virtual_memory()
        return int(vm.available), int(vm.total)
    except ImportError:  # pragma: no cover - psutil comes with the environment
        try:
            pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            return pages * size, pages * size
        except (ValueError, OSError, AttributeError):
            return 0, 0


class _AllocationGuard(TorchFunctionMode):
    """Sizes every tensor a factory (``torch.empty``…) is asked for and refuses, before allocating,
    one larger than the free memory or a running total above the machine's memory."""

    def __init__(self, what: str, available: int, total: int):
        super().__init__()
        self.what, self.available, self.total, self.seen = what, available, total, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES and self.total:
            self._check(func, args, kwargs)
        return func(*args, **kwargs)

    def _check(self, func, args, kwargs) -> None:
        device = kwargs.get("device")
        if device is not None and torch.device(device).type == "meta":
            return
        shape = _shape(func, args, kwargs)
        if shape is None:
            return
        dtype = kwargs.get("dtype") or torch.get_default_dtype()
        nbytes = math.prod(shape) * dtype.itemsize
        self.seen += nbytes
        if nbytes > self.available or self.seen > self.total:
            raise RecipeError(
                f"{self.what} needs a tensor of shape {tuple(shape)} ({_gib(nbytes)}; {_gib(self.seen)} so far), more "
                f"than this machine's memory ({_gib(self.available)} free of {_gib(self.total)}); nothing was "
                f"allocated. Lower the sizes (model.embed_dim, the towers' hidden/out_dim/layers…).")


def _shape(func, args, kwargs) -> list[int] | None:
    if func is torch.randint:  # randint(high, size) or randint(low, high, size)
        args = args[2:] if len(args) >= 3 else args[1:]
    size = kwargs.get("size", args[0] if args else None)
    if isinstance(size, int) and func is not torch.full:
        size = [a for a in args if isinstance(a, int)]
    if not isinstance(size, (list, tuple, torch.Size)) or not all(isinstance(s, int) for s in size):
        return None
    return [max(0, int(s)) for s in size]


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


@contextlib.contextmanager
def allocation_guard(what: str = "the model"):
    """Inside: a tensor that cannot fit in memory is a :class:`RecipeError` before it is allocated."""
    available, total = memory_bytes()
    with _AllocationGuard(what, available, total):
        yield
