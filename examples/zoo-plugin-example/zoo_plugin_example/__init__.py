"""A third-party zoo plugin in one file: modality ``series`` (1-D signals of any length), with an encoder,
an augmentation, a pair strategy, a dataset, an evaluation task (``knn``) and a command (``zoo sines``)."""
import torch
from torch import nn

import zoo
from zoo.data import ZooDataset
from zoo.data.pairs import PairStrategy


def load_series(x):
    return torch.as_tensor(x, dtype=torch.float32).flatten()


def thumbnail_series(raw):  # the series as an (8, T) grey band in [0, 1], for zoo's pictures
    x = raw - raw.min()
    return (x / x.max().clamp(min=1e-8)).expand(8, -1).numpy()


def collate_series(raws):  # -> (B, 1, T_max), zero-padded
    out = torch.zeros(len(raws), 1, max(r.numel() for r in raws))
    for i, r in enumerate(raws):
        out[i, 0, : r.numel()] = r
    return out


class Conv1dEncoder(nn.Module):
    def __init__(self, channels: int = 16, out_dim: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(1, channels, 5, padding=2), nn.GELU(),
                                 nn.Conv1d(channels, out_dim, 5, padding=2), nn.AdaptiveMaxPool1d(1), nn.Flatten())
        self.output_dim = out_dim

    def forward(self, x):  # (B, 1, T) -> (B, out_dim)
        return self.net(x)


def jitter(std: float = 0.05):
    return lambda raw, g: raw + std * torch.randn(raw.shape, generator=g)


class CropPairs(PairStrategy):
    """Two random crops of the same series are the positive pair."""

    def __init__(self, length: int = 48, **kw):
        super().__init__(**kw)
        self.length = length

    def views_of(self, samples, gens):
        (f,) = self.chosen()
        crops = {1: [], 2: []}
        for s, g in zip(samples, gens):
            for k in crops:
                start = int(torch.randint(0, s[f].numel() - self.length + 1, (1,), generator=g))
                crops[k].append(self.augment(f, s[f][start:start + self.length], g))
        return {f"{f}.{k}": ("series", v) for k, v in crops.items()}


class Sines(ZooDataset):
    """Synthetic sine waves of 4 frequencies (label ``class``)."""

    fields, label_fields = {"signal": "series"}, ["class"]

    def __init__(self, split="train", size=256):
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        self.labels = torch.randint(4, (size,), generator=g)
        t = torch.linspace(0, 1, 64)
        phase = torch.rand(size, 1, generator=g) * 6.28
        self.x = torch.sin(6.28 * (2 + 3 * self.labels[:, None]) * t + phase)  # (N, 64)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"signal": self.x[i], "class": int(self.labels[i])}


@zoo.hookimpl
def zoo_register_modalities(register):
    register("series", load=load_series, collate=collate_series, thumbnail=thumbnail_series,
             description="1-D signals (example plugin)")


@zoo.hookimpl
def zoo_register_encoders(register):
    register("series", "conv1d", Conv1dEncoder, description="two 1-D convolutions + max pool")


@zoo.hookimpl
def zoo_register_augmentations(register):
    register("series", "jitter", jitter, description="additive Gaussian noise")


@zoo.hookimpl
def zoo_register_pair_strategies(register):
    register("crop_pairs", CropPairs, description="two random crops of one series")


@zoo.hookimpl
def zoo_register_datasets(register):
    register("example-sines", Sines, description="synthetic sine waves")


def knn_accuracy(model, dataset, *, field=None, k: int = 5, batch_size: int = 256):
    """Leave-one-out k-nearest-neighbour accuracy of the dataset's label on one field's embeddings."""
    from zoo.evaluation.embed import embed_dataset
    emb = embed_dataset(model, dataset, fields=[field] if field else None, batch_size=batch_size)
    z, y = emb.emb[field or next(iter(emb.emb))], next(iter(emb.labels.values()))  # (N, D), (N,)
    sim = (z @ z.T).fill_diagonal_(float("-inf"))                                     # (N, N), not itself
    votes = y[sim.topk(k, dim=1).indices]                                             # (N, k)
    return {"accuracy": (votes.mode(dim=1).values == y).float().mean().item()}


@zoo.hookimpl
def zoo_register_eval_tasks(register):
    register("knn", knn_accuracy, metrics=r"accuracy", description="leave-one-out k-NN accuracy (example plugin)")


def add_sines_arguments(parser):
    parser.add_argument("--size", type=int, default=4, help="how many series to show")


def run_sines(args):
    ds = Sines("test", size=args.size)
    for i in range(len(ds)):
        print(f"class {ds[i]['class']}: " + " ".join(f"{v:+.2f}" for v in ds[i]["signal"][:8].tolist()) + " …")


@zoo.hookimpl
def zoo_register_commands(register):
    register("sines", run_sines, add_arguments=add_sines_arguments, help="print a few example-sines series")
