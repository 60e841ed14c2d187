"""Using pretrained models: sentence-transformers prompts, bare transformers folders, the video towers
(X-CLIP, VideoMAE) and every wrapped tower in bf16 — against the native libraries, offline, on tiny
checkpoints written in each library's own layout (zoo_pretrained.testing)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import TEXTS, close, images

import zoo
from zoo.errors import CheckpointError, UnknownNameError
from zoo_pretrained import testing as T


# -- st: prompts, options ----------------------------------------------------------------------------------
def minilm_copy(directory: Path, **model_config) -> Path:
    """The bundled MiniLM folder (weights linked, not copied) with config_sentence_transformers.json updated."""
    from zoo_pretrained.st_source import bundled
    src = bundled("all-MiniLM-L6-v2")
    shutil.copytree(src, directory, ignore=shutil.ignore_patterns("model.safetensors"))
    (directory / "model.safetensors").symlink_to(src / "model.safetensors")
    path = directory / "config_sentence_transformers.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **model_config}))
    return directory


def test_st_prompts_and_default_prompt_equal_sentence_transformers(minilm, tmp_path):
    from sentence_transformers import SentenceTransformer
    d = minilm_copy(tmp_path / "prompted", prompts={"query": "query: ", "passage": "passage: "},
                    default_prompt_name="query")
    ref = SentenceTransformer(str(d), device="cpu")
    model = zoo.load(f"st:{d}")
    texts = TEXTS + ["The quick brown fox jumps over the lazy dog. " * 3]
    for name in (None, "passage"):
        want = ref.encode(texts, convert_to_tensor=True, prompt_name=name, batch_size=2)
        assert close(model.encode("text", texts, prompt_name=name, batch_size=2), want)
    plain = minilm.encode("text", texts)
    assert not close(plain, model.encode("text", texts), 1e-2)  # the default prompt is applied, not ignored
    with pytest.raises(UnknownNameError, match="passage"):
        model.encode("text", texts, prompt_name="pasage")
    model.save_pretrained(tmp_path / "saved")  # the prompts travel with a zoo checkpoint
    back = zoo.load(f"local-dir:{tmp_path / 'saved'}")
    assert close(back.encode("text", texts, prompt_name="passage"), model.encode("text", texts, prompt_name="passage"))


def test_st_batched_tokenisation_equals_preprocess(minilm):
    enc = minilm.towers["text"].encoder
    items, lengths = enc.preprocess_items(TEXTS)
    batch, want = enc.collate_items(items), enc.preprocess(TEXTS)
    assert lengths == want["attention_mask"].sum(1).tolist() and set(batch) == set(want)
    assert all(torch.equal(batch[k], want[k]) for k in want)


@pytest.mark.parametrize("option, match", [({"truncate_dim": 128}, "truncate_dim"),
                                           ({"similarity_fn_name": "euclidean"}, "similarity_fn_name"),
                                           ({"model_type": "SparseEncoder"}, "SparseEncoder"),
                                           ({"prompts": {"q": "q: "}, "default_prompt_name": "x"}, "default_prompt_name")])
def test_st_options_the_loader_cannot_express_are_errors(tmp_path, option, match):
    d = minilm_copy(tmp_path / "m", **option)
    with pytest.raises(CheckpointError, match=match):
        zoo.load(f"st:{d}")


# -- hf: bare folders, video towers, bf16 ------------------------------------------------------------------
@pytest.mark.parametrize("family", ["clip", "siglip", "clap"])
def test_hf_bare_folder_gets_default_preprocessing_or_names_the_missing_file(dirs, tmp_path, family):
    """save_pretrained without the processor: the family's default image/audio processor; without the
    tokenizer too: a CheckpointError naming the tokenizer files (never an OSError, never an empty vocabulary)."""
    bare = T.copy_tree(dirs[family], tmp_path / "bare")
    for name in ("processor_config.json", "preprocessor_config.json"):
        (bare / name).unlink(missing_ok=True)
    model, full = zoo.load(f"hf:{bare}"), zoo.load(f"hf:{dirs[family]}")
    other = next(m for m in model.modalities if m != "text")
    raws = images(2) if other == "image" else [0.1 * torch.randn(16000), 0.1 * torch.randn(8000)]
    assert model.encode(other, raws).shape == (2, model.embed_dim)
    assert close(model.encode("text", TEXTS), full.encode("text", TEXTS))
    if other == "image":  # the default is sized from config.json: same pixels as the saved processor here
        assert close(model.encode("image", raws), full.encode("image", raws), 1e-4)
    for f in bare.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            f.unlink()
    with pytest.raises(CheckpointError, match="tokenizer"):
        zoo.load(f"hf:{bare}")


def test_hf_video_towers_xclip_and_videomae_equal_transformers(tmp_path):
    import transformers as tf
    g = torch.Generator().manual_seed(0)
    videos = [torch.rand(6, 3, 40, 48, generator=g), torch.rand(3, 1, 32, 32, generator=g)]  # sampled to 4 frames
    xdir, vdir = T.make_xclip_dir(tmp_path / "xclip"), T.make_videomae_dir(tmp_path / "videomae")
    xclip, videomae = zoo.load(f"hf:{xdir}"), zoo.load(f"hf:{vdir}")
    assert xclip.modalities == ["video", "text"] and "prompts_" in xclip.source and videomae.modalities == ["video"]
    native_x, native_v = tf.XCLIPModel.from_pretrained(xdir).eval(), tf.VideoMAEModel.from_pretrained(vdir).eval()
    frames = [list(v[torch.linspace(0, v.shape[0] - 1, 4).round().long()].expand(-1, 3, -1, -1)) for v in videos]
    pixels = tf.XCLIPProcessor.from_pretrained(xdir).image_processor.preprocess(
        frames, do_rescale=False, input_data_format="channels_first", return_tensors="pt")["pixel_values"]
    assert close(xclip.preprocess("video", videos), pixels)  # the native processor on uniformly sampled frames
    tok = tf.XCLIPProcessor.from_pretrained(xdir).tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert close(xclip.encode("video", videos, normalize=False), native_x.get_video_features(pixels).pooler_output)
        assert close(xclip.encode("text", TEXTS, normalize=False), native_x.get_text_features(**tok).pooler_output)
        want = native_v(pixel_values=videomae.preprocess("video", videos)).last_hidden_state.mean(1)
        assert close(videomae.encode("video", videos, normalize=False), want)
    for model in (xclip, videomae):
        model.save_pretrained(tmp_path / "saved")
        back = zoo.load(f"local-dir:{tmp_path / 'saved'}")
        assert close(back.encode("video", videos), model.encode("video", videos), 1e-6)
        shutil.rmtree(tmp_path / "saved")


@pytest.mark.parametrize("key", ["clip", "siglip", "clap", "openclip", "openclip_custom", "xclip", "videomae", "st"])
def test_every_wrapped_tower_encodes_in_bf16(dirs, tmp_path, key):
    made = {"xclip": T.make_xclip_dir, "videomae": T.make_videomae_dir, "st": T.make_st_dir}
    name = f"st:{made[key](tmp_path / key)}" if key == "st" else \
        f"hf:{made[key](tmp_path / key)}" if key in made else f"{'openclip' if key.startswith('openclip') else 'hf'}:{dirs[key]}"
    raws = {"text": TEXTS, "image": images(3), "audio": [0.1 * torch.randn(16000), 0.1 * torch.randn(8000)],
            "video": [torch.rand(4, 3, 32, 32), torch.rand(5, 3, 36, 40)]}
    full, half = zoo.load(name), zoo.load(name, dtype=torch.bfloat16)
    for m in full.modalities:
        z = half.encode(m, raws[m])
        assert z.dtype == torch.bfloat16 and torch.isfinite(z).all()
        assert F.cosine_similarity(z.float(), full.encode(m, raws[m]), dim=-1).min() > 0.95, m
