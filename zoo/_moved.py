"""Old import paths of the flat layout (before the layer packages), kept working with a DeprecationWarning.

``import zoo.pairs`` returns the module now at ``zoo.data.pairs`` (the same module object, so
``isinstance`` and monkeypatching agree). The table is the list of moves; docs/architecture.md shows it.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings

MOVED = {
    "zoo.batching": "zoo.data.collate", "zoo.pairs": "zoo.data.pairs", "zoo.testing": "zoo.data.vector",
    "zoo.loader": "zoo.data.loader", "zoo.inmemory": "zoo.data.inmemory",
    "zoo.trainer": "zoo.training.trainer", "zoo.checkpoint": "zoo.training.checkpoints",
    "zoo.resume": "zoo.training.checkpointing", "zoo.optim": "zoo.training.optim",
    "zoo.distributed": "zoo.training.distributed", "zoo.fsdp": "zoo.training.fsdp",
    "zoo.gradcache": "zoo.training.gradcache", "zoo.rundir": "zoo.training.rundir",
    "zoo.preflight": "zoo.training.preflight", "zoo.finetune": "zoo.training.build",
    "zoo.embed": "zoo.evaluation.embed", "zoo.plots": "zoo.evaluation.plots", "zoo.eval_cli": "zoo.evaluation.cli",
    "zoo.catalog": "zoo.hub.catalog", "zoo.card": "zoo.hub.card", "zoo.integrity": "zoo.hub.integrity",
    "zoo.remote_code": "zoo.hub.remote_code", "zoo.offline": "zoo.hub.offline", "zoo.hub_cli": "zoo.hub.cli",
    "zoo.export": "zoo.hub.export", "zoo.exporters": "zoo.hub.exporters",
    # zoo.utils was split by what its helpers do
    "zoo.utils": ("zoo.checks", "zoo.files", "zoo.layers", "zoo.data.batches"),
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old path to the module at its new path, with a DeprecationWarning."""

    def __init__(self) -> None:
        self.real_specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = MOVED[spec.name]
        where = new if isinstance(new, str) else " / ".join(new)
        warnings.warn(f"{spec.name} moved to {where}; import it from there (the old path will be removed in 0.3)",
                      DeprecationWarning, stacklevel=2)
        if isinstance(new, str):
            module = importlib.import_module(new)
            self.real_specs[spec.name] = module.__spec__  # the import system overwrites it next
            return module
        merged = types.ModuleType(spec.name, f"Deprecated: the names of {where}.")
        for part in new:
            merged.__dict__.update({k: v for k, v in vars(importlib.import_module(part)).items()
                                    if not k.startswith("__")})
        return merged

    def exec_module(self, module):
        real = self.real_specs.pop(module.__spec__.name, None)  # keyed by the old path: two threads may
        if real is not None:                                     # import two old paths at once
            module.__spec__ = real  # the import system set the alias's spec on the real module; give it back


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
