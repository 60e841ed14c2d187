"""A third-party zoo plugin in one file: modality ``series`` (1-D signals of any length)."""
import torch
from torch import nn

import zoo
from zoo.data import ZooDataset
from zoo.data.pairs import PairStrategy


def load_series(x):
    return torch.as_tensor(x, dtype=torch.float32).flatten()


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
    register("series", load=load_series, collate=collate_series, description="1-D signals (example plugin)")


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
