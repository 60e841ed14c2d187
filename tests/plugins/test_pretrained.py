"""The pretrained catalog: openclip:, hf: and st: sources against the native libraries, offline.

Every checkpoint is tiny, random and written here in its library's own layout
(zoo_pretrained.testing); zoo.load must give the native library's embeddings (1e-5) on the same
inputs, carry the temperature (and SigLIP's bias), refuse partial or mismatched weights, and
round-trip through save_pretrained → local-dir even after the source is gone.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import TEXTS, close, images

import zoo
from zoo.errors import CheckpointError, PluginError, UnknownNameError
from zoo_pretrained import testing as T


# -- catalog: listing, info, names --------------------------------------------------------------------------
def test_list_models_covers_every_open_clip_tag_and_the_other_sources():
    import open_clip
    names = zoo.list_models()
    assert {f"open_clip:{a}/{t}" for a, t in open_clip.list_pretrained()} <= set(names)
    assert {"hf:openai/clip-vit-base-patch32", "hf:google/siglip-base-patch16-224", "hf:laion/clap-htsat-unfused",
            "st:all-MiniLM-L6-v2"} <= set(names)
    assert zoo.list_models("open_clip:ViT-B-32/*") == sorted(
        f"open_clip:ViT-B-32/{t}" for t in open_clip.list_pretrained_tags_by_model("ViT-B-32"))


def test_info_reports_modalities_size_license_and_citation(dirs):
    oc = zoo.hub.catalog.info("openclip:ViT-B-32/openai")  # from open_clip's tables, no download
    assert oc["modalities"] == ["image", "text"] and oc["embed_dim"] == 512 and oc["quick_gelu"] is True
    assert "Radford" in oc["citation"] and oc["license"].startswith("unknown") and "huggingface.co" in oc["license"]
    st = zoo.hub.catalog.info("st:all-MiniLM-L6-v2")
    assert (st["modalities"], st["embed_dim"], st["license"]) == (["text"], 384, "apache-2.0")
    assert "Sentence-BERT" in st["citation"]
    hf = zoo.hub.catalog.info(f"hf:{dirs['clap']}")
    assert hf["modalities"] == ["audio", "text"] and hf["embed_dim"] == 16
    assert hf["license"].startswith("unknown") and "Contrastive Language-Audio" in hf["citation"]


def test_info_cli_prints_the_source_info(capsys):
    from zoo.cli import main
    assert main(["info", "openclip:ViT-B-16-SigLIP/webli"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["embed_dim"] == 768 and "Sigmoid Loss" in out["citation"] and out["source"] == "open_clip"


@pytest.mark.parametrize("name", ["./runs/x", "org/repo", "~/model"])
def test_path_like_names_without_a_prefix_are_rejected_with_the_prefixes(name):
    with pytest.raises(UnknownNameError) as err:
        zoo.load(name)
    msg = str(err.value)
    assert "ambiguous" in msg and all(p in msg for p in (f"local-dir:{name}", f"hf-hub:{name}", f"hf:{name}"))


def test_an_existing_directory_without_prefix_is_ambiguous_too(tmp_path):
    with pytest.raises(UnknownNameError, match="no source prefix"):
        zoo.load(str(tmp_path))


def test_an_unknown_bare_name_lists_the_source_prefixes():
    with pytest.raises(UnknownNameError, match="open_clip:.*st:|st:.*open_clip:"):
        zoo.load("no-such-model-anywhere")


# -- st: sentence-transformers -----------------------------------------------------------------------------
def test_st_minilm_equals_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    from zoo_pretrained.st_source import bundled
    ref = SentenceTransformer(str(bundled("all-MiniLM-L6-v2")), device="cpu")
    texts = TEXTS + ["The quick brown fox jumps over the lazy dog. " * 60]  # longer than max_seq_length
    with torch.no_grad():
        z = minilm.encode("text", minilm.preprocess("text", texts))
        raw = minilm.encode("text", minilm.preprocess("text", texts), normalize=False)
    expected = ref.encode(texts, convert_to_tensor=True, batch_size=2)
    assert close(z, expected) and close(raw, expected)  # the Normalize module is part of the tower
    assert minilm.modalities == ["text"] and minilm.embed_dim == 384
    assert minilm.source.startswith("st:all-MiniLM-L6-v2")


def test_st_roundtrip_and_architecture_only(minilm, tmp_path):
    minilm.save_pretrained(tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "assets" / "text" / "st_config.json").read_text())
    assert spec["pooling"] == ["mean"] and spec["normalize"] is True and spec["max_seq_length"] == 256
    back = zoo.load(f"local-dir:{tmp_path / 'm'}")
    random = zoo.load("st:all-MiniLM-L6-v2", pretrained=False)
    batch = minilm.preprocess("text", TEXTS)
    with torch.no_grad():
        z, zb, zr = (m.encode("text", batch) for m in (minilm, back, random))
    assert close(z, zb, 1e-6) and not close(z, zr, 1e-2)
    assert "architecture only" in random.source


def test_st_layout_readers(tmp_path):
    from zoo_pretrained.st import dense_options, pool, pooling_modes, read_spec
    assert pooling_modes({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}) == ["cls", "mean"]
    assert pooling_modes({"pooling_mode": ["max", "lasttoken"]}) == ["max", "lasttoken"]
    with pytest.raises(PluginError, match="residual"):
        dense_options({"in_features": 4, "out_features": 4, "use_residual": True})
    tokens = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert close(pool(tokens, mask, ["mean"])[0], tokens[0, :3].mean(0))
    assert close(pool(tokens, mask, ["lasttoken", "max"])[0], torch.cat([tokens[0, 2], tokens[0, :3].max(0).values]))
    (tmp_path / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type":
                                                        "sentence_transformers.models.StaticEmbedding"}]))
    with pytest.raises(PluginError, match="StaticEmbedding"):
        read_spec(tmp_path)


def test_st_unknown_name_offline_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        zoo.load("st:no-such-org/no-such-sentence-model")


# -- hf: transformers CLIP, SigLIP, CLAP ---------------------------------------------------------------------
def _native(family, d):
    import transformers as tf
    cls = {"clip": tf.CLIPModel, "siglip": tf.SiglipModel, "clap": tf.ClapModel}[family]
    return cls.from_pretrained(d).eval(), tf.AutoTokenizer.from_pretrained(d)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_hf_image_text_models_equal_transformers(dirs, family):
    import transformers as tf
    model = zoo.load(f"hf:{dirs[family]}")
    native, tok = _native(family, dirs[family])
    proc = tf.AutoImageProcessor.from_pretrained(dirs[family])
    ims = images(4)
    pad = "max_length" if family == "siglip" else True
    with torch.no_grad():
        zt = model.encode("text", model.preprocess("text", TEXTS))
        rt = native.get_text_features(**tok(TEXTS, padding=pad, return_tensors="pt")).pooler_output
        pixels = proc(images=[i.expand(3, -1, -1) for i in ims], do_rescale=False, return_tensors="pt",
                      input_data_format="channels_first")["pixel_values"]
        zi = model.encode("image", model.preprocess("image", ims))
        ri = native.get_image_features(pixel_values=pixels).pooler_output
    assert close(model.preprocess("image", ims), pixels)
    assert close(zt, F.normalize(rt, dim=-1)) and close(zi, F.normalize(ri, dim=-1))
    assert model.logit_scale.item() == pytest.approx(2.0) and model.scale().item() == pytest.approx(math.exp(2.0))
    if family == "siglip":
        assert model.logit_bias.item() == pytest.approx(-3.0)
        logits = zi @ zt.T * model.scale() + model.logit_bias  # SigLIP's logits_per_image
        ref = native(**tok(TEXTS, padding=pad, return_tensors="pt"), pixel_values=pixels)
        assert close(logits.detach(), ref.logits_per_image.detach(), 1e-4)
    else:
        assert model.logit_bias is None
    assert {t.config.projection for t in model.towers.values()} == {"none"}


def test_hf_clap_equals_transformers_on_16k_raws(dirs):
    import torchaudio.functional as AF
    model = zoo.load(f"hf:{dirs['clap']}")
    native, tok = _native("clap", dirs["clap"])
    from transformers import AutoFeatureExtractor
    fe = AutoFeatureExtractor.from_pretrained(dirs["clap"])
    g = torch.Generator().manual_seed(0)
    waves = [0.1 * torch.randn(16000, generator=g), 0.1 * torch.randn(6000, generator=g)]  # zoo raws: 16 kHz
    with torch.no_grad():
        batch = model.preprocess("audio", waves)
        ref = fe([AF.resample(w, 16000, 48000).numpy() for w in waves], sampling_rate=48000, return_tensors="pt")
        za = model.encode("audio", batch)
        ra = native.get_audio_features(input_features=ref["input_features"], is_longer=ref["is_longer"]).pooler_output
        zt = model.encode("text", model.preprocess("text", TEXTS))
        rt = native.get_text_features(**tok(TEXTS, padding=True, return_tensors="pt")).pooler_output
    assert close(batch["input_features"], ref["input_features"]) and close(za, ra) and close(zt, rt)
    assert model.modalities == ["audio", "text"] and "logit_scale_t" in model.source


def test_hf_roundtrip_without_the_source(dirs, tmp_path):
    src = T.copy_tree(dirs["clip"], tmp_path / "clip")
    model = zoo.load(f"hf:{src}")
    model.save_pretrained(tmp_path / "zoo")
    assert {"config.json", "tokenizer.json"} <= {p.name for p in (tmp_path / "zoo/assets/text").iterdir()}
    shutil.rmtree(src)  # the tower must rebuild from the checkpoint's assets alone
    back = zoo.load(f"local-dir:{tmp_path / 'zoo'}")
    ims = images(2)
    with torch.no_grad():
        for m in ("text", "image"):
            raws = TEXTS if m == "text" else ims
            assert close(back.encode(m, back.preprocess(m, raws)), model.encode(m, model.preprocess(m, raws)), 1e-6)
    assert back.logit_scale.item() == model.logit_scale.item()


def test_hf_architecture_only_and_strict_errors(dirs, tmp_path):
    random = zoo.load(f"hf:{dirs['clip']}", pretrained=False)
    trained = zoo.load(f"hf:{dirs['clip']}")
    assert not torch.equal(random.towers["text"].encoder.text_projection.weight,
                           trained.towers["text"].encoder.text_projection.weight)
    no_weights = T.copy_tree(dirs["clip"], tmp_path / "no_weights")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="pretrained weights"):
        zoo.load(f"hf:{no_weights}")
    wrong = T.copy_tree(dirs["clip"], tmp_path / "wrong")
    cfg = json.loads((wrong / "config.json").read_text())
    cfg["projection_dim"] = 24  # the weights hold 16
    (wrong / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="projection"):
        zoo.load(f"hf:{wrong}")


def test_hf_rejects_a_model_type_it_does_not_wrap(tmp_path):
    from zoo_pretrained.st_source import bundled
    with pytest.raises(UnknownNameError, match="bert.*st:"):
        zoo.load(f"hf:{bundled('all-MiniLM-L6-v2')}")


# -- openclip: -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["openclip", "openclip_custom"])
def test_openclip_local_dir_equals_open_clip(dirs, key):
    import open_clip
    from PIL import Image
    d = dirs[key]
    model = zoo.load(f"openclip:{d}")
    native = open_clip.create_model(f"local-dir:{d}", require_pretrained=True).eval()
    _, _, transform = open_clip.create_model_and_transforms(f"local-dir:{d}")
    tok = open_clip.get_tokenizer(f"local-dir:{d}")
    ims = [i.expand(3, -1, -1) for i in images(4) if i.shape[-1] == 32]
    pil = [Image.fromarray((i.permute(1, 2, 0) * 255).round().byte().numpy()) for i in ims]
    with torch.no_grad():
        x = model.preprocess("image", pil)
        assert close(x, torch.stack([transform(p) for p in pil]))  # same size: no resampling in the way
        assert close(model.encode("image", x), native.encode_image(x, normalize=True))
        assert close(model.encode("text", model.preprocess("text", TEXTS)), native.encode_text(tok(TEXTS), True))
    assert model.logit_scale.item() == pytest.approx(2.5)
    assert (model.logit_bias is None) == (key == "openclip")
    if key == "openclip_custom":
        assert model.logit_bias.item() == pytest.approx(-10.0) and "CustomTextCLIP" in model.source


def test_openclip_arch_with_a_checkpoint_file_and_its_roundtrip(dirs, tmp_path):
    import open_clip
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "zoo-tiny-test.json").write_text(json.dumps(T.OPENCLIP_CFG))
    open_clip.add_model_config(tmp_path / "cfg")
    weights = dirs["openclip"] / "open_clip_model.safetensors"
    model = zoo.load(f"openclip:zoo-tiny-test/{weights}")
    ref = zoo.load(f"openclip:{dirs['openclip']}")
    batch = model.preprocess("text", TEXTS)
    with torch.no_grad():
        assert close(model.encode("text", batch), ref.encode("text", batch))
    model.save_pretrained(tmp_path / "zoo")
    back = zoo.load(f"local-dir:{tmp_path / 'zoo'}")
    with torch.no_grad():
        assert close(back.encode("text", back.preprocess("text", TEXTS)), model.encode("text", batch), 1e-6)
    assert json.loads((tmp_path / "zoo/assets/text/open_clip_config.json").read_text())["model_cfg"]["embed_dim"] == 16


def test_openclip_names_tags_and_quick_gelu():
    from zoo_pretrained.openclip_source import parse
    p = parse("ViT-B-32/openai")
    assert p["model_cfg"]["quick_gelu"] is True  # open_clip only warns; the openai weights need QuickGELU
    assert parse("ViT-B-16-SigLIP/webli")["preprocess_cfg"]["resize_mode"] == "squash"
    with pytest.raises(UnknownNameError, match="laion2b_s34b_b79k"):
        zoo.load("openclip:ViT-B-32/laion2b_s34b_b80k")
    with pytest.raises(UnknownNameError, match="ViT-B-32"):
        zoo.load("openclip:ViT-B-33/openai")


def test_openclip_failures_are_errors_never_random_weights(dirs, tmp_path):
    with pytest.raises(CheckpointError, match="could not be loaded"):  # offline and not cached
        zoo.load("openclip:RN50/yfcc15m")
    bad = T.copy_tree(dirs["openclip"], tmp_path / "bad")
    cfg = json.loads((bad / "open_clip_config.json").read_text())
    cfg["model_cfg"]["vision_cfg"]["width"] = 48  # the weights hold width 32
    (bad / "open_clip_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="size mismatch|visual"):
        zoo.load(f"openclip:{bad}")
    (bad / "open_clip_model.safetensors").unlink()
    with pytest.raises(CheckpointError):
        zoo.load(f"openclip:{bad}")
    arch = zoo.load(f"openclip:{bad}", pretrained=False)  # the architecture alone is fine
    assert arch.towers["image"].encoder.visual.conv1.weight.shape[0] == 48 and "architecture only" in arch.source


@pytest.mark.parametrize("key", ["clip", "siglip", "clap", "openclip_custom", "st"])
def test_every_parameter_of_a_wrapped_tower_trains_with_checkpointing(dirs, tmp_path, key):
    """No unused parameter (DDP would stall on one); run.grad_checkpointing works on each tower."""
    name = f"st:{T.make_st_dir(tmp_path / 'st')}" if key == "st" else \
        f"{'openclip' if key.startswith('openclip') else 'hf'}:{dirs[key]}"
    model = zoo.load(name).train()
    raws = {"text": TEXTS, "image": images(2), "audio": [0.1 * torch.randn(8000), 0.1 * torch.randn(16000)]}
    for tower in model.towers.values():
        if key == "clap":  # transformers' CLAP has none
            with pytest.raises(ValueError, match="run.grad_checkpointing = false"):
                tower.encoder.set_grad_checkpointing(True)
            continue
        tower.encoder.set_grad_checkpointing(True)
    loss = sum(model.embed_batch(m, model.preprocess(m, raws[m])).sum() for m in model.modalities)
    loss.backward()
    unused = [n for n, p in model.named_parameters() if n.startswith("towers.") and p.grad is None]
    assert not unused


def test_copy_weights_names_missing_and_unexpected_keys():
    from zoo_pretrained._weights import copy_weights
    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    with pytest.raises(CheckpointError, match=r"missing \[0.bias\].*unexpected \[0.extra\]"):
        copy_weights(model, {"0.weight": torch.zeros(3, 2), "0.extra": torch.zeros(1)}, "t")
    with pytest.raises(CheckpointError, match="shape mismatches"):
        copy_weights(model, {"0.weight": torch.zeros(2, 2), "0.bias": torch.zeros(3)}, "t")


def test_docs_samples_run_offline(tmp_path, monkeypatch):
    """The offline python samples of docs/pretrained.md (those loading Hub names or pushing need a network)."""
    import re
    text = (Path(__file__).resolve().parents[2] / "docs" / "pretrained.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "laion2b" not in b and "push_to_hub(" not in b]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "docs/pretrained.md", "exec"), scope)  # noqa: S102 - our own documentation
    assert scope["z"].shape == (3, 384) and scope["logits"].shape == (2, 2)
    assert scope["again"].modalities == ["image", "text"] and len(scope["sha"]) == 40
