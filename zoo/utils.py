"""Small helpers used across the core and the plugins: moving batches, counting rows, calling factories,
the layer stack of the MLP encoders."""
from __future__ import annotations

import hashlib
import inspect
import itertools
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from .errors import RecipeError


def move_to(batch: Any, device: torch.device | str | None, non_blocking: bool = False) -> Any:
    """Move tensors (in dicts, lists, tuples, or objects with ``.to``) to ``device``."""
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor) or hasattr(batch, "to") and not isinstance(batch, (Mapping, str, bytes)):
        try:
            return batch.to(device, non_blocking=non_blocking)
        except TypeError:
            return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device, non_blocking) for v in batch)
    return batch


def batch_size(batch: Any) -> int | None:
    """Number of rows of a batch (first tensor's first dim, ``num_graphs``, or ``len``)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    if hasattr(batch, "num_graphs"):
        return int(batch.num_graphs)
    if isinstance(batch, Mapping):
        for v in batch.values():
            n = batch_size(v)
            if n is not None:
                return n
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        return len(batch)
    return None


def call_factory(what: str, factory: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Call a registered factory, turning unknown keyword arguments into a clear error."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return factory(*args, **kw)
    params = sig.parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
        unknown = sorted(set(kw) - set(valid))
        if unknown:
            raise RecipeError(f"{what} does not accept option(s) {', '.join(map(repr, unknown))}; "
                              f"valid options: {', '.join(valid) or 'none'}.")
    return factory(*args, **kw)


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(target: str | os.PathLike | int, directory: bool = False) -> None:
    """Give a file (path or fd) made by ``mkstemp`` (0600) or a folder made by ``mkdtemp`` (0700) the
    permissions an ordinary ``open``/``mkdir`` would have had: 0666 / 0777 less the user's umask."""
    mode = (0o777 if directory else 0o666) & ~current_umask()
    if isinstance(target, int):
        os.fchmod(target, mode)
    else:
        os.chmod(target, mode)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file, hex (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        follow_umask(fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(path: str | os.PathLike) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def slice_batch(batch: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a batch: tensors, dicts/lists of them, PyG batches, lists of raws."""
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if hasattr(batch, "num_graphs") and hasattr(batch, "index_select"):
        return type(batch).from_data_list(batch.index_select(slice(start, stop)))
    if isinstance(batch, Mapping):
        n = batch_size(batch)
        return {k: slice_batch(v, start, stop) if batch_size(v) == n else v for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return batch[start:stop]
    raise TypeError(f"cannot split a batch of type {type(batch).__name__} into chunks; "
                    f"GradCache needs tensors, dicts of tensors, lists or PyG batches.")


def mlp_blocks(dims: Sequence[int], activation: Callable[[], nn.Module] = nn.GELU,
               dropout: float = 0.0) -> nn.ModuleList:
    """Linear layers ``dims[0] → dims[1] → … → dims[-1]``, each but the last followed by
    ``activation()`` and ``Dropout(dropout)``: the layer stack of the MLP encoders (see :func:`mlp_levels`)."""
    last = len(dims) - 2
    return nn.ModuleList(
        nn.Sequential(nn.Linear(a, b), activation(), nn.Dropout(dropout)) if i < last else nn.Linear(a, b)
        for i, (a, b) in enumerate(itertools.pairwise(dims)))


def mlp_levels(blocks: nn.ModuleList, x: Tensor) -> dict[str, Tensor]:
    """``x`` through :func:`mlp_blocks`' ``blocks``; the output of each hidden block is a level:
    ``{"layer1": (B, hidden), …, "final": (B, out)}`` (an encoder's ``forward_levels``)."""
    out = {}
    for i, block in enumerate(blocks):
        x = block(x)
        out[f"layer{i + 1}" if i < len(blocks) - 1 else "final"] = x
    return out
