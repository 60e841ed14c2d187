"""Import torch-geometric on first use, with an error that names the extra to install."""
from __future__ import annotations

import importlib
import warnings
from types import ModuleType

from zoo.errors import PluginError


def require(module: str = "torch_geometric", extra: str = "graph") -> ModuleType:
    """``importlib.import_module(module)``, or a :class:`PluginError` naming ``pip install zoo[extra]``."""
    try:
        with warnings.catch_warnings():  # PyG's import-time torch.jit notices are not the user's business
            warnings.filterwarnings("ignore", message=".*torch.jit.*", category=FutureWarning)
            return importlib.import_module(module)
    except ImportError as exc:
        raise PluginError(f"the {extra} modality needs {module.split('.')[0]!r}, which is not installed ({exc}). "
                          f"Install it with `pip install zoo[{extra}]`.") from exc
