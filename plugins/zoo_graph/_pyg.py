"""Import torch-geometric (or rdkit) on first use, quietly, with an error that names the extra to install."""
from __future__ import annotations

import warnings
from types import ModuleType

from zoo import checks


def require(module: str = "torch_geometric", extra: str = "graph") -> ModuleType:
    """:func:`zoo.checks.require` for the ``graph``/``molecule`` modalities, without PyG's import-time notices."""
    with warnings.catch_warnings():  # PyG's import-time torch.jit notices are not the user's business
        warnings.filterwarnings("ignore", message=".*torch.jit.*", category=FutureWarning)
        return checks.require(module, extra, f"the {extra} modality",
                              package="torch-geometric" if module.startswith("torch_geometric") else None)
