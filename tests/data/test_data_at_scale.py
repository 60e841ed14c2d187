"""Data at scale: webdataset shards and Hugging Face datasets split across ranks and loader workers.

Both generic datasets of ``zoo_data`` are map-style, so the trainer's own loader splits them:
:class:`zoo.data.datasets.EpochSampler` gives rank ``r`` rows ``r·b … (r+1)·b`` of every global batch of
one seeded permutation per epoch, and the DataLoader's workers fetch the indices the sampler
hands them (each batch is fetched by one worker). These tests build the trainer's loader for
each rank of a world of 2 with 2 workers (rank and world enter only through the sampler) and
check that every sample is seen exactly once per epoch, in the batches one process would see.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from zoo.recipes import load_recipe
from zoo.training.distributed import DistInfo
from zoo.training.trainer import Trainer

RANKS, WORKERS, PER_RANK = 2, 2, 4  # global batch = 8
SHARDS = (13, 13, 14)               # 40 training samples over 3 shards of uneven sizes


def _vector(i: int, k: int) -> list[float]:
    return [float(i), float(k), float(i % 3), 1.0]


def write_shards(folder) -> dict[str, str]:
    """Training shards holding samples 0…39 (``x`` as .npy, ``y`` in .json, the id as .cls) and a test shard."""
    wds = pytest.importorskip("webdataset")
    start, urls = 0, {}
    for name, sizes in (("train", SHARDS), ("test", (4,))):
        for s, size in enumerate(sizes):
            with wds.TarWriter(str(folder / f"{name}-{s:03d}.tar")) as sink:
                for i in range(start, start + size):
                    buf = io.BytesIO()
                    np.save(buf, np.asarray(_vector(i, 0), dtype=np.float32))
                    sink.write({"__key__": f"sample{i:05d}", "npy": buf.getvalue(),
                                "json": json.dumps({"y": _vector(i, 1)}), "cls": str(i)})
            start += size
        urls[name] = str(folder / f"{name}-{{000..{len(sizes) - 1:03d}}}.tar")
    return urls


WDS_FIELDS = {"x": "npy", "y": {"ext": "json:y", "modality": "vector"}}


RECIPE = """
[model]
embed_dim = 8
[model.towers.x]
modality = "vector"
encoder = "mlp"
in_dim = 4
[model.towers.y]
modality = "vector"
encoder = "mlp"
in_dim = 4
[pairs]
strategy = "paired"
options = { fields = ["x", "y"] }
[run]
progress = false
"""


def trainer_for(dataset: str, options: dict, tmp_path) -> Trainer:
    """A one-process trainer on the dataset with a global batch of 8 and 2 loader workers."""
    (tmp_path / "scale.toml").write_text(RECIPE)
    overrides = {"data.dataset": dataset, "data.options": options, "data.batch_size": RANKS * PER_RANK,
                 "data.num_workers": WORKERS}
    return Trainer(load_recipe(tmp_path / "scale.toml", overrides), run_dir=tmp_path / "run")


def ids_per_rank(trainer: Trainer, epoch: int) -> list[list[list[int]]]:
    """``[rank][batch] -> sample ids`` of one epoch, with the trainer's loader built for each rank."""
    out = []
    for rank in range(RANKS):
        trainer.dist = DistInfo(rank=rank, world=RANKS)
        _, loader, sampler, collator = trainer._make_loader()
        assert loader.num_workers == WORKERS
        sampler.set_epoch(epoch)  # the indices carry it to the workers' dataset and collator
        batches = list(loader)
        for batch in batches:  # the decoded vectors belong to the ids (x[0] is the sample's id)
            assert torch.equal(batch.views["x"][1][:, 0].long(), batch.labels["id"])
        out.append([batch.labels["id"].tolist() for batch in batches])
    return out


def check_exactly_once(trainer: Trainer, n: int) -> None:
    assert len(trainer.dataset) == n
    one = trainer.sampler  # the single-process sampler of the same seed (world 1, global batch)
    epochs = []
    for epoch in range(2):
        per_rank = ids_per_rank(trainer, epoch)
        seen = [i for rank in per_rank for batch in rank for i in batch]
        full_batches = n // (RANKS * PER_RANK)
        assert len(seen) == len(set(seen)) == full_batches * RANKS * PER_RANK  # no sample twice
        if n % (RANKS * PER_RANK) == 0:
            assert sorted(seen) == sorted(_ids(trainer.dataset))  # every sample once
        # step k of the world-2 run sees the rows of step k of one process with the global batch
        single = torch.utils.data.BatchSampler(_with_epoch(one, epoch), RANKS * PER_RANK, drop_last=True)
        labels = _ids(trainer.dataset)
        for k, rows in enumerate(single):
            assert per_rank[0][k] + per_rank[1][k] == [labels[i] for i in rows]
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # a fresh permutation per epoch


def _with_epoch(sampler, epoch):
    """The sampler's indices in ``epoch`` (the trainer's sampler tags them ``(epoch, index)``)."""
    sampler.set_epoch(epoch)
    return [key[1] if isinstance(key, tuple) else key for key in sampler]


def _ids(dataset) -> list[int]:
    return [int(dataset[i]["id"]) for i in range(len(dataset))]


def test_webdataset_shards_split_across_ranks_and_workers(tmp_path):
    urls = write_shards(tmp_path)
    options = {"urls": urls, "fields": WDS_FIELDS, "labels": {"id": "cls"}}
    trainer = trainer_for("webdataset", options, tmp_path)
    assert sorted(_ids(trainer.dataset)) == list(range(sum(SHARDS)))
    check_exactly_once(trainer, sum(SHARDS))


def test_webdataset_remainder_is_dropped_never_repeated(tmp_path):
    urls = write_shards(tmp_path)
    urls["train"] = str(tmp_path / "train-{000..001}.tar")  # 26 samples: 3 global batches of 8, 2 left out
    trainer = trainer_for("webdataset", {"urls": urls, "fields": WDS_FIELDS, "labels": {"id": "cls"}}, tmp_path)
    check_exactly_once(trainer, 26)


def test_hf_datasets_split_across_ranks_and_workers(tmp_path):
    datasets = pytest.importorskip("datasets")
    n = 48
    rows = {"x": [_vector(i, 0) for i in range(n)], "y": [_vector(i, 1) for i in range(n)], "id": list(range(n))}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows),
                          "test": datasets.Dataset.from_dict({k: v[:4] for k, v in rows.items()})}
                         ).save_to_disk(str(tmp_path / "saved"))
    options = {"path": str(tmp_path / "saved"), "fields": {"x": "vector", "y": "vector"}, "labels": {"id": "id"},
               "cache_dir": str(tmp_path / "cache")}
    trainer = trainer_for("hf-datasets", options, tmp_path)
    check_exactly_once(trainer, n)
