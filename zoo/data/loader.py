"""The training loader of a recipe: dataset, pair strategy, collator, per-rank sampler and DataLoader.

    dataset, loader, sampler, collator = training_loader(recipe, model, dist, device)
"""
from __future__ import annotations

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
