"""GraphCL's augmentations (You et al. 2020, "Graph Contrastive Learning with Augmentations").

Each ``make(ratio=0.2)`` returns ``apply(data, generator) -> Data``: a new graph (the input is
never modified), every random choice drawn from ``generator``. ``ratio`` is the paper's 20 %:

- ``node_drop``: remove ``⌊ratio·N⌋`` random nodes and their edges (at least one node stays);
- ``edge_perturb``: remove ``⌊ratio·M⌋`` of the ``M`` (undirected) edges and add as many new random
  ones between unconnected nodes (added edges get zero ``edge_attr``);
- ``attr_mask``: set the features of ``⌊ratio·N⌋`` random nodes to the graph's mean feature
  vector (``fill="zero"``: to zeros);
- ``subgraph``: keep a connected subgraph of ``N − ⌊ratio·N⌋`` nodes grown from a random node by
  random frontier expansion (a random walk that may branch; the paper's "subgraph" view).

The helpers (edge keys, node subsets, region growing) are shared with the molecule plugin.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from zoo.errors import RecipeError

Augment = Callable[[Any, torch.Generator], Any]


def check_ratio(name: str, ratio: float, *, allow_all: bool = False) -> float:
    """A fraction in ``[0, 1)``; ``[0, 1]`` with ``allow_all`` (masks, which remove nothing)."""
    if not (0 <= ratio <= 1 if allow_all else 0 <= ratio < 1):
        raise RecipeError(f"{name}: ratio must be in [0, {'1]' if allow_all else '1)'} (a fraction of nodes or "
                          f"edges), got {ratio}.")
    return float(ratio)


def randint(n: int, g: torch.Generator) -> int:
    return int(torch.randint(n, (1,), generator=g))


def choose(n: int, k: int, g: torch.Generator) -> Tensor:
    """``k`` distinct ids out of ``range(n)``, sorted."""
    return torch.randperm(n, generator=g)[:k].sort().values  # (k,)


def edge_keys(edge_index: Tensor, n: int) -> list[int]:
    """One id per undirected pair ``{u, v}``: ``min·n + max``, for each of the ``E`` edges.

    Graphs here are small, so plain Python beats torch's reductions (whose thread start-up
    costs milliseconds per call on a busy machine)."""
    u, v = edge_index.tolist()
    return [min(a, b) * n + max(a, b) for a, b in zip(u, v)]


def keep_nodes(data: Any, keep: Tensor) -> Any:
    """The subgraph on the sorted node ids ``keep``, relabelled ``0..k-1`` (node and edge attributes follow)."""
    return data.subgraph(keep)


def drop_pairs(data: Any, k: int, g: torch.Generator) -> Any:
    """Remove ``k`` random undirected edges (both directions) — the same graph minus those bonds."""
    keys = edge_keys(data.edge_index, data.num_nodes)  # E keys
    unique = sorted(set(keys))  # M undirected pairs
    gone = {unique[i] for i in choose(len(unique), k, g).tolist()}
    return data.edge_subgraph(torch.tensor([key not in gone for key in keys], dtype=torch.bool))


def neighbours(edge_index: Tensor, n: int) -> list[list[int]]:
    """Adjacency lists, edges taken as undirected, each list sorted."""
    adj: list[set[int]] = [set() for _ in range(n)]
    for u, v in edge_index.t().tolist():
        if u != v:
            adj[u].add(v)
            adj[v].add(u)
    return [sorted(a) for a in adj]


def grow_region(nbrs: list[list[int]], size: int, g: torch.Generator, *, bfs: bool = False) -> Tensor:
    """``size`` node ids grown from a random node: ``bfs`` takes the frontier in breadth-first
    order, otherwise a random frontier node each step; jumps to a random unvisited node when
    the component is used up. Returns the sorted ids."""
    n = len(nbrs)
    size = min(size, n)
    chosen: list[int] = []
    seen: set[int] = set()
    frontier: list[int] = []
    while len(chosen) < size:
        if not frontier:
            rest = [i for i in range(n) if i not in seen]
            frontier = [rest[randint(len(rest), g)]]
            seen.add(frontier[0])
        node = frontier.pop(0 if bfs else randint(len(frontier), g))
        chosen.append(node)
        new = [v for v in nbrs[node] if v not in seen]
        if bfs and new:
            new = [new[i] for i in torch.randperm(len(new), generator=g).tolist()]
        seen.update(new)
        frontier.extend(new)
    return torch.tensor(sorted(chosen), dtype=torch.long)


# -- GraphCL augmentations -----------------------------------------------------------------------
def node_drop(ratio: float = 0.2) -> Augment:
    check_ratio("node_drop", ratio)

    def apply(data: Any, g: torch.Generator) -> Any:
        n = data.num_nodes
        k = min(int(ratio * n), n - 1)
        return keep_nodes(data, choose(n, n - k, g))

    return apply


def edge_perturb(ratio: float = 0.2) -> Augment:
    check_ratio("edge_perturb", ratio)

    def apply(data: Any, g: torch.Generator) -> Any:
        n = data.num_nodes
        k = int(ratio * len(set(edge_keys(data.edge_index, n))))
        out = drop_pairs(data, k, g)
        return add_random_edges(out, k, g, undirected=data.is_undirected())

    return apply


def add_random_edges(data: Any, k: int, g: torch.Generator, *, undirected: bool) -> Any:
    """Add up to ``k`` edges between distinct nodes not yet connected (both directions if ``undirected``)."""
    n = data.num_nodes
    if k == 0 or n < 2:
        return data
    taken = set(edge_keys(data.edge_index, n))
    cand = torch.randint(n, (4 * k + 8, 2), generator=g)  # (C, 2) candidate pairs
    new = []
    for u, v in cand.tolist():
        key = min(u, v) * n + max(u, v)
        if u != v and key not in taken:
            taken.add(key)
            new.append((u, v))
            if len(new) == k:
                break
    if not new:
        return data
    add = torch.tensor(new, dtype=torch.long).t()  # (2, k')
    if undirected:
        add = torch.stack([add, add.flip(0)], dim=2).reshape(2, -1)  # (2, 2k'): u→v, v→u
    out = data.clone()
    out.edge_index = torch.cat([data.edge_index, add], dim=1)
    if getattr(data, "edge_attr", None) is not None:
        ea = data.edge_attr
        out.edge_attr = torch.cat([ea, ea.new_zeros((add.shape[1], *ea.shape[1:]))])
    return out


def attr_mask(ratio: float = 0.2, fill: str = "mean") -> Augment:
    check_ratio("attr_mask", ratio, allow_all=True)
    if fill not in ("mean", "zero"):
        raise RecipeError(f"attr_mask: fill must be 'mean' or 'zero', got {fill!r}.")

    def apply(data: Any, g: torch.Generator) -> Any:
        n = data.num_nodes
        idx = choose(n, int(ratio * n), g)
        out = data.clone()
        token = data.x.mean(dim=0) if fill == "mean" else data.x.new_zeros(data.x.shape[1])  # (F,)
        out.x[idx] = token
        return out

    return apply


def subgraph(ratio: float = 0.2) -> Augment:
    check_ratio("subgraph", ratio)

    def apply(data: Any, g: torch.Generator) -> Any:
        n = data.num_nodes
        keep = grow_region(neighbours(data.edge_index, n), max(1, n - int(ratio * n)), g)
        return keep_nodes(data, keep)

    return apply
