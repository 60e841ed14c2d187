"""The model card (README.md) written next to a checkpoint."""
from __future__ import annotations

import json
import tomllib
from typing import Any


def _objective_of(recipe_text: str | None) -> tuple[str, str, str]:
    """(objective name, citation, dataset) from a recipe's text, where known."""
    if not recipe_text:
        return "", "", ""
    try:
        recipe = tomllib.loads(recipe_text)
    except tomllib.TOMLDecodeError:
        return "", "", ""
    name = recipe.get("objective", {}).get("name", "")
    dataset = recipe.get("data", {}).get("dataset", "")
    citation = ""
    if name:
        from .plugins import registry
        entry = registry().tables["objectives"].get((None, name))
        citation = entry.meta.get("citation", "") if entry else ""
    return name, citation, dataset


def model_card(model, *, recipe_text: str | None = None, metrics: dict[str, Any] | None = None,
               repo_id: str | None = None) -> str:
    objective, citation, dataset = _objective_of(recipe_text)
    towers = "\n".join(f"| `{k}` | {t.config.modality} | `{t.config.encoder}` | {t.config.projection} |"
                       for k, t in model.towers.items())
    name = f"hf-hub:{repo_id}" if repo_id else "local-dir:<this directory>"
    lines = [
        "---", "library_name: zoo", "tags: [zoo, contrastive, multimodal]", "---", "",
        "# zoo contrastive model", "",
        f"Embedding size {model.embed_dim}; modalities: {', '.join(model.modalities)}.", "",
        "| tower | modality | encoder | projection |", "|---|---|---|---|", towers, "",
    ]
    if objective:
        lines += [f"Objective: `{objective}`" + (f" — {citation}" if citation else ""), ""]
    if dataset:
        lines += [f"Training data: `{dataset}`", ""]
    if metrics:
        lines += ["## Metrics", "", "```json", json.dumps(metrics, indent=2, sort_keys=True, default=str), "```", ""]
    lines += ["## Use", "", "```python", "import zoo", f'model = zoo.load("{name}")',
              f'z = model.encode("{model.modalities[0]}", model.preprocess("{model.modalities[0]}", raws))  # (B, {model.embed_dim})',
              "```", ""]
    if recipe_text:
        lines += ["## Recipe", "", "```toml", recipe_text.strip(), "```", ""]
    return "\n".join(lines)
