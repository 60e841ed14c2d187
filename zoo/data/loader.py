"""The training loader of a recipe: dataset, pair strategy, collator, per-rank sampler and DataLoader.

    dataset, loader, sampler, collator = training_loader(recipe, model, dist, device)
    with worker_deaths(loader, resume_hint): ...        # a dead loader worker is a DataError (+ resume_hint())
"""
from __future__ import annotations

import contextlib
import signal
import time
from typing import Callable

import torch
from torch.utils.data import DataLoader

from zoo.checks import call_factory, recipe_key
from zoo.data.collate import Collator
from zoo.data.datasets import EpochSampler, Indexed, create_dataset
from zoo.errors import DataError, RecipeError
from zoo.plugins import registry
from zoo.training.preflight import allocation_guard, worker_count


def training_loader(recipe, model, dist, device: torch.device, dataset=None):
    """``(dataset, loader, sampler, collator)`` for ``recipe``'s training split, or for ``dataset`` (an in-memory
    dataset given to :func:`zoo.train`). Each rank reads ``data.batch_size / world`` rows of every global batch."""
    d, r = recipe.data, recipe.run
    if dataset is None:
        with recipe_key("data.options"), allocation_guard("[data]"):
            dataset = create_dataset(d.dataset, split=d.split, **d.options)
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise DataError(f"dataset {d.dataset!r} is a stream (no length, no indexing); training needs a map-style "
                        f"dataset — turn streaming off (e.g. data.options.streaming = false) or use webdataset "
                        f"shards. Streams serve embedding and evaluation.")
    if d.drop_last and len(dataset) < d.batch_size:
        raise DataError(f"data.batch_size = {d.batch_size} is larger than dataset {d.dataset!r} "
                        f"({len(dataset)} rows in split {d.split!r}); lower the batch size.")
    with recipe_key("pairs.options"):
        strategy = call_factory(f"pair strategy {recipe.pairs.strategy!r}",
                                registry().get("pair_strategies", recipe.pairs.strategy).factory,
                                **recipe.pairs.options)
    collator = Collator(model, strategy, dataset, r.seed)
    if d.batch_size % dist.world:
        raise RecipeError(f"data.batch_size = {d.batch_size} (the global batch) must be divisible by the "
                          f"number of processes ({dist.world}).")
    per_rank = d.batch_size // dist.world
    # the sampler tags each index with its epoch, so the workers (kept across epochs) seed augmentations and
    # move an epoch-dependent dataset themselves: nothing they hold is set from the main process
    sampler = EpochSampler(len(dataset), r.seed, shuffle=d.shuffle, rank=dist.rank, world=dist.world,
                           batch=per_rank, tagged=True)
    workers = worker_count(d.num_workers)
    loader = DataLoader(Indexed(dataset), batch_size=per_rank, sampler=sampler, collate_fn=collator,
                        num_workers=workers, drop_last=d.drop_last, pin_memory=device.type == "cuda",
                        persistent_workers=workers > 0, prefetch_factor=d.prefetch_factor if workers else None,
                        generator=torch.Generator().manual_seed(r.seed))  # keeps the global RNG untouched
    if len(loader) == 0:
        raise DataError(f"dataset {d.dataset!r} yields no full batch of {d.batch_size}.")
    return dataset, loader, sampler, collator


@contextlib.contextmanager
def worker_deaths(loader: DataLoader, resume_hint: Callable[[], str] = str):
    """Around a training loop: a loader worker that dies — killed, or taken by the out-of-memory killer — is a
    :class:`DataError` naming its pid, its signal and the fix. torch reports it as a pipe error from the next
    batch, or as a ``RuntimeError`` from its SIGCHLD handler wherever the main process happens to be."""
    try:
        yield
    except (RuntimeError, ConnectionError, EOFError) as exc:
        workers = getattr(getattr(loader, "_iterator", None), "_workers", [])
        dead = _dead(workers, wait=0.0 if isinstance(exc, RuntimeError) else 2.0)  # a pipe breaks before the exit
        if not dead:
            raise
        raise DataError(f"data loader worker(s) {', '.join(_death(w) for w in dead)}; the batches they held "
                        f"are lost, the weights are not. Often the machine ran out of memory: lower "
                        f"data.num_workers or data.prefetch_factor (both may change on resume). "
                        f"{resume_hint()}".rstrip()) from exc


def _dead(workers: list, wait: float) -> list:
    """The workers that exited with an error, waiting up to ``wait`` s for one to be reaped."""
    deadline = time.monotonic() + wait
    while True:
        try:
            dead = [w for w in workers if w.exitcode not in (None, 0)]
            if dead or not workers or time.monotonic() >= deadline:
                return dead
            time.sleep(0.02)
        except RuntimeError:  # torch's SIGCHLD handler, raised wherever this process is: a worker died; look again
            continue


def _death(worker) -> str:
    code = worker.exitcode
    if code < 0:
        try:
            return f"pid {worker.pid} killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"pid {worker.pid} killed by signal {-code}"
    return f"pid {worker.pid} exited with status {code}"
