"""Every ``recipes/*.toml`` trains: two steps on a small dataset (``tiny_specs.RECIPES`` shortens each),
finite losses, a loadable model. The guard fails for a recipe without a shortening entry."""
from __future__ import annotations

import math

import pytest
from helpers import logged_losses
from tiny_specs import RECIPE_DIR, RECIPE_RUN, RECIPES

import zoo

SHIPPED = sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))


def test_every_shipped_recipe_has_a_short_run():
    assert sorted(RECIPES) == SHIPPED, "tests/tiny_specs.py RECIPES must list exactly recipes/*.toml"


@pytest.mark.parametrize("stem", SHIPPED)
def test_recipe_trains(stem, tmp_path):
    result = zoo.train(RECIPE_DIR / f"{stem}.toml", overrides={**RECIPE_RUN, **RECIPES.get(stem, {})},
                       run_dir=tmp_path / stem)
    losses = logged_losses(result.run_dir)
    assert len(losses) == RECIPE_RUN["run.steps"] and all(map(math.isfinite, losses)), losses
    assert (result.run_dir / "model.safetensors").is_file()
