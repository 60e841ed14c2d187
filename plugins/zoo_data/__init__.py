"""Built-in datasets that ship with the install (no downloads): see docs/datasets.md.

Each dataset module imports only torch and the standard library at import time; optional
packages (scikit-learn, rdkit, torch_geometric, webdataset, datasets, soundfile) are
imported when a dataset is built, with a PluginError naming ``pip install zoo[...]``.
"""
from __future__ import annotations

from zoo import hookimpl

from .csv import CsvDataset
from .digit_groups import DigitsGroups
from .digits import Digits
from .folder import FolderDataset
from .graphs import SyntheticGraphs
from .hf import make_hf_dataset
from .missing import BinaryXORMissing, zoo_register_pair_strategies  # noqa: F401 (the hook registers paired_masked)
from .molecules import Chembl2321810, MoleculeCaptions, NCI5k
from .pydoc_labelled import PydocTopicsLabelled
from .pydoc_topics import PydocTopics
from .speech import DigitsTrimodal
from .streams import WebDataset
from .tones import TonesCaptions
from .video import MovingDigits
from .xor import BinaryXOR


@hookimpl
def zoo_register_datasets(register):
    for name, make in [("digits", Digits), ("pydoc-topics", PydocTopics),
                       ("synthetic-graphs", SyntheticGraphs),
                       ("molecules-nci5k", NCI5k), ("chembl-2321810", Chembl2321810),
                       ("molecule-captions", MoleculeCaptions),
                       ("tones-captions", TonesCaptions), ("digits-trimodal", DigitsTrimodal),
                       ("moving-digits", MovingDigits), ("binary-xor", BinaryXOR),
                       ("digits-groups", DigitsGroups), ("pydoc-topics-labelled", PydocTopicsLabelled),
                       ("binary-xor-missing", BinaryXORMissing),
                       ("webdataset", WebDataset), ("hf-datasets", make_hf_dataset),
                       ("csv", CsvDataset), ("folder", FolderDataset)]:
        register(name, make, description=make.description)
