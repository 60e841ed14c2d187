"""Built-in objectives: one file each, registered where defined (see :mod:`.base`)."""
from __future__ import annotations

import importlib
import pkgutil

from zoo.hookspecs import hookimpl
from zoo.objectives.base import _BUILTIN, register_objective  # noqa: F401

# import every objective module so its @register_objective runs
for _m in pkgutil.iter_modules(__path__):
    if not _m.name.startswith("_") and _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")


from zoo.objectives.symile import mip_similarity  # noqa: E402,F401  (zero-shot prediction from the other modalities)


@hookimpl
def zoo_register_objectives(register):
    for name, make, citation, description in _BUILTIN:
        register(name, make, citation=citation, description=description)
