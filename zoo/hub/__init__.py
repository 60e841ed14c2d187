"""Saving and loading: the zoo checkpoint format, name resolution (``zoo.load``), the Hub, cards, exports.

- :mod:`.format` — the checkpoint layout (``config.json`` + ``model.safetensors`` + ``MANIFEST``), the
  ``local-dir:`` / ``hf-hub:`` sources and ``push_to_hub``;
- :mod:`.catalog` — ``zoo.load(name)`` / ``zoo.list_models()`` over every registered source;
- :mod:`.integrity` — what a checkpoint must pass before anything is allocated for it;
- :mod:`.remote_code` — a checkpoint never runs code;
- :mod:`.card` — the model card; :mod:`.cli` — ``zoo push``; :mod:`.offline` — failing fast offline;
- :mod:`.export` and :mod:`.exporters` — writing a model in another library's format.
"""
from __future__ import annotations

from zoo.hub.format import load_local, push_to_hub, read_config, save_pretrained  # noqa: F401
