"""The ``graph`` modality: a raw is a ``torch_geometric.data.Data``; a batch is a ``Batch``.

``load`` accepts a ``Data`` (validated, returned as is, so ``load`` is idempotent) or a dict
with ``x`` ``(N, F)`` and ``edge_index`` ``(2, E)`` (plus optional ``edge_attr`` ``(E, ...)``
and any other attributes). ``collate`` is ``Batch.from_data_list``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from zoo.errors import DataError, ShapeError

from ._pyg import require


def check_edges(where: str, data: Any, num_nodes: int) -> None:
    """``edge_index`` is a long ``(2, E)`` tensor of node ids in ``[0, N)``; ``edge_attr`` has ``E`` rows."""
    ei = getattr(data, "edge_index", None)
    if not isinstance(ei, Tensor) or ei.dim() != 2 or ei.shape[0] != 2 or ei.dtype != torch.long:
        got = f"{tuple(ei.shape)} {ei.dtype}" if isinstance(ei, Tensor) else type(ei).__name__
        raise ShapeError(f"{where}: expected edge_index of shape (2, E) and dtype torch.long, got {got}. "
                         f"Build it with torch.tensor([[sources…], [targets…]], dtype=torch.long).")
    low, high = (int(ei.min()), int(ei.max())) if ei.numel() else (0, -1)
    if low < 0 or high >= num_nodes:
        raise ShapeError(f"{where}: expected edge_index node ids in [0, {num_nodes}) for {num_nodes} nodes, got ids "
                         f"from {low} to {high}. Check the edges or the node features x.")
    ea = getattr(data, "edge_attr", None)
    if ea is not None and (not isinstance(ea, Tensor) or ea.dim() == 0 or ea.shape[0] != ei.shape[1]):
        got = tuple(ea.shape) if isinstance(ea, Tensor) else type(ea).__name__
        raise ShapeError(f"{where}: expected edge_attr with one row per edge ({ei.shape[1]}, …), got {got}.")


def check_graph(data: Any) -> Any:
    """Validate a graph raw: float ``x (N, F)``, edges within range. Returns ``data``."""
    x = getattr(data, "x", None)
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"graph modality: expected node features x of shape (N, F) and a float dtype, got {got}. "
                         f"Set data.x to a float tensor (e.g. data.x = data.x.float()).")
    check_edges("graph modality", data, x.shape[0])
    return data


def _from_dict(value: Mapping[str, Any]) -> Any:
    Data = require("torch_geometric.data").Data
    missing = [k for k in ("x", "edge_index") if k not in value]
    if missing:
        raise DataError(f"graph modality: a dict graph needs keys 'x' and 'edge_index'; it lacks {missing} "
                        f"(it has {sorted(value)}).")
    try:
        attrs = {k: torch.as_tensor(v) if not isinstance(v, str) else v for k, v in value.items()}
        attrs["x"] = torch.as_tensor(value["x"], dtype=torch.float32)               # (N, F)
        attrs["edge_index"] = torch.as_tensor(value["edge_index"], dtype=torch.long)  # (2, E)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"graph modality: cannot turn the dict's values into tensors ({exc}).") from exc
    return Data(**attrs)


def load_graph(value: Any) -> Any:
    """A ``Data`` (validated) or a dict ``{"x": (N, F), "edge_index": (2, E), …}`` → ``Data``."""
    Data = require("torch_geometric.data").Data
    if isinstance(value, Mapping):
        value = _from_dict(value)
    if not isinstance(value, Data):
        what = f"the string {value!r}" if isinstance(value, (str, bytes)) else f"a {type(value).__name__}"
        raise DataError(f"graph modality: cannot read {what}; give a torch_geometric.data.Data or a dict with "
                        f"'x' (N, F) and 'edge_index' (2, E).")
    return check_graph(value)


def is_single_graph(value: Any) -> bool:
    """One graph: a PyG ``Data`` (not a ``Batch``) or a dict with ``edge_index``."""
    if isinstance(value, Mapping):
        return "edge_index" in value
    if type(value).__module__.startswith("torch_geometric"):
        return not isinstance(value, require("torch_geometric.data").Batch)
    return False


def collate_graphs(raws: list[Any]) -> Any:
    """``list[Data]`` → ``Batch`` (``num_graphs`` rows; ``batch.batch`` maps nodes to graphs)."""
    Batch = require("torch_geometric.data").Batch
    raws = list(raws)
    keys = [set(r.keys()) for r in raws]
    odd = next((i for i, k in enumerate(keys) if k != keys[0]), None)
    if odd is not None:
        raise DataError(f"cannot batch these graphs: graph 0 has attributes {sorted(keys[0])} but graph {odd} has "
                        f"{sorted(keys[odd])}; every graph of a batch needs the same attributes.")
    try:
        return Batch.from_data_list(raws)
    except (TypeError, ValueError, RuntimeError, KeyError, AttributeError) as exc:
        raise DataError(f"cannot batch these graphs ({type(exc).__name__}: {exc}); every graph of a batch needs "
                        f"the same attributes (x, edge_index, edge_attr…) with the same feature sizes.") from exc


def count_graphs(batch: Any) -> int:
    """Rows of a collated batch: its number of graphs (the modality's ``count`` capability)."""
    return int(batch.num_graphs)


def cast_graphs(batch: Any, dtype: torch.dtype) -> Any:
    """A collated ``Batch`` with its floating tensors (node and edge features) in ``dtype``; edge indices
    and the batch vector stay integers (the modality's ``cast`` capability: a model loaded in bf16)."""
    return batch.apply(lambda t: t.to(dtype) if t.is_floating_point() else t)


def slice_graphs(batch: Any, start: int, stop: int) -> Any:
    """Graphs ``start:stop`` of a collated ``Batch``, as a ``Batch`` (the modality's ``slice`` capability:
    GradCache's chunks)."""
    return type(batch).from_data_list(batch.index_select(slice(start, stop)))
