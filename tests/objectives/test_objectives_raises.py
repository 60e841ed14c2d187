"""Base classes whose subclasses must implement a method refuse, at construction, a subclass without it
(abc), instead of a NotImplementedError mid-training; the server's 404 is a ZooError too."""
import pytest

from zoo.data.pairs import PairStrategy
from zoo.errors import ZooError


def test_a_pair_strategy_without_views_of_cannot_be_built():
    class NoViews(PairStrategy):
        pass

    with pytest.raises(TypeError, match="views_of"):
        NoViews()


def test_plugin_bases_name_the_method_to_implement():
    pytest.importorskip("torch_geometric")
    from zoo_data.molecules import MoleculeDataset
    from zoo_graph.nets import GNNBase

    with pytest.raises(TypeError, match="rows"):
        type("NoRows", (MoleculeDataset,), {"name": "no-rows"})()
    with pytest.raises(TypeError, match="node_inputs"):
        type("NoInputs", (GNNBase,), {})([], hidden=4, out_dim=4, dropout=0.0, readout="mean", node_level=False,
                                         norm="none")


def test_not_found_is_a_lookup_error_and_a_zoo_error():
    from zoo.retrieval.serve import NotFoundError

    assert issubclass(NotFoundError, LookupError) and issubclass(NotFoundError, ZooError)
    assert NotFoundError.__mro__.index(LookupError) < NotFoundError.__mro__.index(ZooError)  # the 404 handler wins
