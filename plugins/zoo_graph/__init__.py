"""The ``graph`` modality (built-in plugin; ``pip install zoo[graph]``).

- raw: ``torch_geometric.data.Data`` with float ``x (N, F)``, ``edge_index (2, E)``, optional
  ``edge_attr``; batch: ``torch_geometric.data.Batch`` (see :mod:`.modality`);
- encoders ``gin``, ``gcn``, ``gat``, ``sage`` (see :mod:`.nets`);
- augmentations ``node_drop``, ``edge_perturb``, ``attr_mask``, ``subgraph`` (GraphCL, :mod:`.augment`);
- pair strategy ``graphcl``: one pool augmentation drawn per view (:mod:`.pairs`).

torch-geometric is imported when a graph is first loaded or an encoder built, never here.
"""
from __future__ import annotations

from zoo import hookimpl

from . import augment, nets
from .modality import cast_graphs, collate_graphs, count_graphs, is_single_graph, load_graph, slice_graphs
from .pairs import GraphCLViews


@hookimpl
def zoo_register_modalities(register):
    register("graph", load=load_graph, collate=collate_graphs, extra="graph", is_single=is_single_graph,
             count=count_graphs, slice=slice_graphs, cast=cast_graphs,
             description="torch_geometric Data graphs (x (N, F) float, edge_index (2, E))")


@hookimpl
def zoo_register_encoders(register):
    for build in (nets.gin, nets.gcn, nets.gat, nets.sage):
        register("graph", build.__name__, build, description=build.__doc__.splitlines()[0])


@hookimpl
def zoo_register_augmentations(register):
    for make, what in [(augment.node_drop, "drop 20 % of the nodes (GraphCL)"),
                       (augment.edge_perturb, "remove and add 20 % of the edges (GraphCL)"),
                       (augment.attr_mask, "mask 20 % of the node features (GraphCL)"),
                       (augment.subgraph, "keep a connected 80 % subgraph grown from a random node (GraphCL)")]:
        register("graph", make.__name__, make, description=what)


@hookimpl
def zoo_register_pair_strategies(register):
    register("graphcl", GraphCLViews, description="two views, each with one augmentation drawn from a pool (GraphCL)")
