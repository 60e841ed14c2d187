"""Fine-tuning from a catalog entry: model.init, new towers, freeze / unfreeze, the LiT recipe.

The pretrained start is a tiny open_clip checkpoint written here in open_clip's own layout; an
audio tower is added to its image–text pair and trained with Symile on digits-trimodal while
the pretrained towers stay locked, and the result is saved in the zoo layout and reloaded.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import logged_losses

import zoo
from zoo.errors import RecipeError
from zoo.recipes import load_recipe
from zoo.training.build import apply_freeze, build_model
from zoo.training.trainer import Trainer
from zoo_pretrained import testing as T

ROOT = Path(__file__).resolve().parents[2]
AUDIO = {"encoder": "cnn", "channels": 8, "layers": 2, "out_dim": 32, "n_mels": 32}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    return T.make_openclip_dir(tmp_path_factory.mktemp("oc") / "tiny-openclip")


def trimodal_recipe(tmp_path: Path, init: str, **model) -> Path:
    """Symile over image, caption and audio, starting from ``init`` with a new audio tower."""
    lines = [f'[model]\ninit = "{init}"'] + [f"{k} = {json.dumps(v)}" for k, v in model.items()] + [
        "[model.towers.audio]", *(f"{k} = {json.dumps(v)}" for k, v in AUDIO.items()),
        '[data]\ndataset = "digits-trimodal"\nbatch_size = 16\noptions = { audio = "tones", seconds = 0.3 }',
        '[pairs]\nstrategy = "paired"\noptions = { fields = ["image", "caption", "audio"] }',
        '[objective]\nname = "symile"', "[optim]\nlr = 3e-3\nwarmup_steps = 0\nschedule = \"constant\"",
        "[run]\nsteps = 8\nlog_every = 1\nprogress = false\nseed = 0"]
    path = tmp_path / "recipe.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_new_audio_tower_on_a_pretrained_pair_trains_end_to_end(pretrained, tmp_path):
    path = trimodal_recipe(tmp_path, f"openclip:{pretrained}", freeze=["towers.image", "towers.text"])
    t = Trainer(load_recipe(path), run_dir=tmp_path / "run")
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    ref = zoo.load(f"openclip:{pretrained}")
    assert all(torch.equal(before[k], v) for k, v in ref.state_dict().items() if k != "logit_scale")
    assert sorted(t.model.towers) == ["audio", "image", "text"] and "new towers ['audio']" in t.model.source
    t.fit()
    after = t.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("towers.image.", "towers.text.")))
    assert not torch.equal(before["towers.audio.projection.weight"], after["towers.audio.projection.weight"])
    curve = logged_losses(tmp_path / "run")
    assert len(curve) == 8 and sum(curve[-3:]) < sum(curve[:3])
    back = zoo.load(f"local-dir:{tmp_path / 'run'}")  # saved in the zoo layout, rebuilt from config + assets
    config = json.loads((tmp_path / "run" / "config.json").read_text())["model"]["towers"]
    assert {k: v["encoder"] for k, v in config.items()} == {"image": "open_clip_visual", "text": "open_clip_text",
                                                            "audio": "cnn"}
    t.model.eval()
    ds = zoo.create_dataset("digits-trimodal", split="test", audio="tones", seconds=0.3)
    rows = [ds[i] for i in range(4)]
    with torch.no_grad():
        for tower, field in (("image", "image"), ("text", "caption"), ("audio", "audio")):
            raws = [r[field] for r in rows]
            assert torch.allclose(back.encode(tower, back.preprocess(tower, raws)),
                                  t.model.encode(tower, t.model.preprocess(tower, raws)), atol=1e-6)


def test_unfreeze_reopens_a_layer_and_locked_parts_run_in_eval_mode(pretrained, tmp_path):
    block = "towers.text.encoder.text.transformer.resblocks.1"
    recipe = load_recipe(trimodal_recipe(tmp_path, f"openclip:{pretrained}", freeze=["towers.text", "towers.image"],
                                         unfreeze=[block]))
    model = build_model(recipe)
    apply_freeze(model, recipe)
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    assert all(g == n.startswith(block + ".") for n, g in grads.items() if n.startswith("towers.text."))
    assert not any(g for n, g in grads.items() if n.startswith("towers.image."))
    assert all(g for n, g in grads.items() if n.startswith("towers.audio."))
    model.train()
    text = model.towers["text"].encoder.text
    model.embed_batch("text", model.preprocess("text", ["one", "two"]))
    model.embed_batch("image", model.preprocess("image", [torch.rand(1, 8, 8), torch.rand(1, 8, 8)]))
    assert not model.towers["image"].training and not text.transformer.resblocks[0].training
    assert text.transformer.resblocks[1].training and model.towers["audio"].training
    bad = load_recipe(trimodal_recipe(tmp_path, f"openclip:{pretrained}", unfreeze=["towers.nothing"]))
    with pytest.raises(RecipeError, match="model.unfreeze: no parameter starts with 'towers.nothing'"):
        apply_freeze(build_model(bad), bad)


def test_init_towers_cannot_be_redefined_and_a_bias_can_be_added(pretrained, tmp_path):
    path = trimodal_recipe(tmp_path, f"openclip:{pretrained}", logit_bias=-10.0)
    text = path.read_text().replace("[model.towers.audio]", '[model.towers.text]\nencoder = "bow"\n[model.towers.audio]')
    (tmp_path / "clash.toml").write_text(text)
    with pytest.raises(RecipeError, match=r"model.towers \['text'\] already come from model.init"):
        build_model(load_recipe(tmp_path / "clash.toml"))
    model = build_model(load_recipe(path))
    assert model.logit_bias.item() == -10.0 and model.config.logit_bias == -10.0
    assert model.logit_scale.item() == pytest.approx(2.5)  # the pretrained temperature, not the recipe default


def test_digits_lit_recipe_trains(tmp_path):
    over = {"run.steps": 5, "run.log_every": 1, "run.progress": False, "data.batch_size": 16, "eval.tasks": [],
            "optim.warmup_steps": 0, "optim.schedule": "constant"}
    result = zoo.train(ROOT / "recipes" / "digits-lit.toml", overrides=over, run_dir=tmp_path / "lit")
    curve = logged_losses(tmp_path / "lit")
    assert len(curve) == 5 and curve[-1] < curve[0]
    st = zoo.load("st:all-MiniLM-L6-v2")
    frozen = {k: v for k, v in result.model.state_dict().items() if k.startswith("towers.text.")}
    assert frozen and all(torch.equal(v, st.state_dict()[k]) for k, v in frozen.items())
