"""The model card (README.md) written next to a checkpoint, built with huggingface_hub's ``ModelCard``.

The YAML header (``ModelCardData``) carries the licence and base model of the pretrained models
the zoo model was built from (``model.origins``, recorded at ``zoo.load`` and kept through
fine-tuning and re-saving), the training dataset, and the evaluation metrics as ``model-index``
``EvalResult`` entries; the body names the towers, the objective with its citation, and how to
load the model.
"""
from __future__ import annotations

import json
import tomllib
from typing import Any

TASK = {"zero_shot": "zero-shot-classification", "retrieval": "retrieval", "linear_probe": "linear-probe",
        "alignment": "alignment"}


def _reproduces(recipe_text: str | None) -> str:
    """``[run] reproduces`` of a recipe's text: the ``docs/results.md#row-…`` it reproduces, or ``""``."""
    try:
        return str(tomllib.loads(recipe_text or "").get("run", {}).get("reproduces", ""))
    except tomllib.TOMLDecodeError:
        return ""


def _recipe_facts(recipe_text: str | None) -> tuple[str, str, str, str]:
    """(objective name, citation, dataset, eval split) from a recipe's text, where known."""
    if not recipe_text:
        return "", "", "", ""
    try:
        recipe = tomllib.loads(recipe_text)
    except tomllib.TOMLDecodeError:
        return "", "", "", ""
    name = recipe.get("objective", {}).get("name", "")
    data = recipe.get("data", {})
    citation = ""
    if name:
        from zoo.plugins import registry
        entry = registry().tables["objectives"].get((None, name))
        citation = entry.meta.get("citation", "") if entry else ""
    return name, citation, data.get("dataset", ""), data.get("eval_split", "test")


def _run_name(recipe_text: str | None) -> str:
    try:
        return str(tomllib.loads(recipe_text or "").get("run", {}).get("name", "") or "")
    except tomllib.TOMLDecodeError:
        return ""


def _license(origins: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(SPDX-style id, note): the one licence of the origins, ``other`` when they differ, None when unknown."""
    found = sorted({str(o["license"]) for o in origins if o.get("license")})
    if not found:
        return None, None
    if len(found) == 1:
        return found[0], None
    return "other", "the pretrained parts carry different licences: " + ", ".join(found)


def _eval_results(metrics: dict[str, Any] | None, dataset: str, split: str):
    from huggingface_hub import EvalResult
    out = []
    for key, value in sorted((metrics or {}).items()):
        if "/" not in key or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # model-index holds evaluation scores; steps, losses and speeds stay in the JSON below
        task = key.split("/", 1)[0]
        out.append(EvalResult(task_type=TASK.get(task, task), dataset_type=dataset, dataset_name=dataset,
                              dataset_split=split or None, metric_type=key, metric_name=key,
                              metric_value=float(value)))
    return out


def model_card(model, *, recipe_text: str | None = None, metrics: dict[str, Any] | None = None,
               repo_id: str | None = None) -> str:
    from huggingface_hub import ModelCard, ModelCardData
    objective, citation, dataset, split = _recipe_facts(recipe_text)
    origins = list(getattr(model, "origins", []) or [])
    licence, licence_note = _license(origins)
    bases = sorted({o["base_model"] for o in origins if o.get("base_model")})
    results = _eval_results(metrics, dataset, split) if dataset else []
    data = ModelCardData(
        library_name="zoo", tags=["zoo", "contrastive", "multimodal", *model.modalities],
        license=licence, base_model=bases or None, datasets=[dataset] if dataset else None,
        model_name=(repo_id or _run_name(recipe_text) or f"zoo {objective or 'model'} on {dataset}") if results else None,
        eval_results=results or None)
    towers = "\n".join(f"| `{k}` | {t.config.modality} | `{t.config.encoder}` | {t.config.projection} |"
                       for k, t in model.towers.items())
    name = f"hf-hub:{repo_id}" if repo_id else "local-dir:<this directory>"
    first = model.modalities[0]
    lines = [
        "# zoo contrastive model", "",
        f"Embedding size {model.embed_dim}; modalities: {', '.join(model.modalities)}.", "",
        "| tower | modality | encoder | projection |", "|---|---|---|---|", towers, "",
    ]
    if origins:
        lines += ["## Built from", ""]
        lines += [f"- `{o.get('name', '?')}`" + (f" (base model {o['base_model']})" if o.get("base_model") else "")
                  + f", licence: {o.get('license') or 'unknown — check the original model card'}" for o in origins]
        lines += [""] + ([f"Licence note: {licence_note}.", ""] if licence_note else [])
    if objective:
        lines += [f"Objective: `{objective}`" + (f" — {citation}" if citation else ""), ""]
    if dataset:
        lines += [f"Training data: `{dataset}`" + (f" (metrics on the `{split}` split)" if split else ""), ""]
    reproduces = _reproduces(recipe_text)
    if reproduces:  # a claim of the objective's paper, measured by benchmarks/reproduce.py
        lines += [f"Reproduces: `{reproduces}` in the zoo's repository — the paper's claim, our setting and "
                  f"result, and the command that regenerates the row.", ""]
    if metrics:
        lines += ["## Metrics", "", "```json", json.dumps(metrics, indent=2, sort_keys=True, default=str), "```", ""]
    lines += ["## Use", "", "```python", "import zoo", f'model = zoo.load("{name}")',
              f'z = model.encode("{first}", model.preprocess("{first}", raws))  # (B, {model.embed_dim})',
              "```", ""]
    cites = [c for c in [citation, *(o.get("citation", "") for o in origins)] if c]
    if cites:
        lines += ["## Citation", "", *[f"- {c}" for c in dict.fromkeys(cites)], ""]
    if recipe_text:
        lines += ["## Recipe", "", "```toml", recipe_text.strip(), "```", ""]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)
    return str(ModelCard(content))
