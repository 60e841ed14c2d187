"""Message-passing encoders for the ``graph`` modality (and the trunk the molecule encoders share).

Every encoder is ``layers`` convolutions of width ``hidden`` (each followed by a norm, ReLU
except after the last, and dropout), a readout (one module, applied to every layer's node
states for the levels) and a linear head to ``out_dim``:

- ``forward(batch)``: ``(num_graphs, out_dim)`` — the last layer's readout through the head
  (``node_level=True``: ``(num_nodes, out_dim)`` instead, for standalone node tasks);
- ``forward_levels(batch)``: ``{"layer1": (G, hidden), …, "final": (G, out_dim)}``;
- ``forward_nodes(batch)``: ``(num_nodes, out_dim)``, the last layer's node states through the head.

Convolutions (PyG): ``gin`` (Xu et al. 2019, GINConv with a 2-layer MLP), ``gcn`` (Kipf & Welling
2017), ``gat`` (Veličković et al. 2018, ``heads`` heads concatenated), ``sage`` (Hamilton et al. 2017).
Readouts: ``sum`` | ``mean`` | ``max`` | ``attention`` (gated attention pooling, Li et al. 2016).
"""
from __future__ import annotations

import abc
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import check_sizes as sizes
from zoo.errors import RecipeError, ShapeError, UnknownNameError

from ._pyg import require

READOUTS = ("sum", "mean", "max", "attention")
NORMS = ("batch", "layer", "none")


class Readout(nn.Module):
    """Node states ``(N, d)`` → graph vectors ``(G, d)``."""

    def __init__(self, kind: str, dim: int):
        super().__init__()
        if kind not in READOUTS:
            raise UnknownNameError("readout", kind, READOUTS)
        self.kind = kind
        if kind == "attention":
            self.attention = require("torch_geometric.nn").AttentionalAggregation(gate_nn=nn.Linear(dim, 1))

    def forward(self, h: Tensor, index: Tensor, size: int) -> Tensor:
        if self.kind == "attention":
            return self.attention(h, index, dim_size=size)  # (G, d)
        scatter = require("torch_geometric.utils").scatter
        return scatter(h, index, dim=0, dim_size=size, reduce=self.kind)  # (G, d)


def make_norm(kind: str, dim: int) -> nn.Module:
    if kind not in NORMS:
        raise UnknownNameError("norm", kind, NORMS)
    return {"batch": lambda: nn.BatchNorm1d(dim), "layer": lambda: nn.LayerNorm(dim), "none": nn.Identity}[kind]()


def gin_mlp(d_in: int, d_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Linear(d_out, d_out))


def make_conv(kind: str, d_in: int, d_out: int, heads: int = 1) -> nn.Module:
    """One PyG convolution ``(N, d_in) -> (N, d_out)``."""
    pyg = require("torch_geometric.nn")
    if kind == "gin":
        return pyg.GINConv(gin_mlp(d_in, d_out), train_eps=True)
    if kind == "gcn":
        return pyg.GCNConv(d_in, d_out)
    if kind == "gat":
        return pyg.GATConv(d_in, d_out // heads, heads=heads)
    if kind == "sage":
        return pyg.SAGEConv(d_in, d_out)
    raise UnknownNameError("graph convolution", kind, ("gin", "gcn", "gat", "sage"))


def graph_index(batch: Any, num_nodes: int) -> tuple[Tensor, int]:
    """``(node → graph ids (N,), number of graphs)``; a lone ``Data`` is one graph."""
    index = getattr(batch, "batch", None)
    if index is None:
        return torch.zeros(num_nodes, dtype=torch.long, device=batch.edge_index.device), 1
    return index, int(batch.num_graphs)


def check_sizes(layers: int, hidden: int, out_dim: int, dropout: float) -> None:
    """Each size an integer ≥ 1 and dropout in [0, 1), else an OptionError naming the option."""
    sizes("graph encoder", layers=layers, hidden=hidden, out_dim=out_dim, dropout=dropout)


class GNNBase(nn.Module, abc.ABC):
    """Convolutions + norms + a readout + head. Subclasses define :meth:`node_inputs`
    (``(N, d_in)`` from the batch) and may override :meth:`conv_inputs` (extra conv arguments)."""

    def __init__(self, convs: list[nn.Module], *, hidden: int, out_dim: int, dropout: float, readout: str,
                 node_level: bool, norm: str):
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(make_norm(norm, hidden) for _ in convs)
        self.readout = Readout(readout, hidden)  # one for every level: forward uses all its parameters (DDP)
        self.head = nn.Linear(hidden, out_dim)
        self.dropout, self.node_level, self.output_dim = dropout, node_level, out_dim
        self.level_dims = {f"layer{i + 1}": hidden for i in range(len(convs))}

    @abc.abstractmethod
    def node_inputs(self, batch: Any) -> Tensor:
        """The input features of every node, ``(N, d_in)``, from the batch."""

    def conv_inputs(self, i: int, batch: Any) -> tuple:
        return (batch.edge_index,)

    def node_states(self, batch: Any) -> list[Tensor]:
        """The node states after each layer, ``[(N, hidden)] * layers``."""
        h = self.node_inputs(batch)  # (N, d_in)
        states = []
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = norm(conv(h, *self.conv_inputs(i, batch)))  # (N, hidden)
            if i < len(self.convs) - 1:
                h = F.relu(h)
            h = F.dropout(h, self.dropout, self.training)
            states.append(h)
        return states

    def forward_nodes(self, batch: Any) -> Tensor:
        return self.head(self.node_states(batch)[-1])  # (N, out_dim)

    def forward_levels(self, batch: Any) -> dict[str, Tensor]:
        states = self.node_states(batch)
        index, size = graph_index(batch, states[0].shape[0])
        out = {f"layer{i + 1}": self.readout(h, index, size) for i, h in enumerate(states)}
        out["final"] = self.head(out[f"layer{len(states)}"])
        return out  # {level: (G, hidden)}, "final": (G, out_dim)

    def forward(self, batch: Any) -> Tensor:
        if self.node_level:
            return self.forward_nodes(batch)  # (N, out_dim)
        h = self.node_states(batch)[-1]  # (N, hidden)
        index, size = graph_index(batch, h.shape[0])
        return self.head(self.readout(h, index, size))  # (G, out_dim)


class GraphEncoder(GNNBase):
    """A GNN over float node features ``x (N, in_dim)``; see the module docstring."""

    def __init__(self, conv: str, *, in_dim: int | None, hidden: int, layers: int, out_dim: int, dropout: float,
                 readout: str, node_level: bool, norm: str, heads: int = 1):
        if in_dim is None or in_dim < 1:
            raise RecipeError(f"graph/{conv} needs in_dim = the number of node features (data.x.shape[1]), "
                              f"got {in_dim}.")
        check_sizes(layers, hidden, out_dim, dropout)
        if heads < 1 or hidden % heads:
            raise RecipeError(f"hidden ({hidden}) must be a positive multiple of heads ({heads}).")
        convs = [make_conv(conv, in_dim if i == 0 else hidden, hidden, heads) for i in range(layers)]
        super().__init__(convs, hidden=hidden, out_dim=out_dim, dropout=dropout, readout=readout,
                         node_level=node_level, norm=norm)
        self.in_dim = in_dim

    def node_inputs(self, batch: Any) -> Tensor:
        x = getattr(batch, "x", None)
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.in_dim or not x.is_floating_point():
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"graph encoder: expected float node features x of shape (N, {self.in_dim}), got {got}. "
                             f"Set in_dim to the graphs' feature size.")
        return x  # (N, in_dim)


# The registered builders: one per convolution, each with the paper's usual defaults.
def gin(in_dim: int | None = None, hidden: int = 64, layers: int = 3, out_dim: int = 64, dropout: float = 0.0,
        readout: str = "sum", node_level: bool = False, norm: str = "batch") -> GraphEncoder:
    """GIN (Xu et al. 2019), the encoder of GraphCL; sum readout."""
    return GraphEncoder("gin", **_kw(locals()))


def gcn(in_dim: int | None = None, hidden: int = 64, layers: int = 3, out_dim: int = 64, dropout: float = 0.0,
        readout: str = "mean", node_level: bool = False, norm: str = "batch") -> GraphEncoder:
    """GCN (Kipf & Welling 2017); mean readout."""
    return GraphEncoder("gcn", **_kw(locals()))


def gat(in_dim: int | None = None, hidden: int = 64, layers: int = 3, out_dim: int = 64, dropout: float = 0.0,
        readout: str = "mean", node_level: bool = False, norm: str = "batch", heads: int = 4) -> GraphEncoder:
    """GAT (Veličković et al. 2018); ``heads`` heads of width hidden/heads, concatenated."""
    return GraphEncoder("gat", **_kw(locals()))


def sage(in_dim: int | None = None, hidden: int = 64, layers: int = 3, out_dim: int = 64, dropout: float = 0.0,
         readout: str = "mean", node_level: bool = False, norm: str = "batch") -> GraphEncoder:
    """GraphSAGE (Hamilton et al. 2017), mean aggregator."""
    return GraphEncoder("sage", **_kw(locals()))


def _kw(local: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in local.items() if not k.startswith("_")}
