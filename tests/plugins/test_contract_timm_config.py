"""The core strips no encoder's keyword: a timm tower built from a local weight file reloads after the file is
gone, because the image plugin ignores its weight-source option when pretrained is off (hub/format only
switches ``pretrained`` off)."""
from __future__ import annotations

import inspect

import torch

import zoo
from zoo.hub import format as hub_format


def test_a_timm_checkpoint_reloads_without_its_original_weight_file(tmp_path):
    from safetensors.torch import save_file
    torch.manual_seed(0)
    source = zoo.create_encoder("image", "timm:resnet10t", image_size=32)
    weights = tmp_path / "resnet10t.safetensors"
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(weights))
    model = zoo.create_model(towers={"image": {"encoder": "timm:resnet10t", "image_size": 32, "pretrained": True,
                                               "pretrained_cfg_overlay": {"file": str(weights)}}}, embed_dim=8).eval()
    model.save_pretrained(tmp_path / "ckpt")
    weights.unlink()
    loaded = zoo.load(f"local-dir:{tmp_path / 'ckpt'}").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed_batch("image", x), model.embed_batch("image", x))
    assert "pretrained_cfg_overlay" not in inspect.getsource(hub_format)
