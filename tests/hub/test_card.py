"""Model cards: huggingface_hub metadata (licence, base model, datasets, model-index) that survives fine-tuning."""
from __future__ import annotations

from huggingface_hub import ModelCard

import zoo
from zoo.model import TowerConfig
from zoo.training.build import add_towers

RECIPE = '[data]\ndataset = "digits"\neval_split = "test"\n[objective]\nname = "clip"\n'


def test_a_finetuned_minilm_keeps_its_origin_and_licence(tmp_path):
    model = zoo.load("st:all-MiniLM-L6-v2")
    add_towers(model, {"image": TowerConfig("image", "mlp", {"in_shape": [1, 8, 8], "hidden": 16, "out_dim": 16})})
    model.save_pretrained(tmp_path / "lit", recipe_text=RECIPE,
                          metrics={"zero_shot/top1": 0.75, "retrieval/image->caption R@1": 0.5, "steps": 10})
    resaved = zoo.load(f"local-dir:{tmp_path / 'lit'}")  # a re-save keeps it too
    resaved.save_pretrained(tmp_path / "again", recipe_text=RECIPE, metrics={"zero_shot/top1": 0.75})
    for run in ("lit", "again"):
        card = ModelCard.load(tmp_path / run / "README.md")
        assert card.data.license == "apache-2.0"
        assert card.data.base_model == ["sentence-transformers/all-MiniLM-L6-v2"]
        assert card.data.datasets == ["digits"] and card.data.library_name == "zoo"
        scores = {r.metric_type: r.metric_value for r in card.data.eval_results}
        assert scores["zero_shot/top1"] == 0.75 and "steps" not in scores
        assert all(r.dataset_split == "test" for r in card.data.eval_results)
        assert "Radford" in card.text and "Sentence-BERT" in card.text  # the objective's and the origin's citations


def test_a_model_trained_from_scratch_claims_no_licence(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path / "m", recipe_text=RECIPE)
    card = ModelCard.load(tmp_path / "m" / "README.md")
    assert card.data.license is None and card.data.base_model is None and "Objective: `clip`" in card.text


def test_a_run_from_a_reproducing_recipe_cites_its_row_of_the_results_table():
    """recipes/xor-symile.toml is the setting of docs/results.md's Symile row: its model card says so."""
    from pathlib import Path

    from zoo.hub.card import model_card
    root = Path(__file__).resolve().parents[2]
    text = (root / "recipes" / "xor-symile.toml").read_text()
    model = zoo.create_model(towers={"a": {"modality": "vector", "encoder": "mlp", "in_dim": 4, "hidden": 8,
                                           "out_dim": 8}}, embed_dim=4)
    card = model_card(model, recipe_text=text)
    assert "Reproduces: `docs/results.md#row-symile`" in card
    assert '<a id="row-symile"></a>' in (root / "docs" / "results.md").read_text()  # the anchor exists
    assert "Reproduces" not in model_card(model, recipe_text=text.replace("reproduces", "# reproduces"))
