"""Tiny, randomly initialised checkpoints in each library's *native* layout, and a Hub cache.

The machines that run the tests cannot reach the Hub, so the tests (and the runnable samples of
``docs/pretrained.md``) build the files each source reads, exactly as the native library writes
them, and load them offline::

    d = make_clip_dir(tmp / "clip")                        # transformers save_pretrained (CLIP)
    model = zoo.load(f"hf:{d}")
    sha = add_to_hub_cache(tmp / "cache", "org/tiny-clip", d)   # models--org--tiny-clip/{refs,snapshots,blobs}
    # HF_HUB_CACHE=tmp/cache HF_HUB_OFFLINE=1 → zoo.load("hf:org/tiny-clip@" + sha)

Sizes are tiny (width 32, 2 layers, 32×32 images) so each builds in well under a second.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

TEXT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
VISION = {**TEXT, "image_size": 32, "patch_size": 8}


def clip_tokenizer(n_merges: int = 300, max_length: int = 16):
    """A CLIP BPE tokenizer (transformers) with the first ``n_merges`` merges of CLIP's own BPE table."""
    import open_clip.tokenizer as oct
    from transformers import CLIPTokenizer
    with gzip.open(oct.default_bpe()) as f:
        lines = f.read().decode("utf-8").split("\n")[1:1 + n_merges]
    merges = [tuple(line.split()) for line in lines]
    base = list(oct.bytes_to_unicode().values())
    vocab = base + [b + "</w>" for b in base] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges, model_max_length=max_length)


def byte_tokenizer(max_length: int = 32):
    """A RoBERTa-style byte-level tokenizer with no merges (one token per byte), as CLAP's text side uses."""
    import open_clip.tokenizer as oct
    from transformers import RobertaTokenizer
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {t: i for i, t in enumerate(specials + list(oct.bytes_to_unicode().values()))}
    return RobertaTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def make_clip_dir(directory: str | os.PathLike, seed: int = 0) -> Path:
    """``CLIPModel`` + ``CLIPProcessor`` files (config.json, model.safetensors, tokenizer, preprocessor)."""
    import transformers as tf
    tok = clip_tokenizer()
    text = dict(TEXT, vocab_size=len(tok), max_position_embeddings=16, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = tf.CLIPConfig(text_config=text, vision_config=VISION, projection_dim=16)
    images = tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return _save(tf.CLIPModel, config, tf.CLIPProcessor(image_processor=images, tokenizer=tok), directory, seed)


def make_siglip_dir(directory: str | os.PathLike, seed: int = 0) -> Path:
    """``SiglipModel`` files. The tokenizer is the tiny CLIP BPE (SigLIP's own needs sentencepiece)."""
    import transformers as tf
    tok = clip_tokenizer()
    text = dict(TEXT, vocab_size=len(tok), max_position_embeddings=16, pad_token_id=tok.pad_token_id,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    config = tf.SiglipConfig(text_config=text, vision_config=VISION)
    images = tf.SiglipImageProcessor(size={"height": 32, "width": 32})
    directory = _save(tf.SiglipModel, config, None, directory, seed)
    images.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def make_clap_dir(directory: str | os.PathLike, seed: int = 0) -> Path:
    """``ClapModel`` + ``ClapProcessor`` files: a tiny HTSAT audio side (1 s clips at 48 kHz)."""
    import transformers as tf
    tok = byte_tokenizer()
    text = dict(TEXT, vocab_size=len(tok), max_position_embeddings=34, pad_token_id=tok.pad_token_id,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, type_vocab_size=1)
    audio = {"hidden_size": 32, "patch_embeds_hidden_size": 16, "depths": [1, 1], "num_attention_heads": [2, 2],
             "spec_size": 128, "num_mel_bins": 64, "window_size": 4}
    config = tf.ClapConfig(text_config=text, audio_config=audio, projection_dim=16)
    features = tf.ClapFeatureExtractor(max_length_s=1, truncation="rand_trunc")
    return _save(tf.ClapModel, config, tf.ClapProcessor(feature_extractor=features, tokenizer=tok), directory, seed)


def _save(cls, config, processor, directory, seed: int) -> Path:
    directory = Path(directory)
    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():  # non-default temperatures, so a test notices one that is not carried over
        for name in ("logit_scale", "logit_scale_a", "logit_scale_t", "logit_bias"):
            if hasattr(model, name):
                getattr(model, name).fill_(2.0 if name != "logit_bias" else -3.0)
    model.save_pretrained(directory)
    if processor is not None:
        processor.save_pretrained(directory)
    return directory


def make_st_dir(directory: str | os.PathLike, *, dense: int | None = 24, seed: int = 0) -> Path:
    """sentence-transformers' folder layout: a tiny BERT (+ the bundled MiniLM tokenizer), mean pooling,
    a Dense layer (Tanh) when ``dense`` is set, and Normalize — as ``SentenceTransformer.save`` writes it."""
    import transformers as tf
    from safetensors.torch import save_file

    from .st_source import bundled
    directory = Path(directory)
    tok = tf.AutoTokenizer.from_pretrained(bundled("all-MiniLM-L6-v2"), trust_remote_code=False)
    torch.manual_seed(seed)
    bert = tf.BertModel(tf.BertConfig(vocab_size=len(tok), max_position_embeddings=64, **TEXT))
    bert.save_pretrained(directory)
    tok.save_pretrained(directory)
    modules = [("", "Transformer"), ("1_Pooling", "Pooling")] + ([("2_Dense", "Dense")] if dense else []) + \
        [(f"{2 + bool(dense)}_Normalize", "Normalize")]
    _json(directory / "modules.json", [{"idx": i, "name": str(i), "path": path,
                                        "type": f"sentence_transformers.models.{kind}"} for i, (path, kind)
                                       in enumerate(modules)])
    _json(directory / "sentence_bert_config.json", {"max_seq_length": 48, "do_lower_case": False})
    _json(directory / "1_Pooling" / "config.json", {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    if dense:
        _json(directory / "2_Dense" / "config.json", {"in_features": 32, "out_features": dense, "bias": True,
                                                      "activation_function": "torch.nn.modules.activation.Tanh"})
        layer = torch.nn.Linear(32, dense)
        save_file({"linear.weight": layer.weight.detach(), "linear.bias": layer.bias.detach()},
                  str(directory / "2_Dense" / "model.safetensors"))
    (directory / modules[-1][0]).mkdir(exist_ok=True)
    return directory


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), "utf-8")


OPENCLIP_CFG = {"embed_dim": 16,
                "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
                "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


def make_openclip_dir(directory: str | os.PathLike, *, custom_text: bool = False, logit_bias: float | None = None,
                      seed: int = 0, preprocess_cfg: dict | None = None) -> Path:
    """open_clip's local layout: ``open_clip_config.json`` + ``open_clip_model.safetensors``."""
    import open_clip
    from safetensors.torch import save_file
    cfg = json.loads(json.dumps(OPENCLIP_CFG))
    if custom_text:
        cfg["custom_text"] = True
    if logit_bias is not None:
        cfg["init_logit_bias"] = logit_bias
    torch.manual_seed(seed)
    cls = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    model = cls(**{k: v for k, v in cfg.items() if k != "custom_text"})
    with torch.no_grad():
        model.logit_scale.fill_(2.5)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pp = preprocess_cfg or {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.3, 0.25], "interpolation": "bicubic",
                            "resize_mode": "shortest"}
    (directory / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": pp}), "utf-8")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "open_clip_model.safetensors"))
    return directory


def add_to_hub_cache(cache: str | os.PathLike, repo_id: str, files: str | os.PathLike, *,
                     sha: str | None = None, ref: str = "main") -> str:
    """Place ``files`` (a folder) in a huggingface_hub cache as ``repo_id`` at commit ``sha``.

    The layout is huggingface_hub's: ``models--org--name/blobs/<hash>`` holding the bytes,
    ``snapshots/<sha>/<path>`` symlinks to them and ``refs/<ref>`` naming the commit.
    Returns the commit sha (derived from the files when not given).
    """
    files = Path(files)
    paths = sorted(p for p in files.rglob("*") if p.is_file())
    sha = sha or hashlib.sha1(b"".join(p.read_bytes() for p in paths)).hexdigest()
    root = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    for p in paths:
        data = p.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            blob.write_bytes(data)
        link = root / "snapshots" / sha / p.relative_to(files)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / ref).write_text(sha)
    return sha


def copy_tree(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return Path(dst)


def make_xclip_dir(directory: str | os.PathLike, seed: int = 0) -> Path:
    """``XCLIPModel`` + ``XCLIPProcessor`` files: 4 frames of 32×32, CLIP BPE tokenizer."""
    import transformers as tf
    tok = clip_tokenizer()
    text = dict(TEXT, vocab_size=len(tok), max_position_embeddings=16, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(VISION, num_frames=4, mit_hidden_size=16, mit_intermediate_size=32, mit_num_hidden_layers=1,
                  mit_num_attention_heads=2)
    config = tf.XCLIPConfig(text_config=text, vision_config=vision, projection_dim=16, prompt_layers=1,
                            prompt_attention_heads=2, prompt_num_attention_heads=2)
    frames = tf.VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return _save(tf.XCLIPModel, config, tf.XCLIPProcessor(image_processor=frames, tokenizer=tok), directory, seed)


def make_videomae_dir(directory: str | os.PathLike, seed: int = 0) -> Path:
    """``VideoMAEModel`` + its image processor: 4 frames of 32×32, tubelets of 2."""
    import transformers as tf
    config = tf.VideoMAEConfig(**TEXT, image_size=32, patch_size=8, num_frames=4, tubelet_size=2)
    directory = _save(tf.VideoMAEModel, config, None, directory, seed)
    tf.VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory
