"""The image plugin: loading every input form, collate, preprocessing (parity with timm and
open_clip transforms), every registered encoder, timm pretrained weights, augmentations,
checkpoints and the digits-clip recipe."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.errors import CheckpointError, DataError, PluginError, RecipeError, ShapeError, UnknownNameError

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("torchvision")
zoo_image = pytest.importorskip("zoo_image")
from helpers import logged_losses

from zoo_image import collate_images, load_image  # noqa: E402
from zoo_image.augment import crop_box  # noqa: E402
from zoo_image.preprocess import ImagePreprocess  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "digits-clip.toml"
TINY_VIT = dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2)
TINY_OC_VIT = dict(embed_dim=16, vision_cfg=dict(width=32, layers=2, patch_size=8, image_size=32, head_width=16))
TINY_OC_RN = dict(embed_dim=16, vision_cfg=dict(layers=[1, 1, 1, 1], width=8, image_size=32, head_width=8))
# one tiny build per registered encoder (families: two variants each)
TINY = {
    "image/mlp": [("mlp", dict(in_shape=[1, 8, 8], hidden=16, out_dim=12)),
                  ("mlp", dict(in_shape=[3, 6, 6], hidden=16, out_dim=8, layers=3, dropout=0.1))],
    "image/timm": [("timm:resnet10t", dict(image_size=32)), ("timm:vit_tiny_patch16_224", TINY_VIT)],
    "image/open_clip": [("open_clip:ViT-B-32", TINY_OC_VIT), ("open_clip:RN50", TINY_OC_RN)],
}
# this plugin's encoders; towers that wrap pretrained models (plugin "pretrained") are tested there
OWN = [e.qualname for e in zoo.registry().entries("encoders", "image") if e.plugin == "image"]
SPECS = [spec for name in OWN for spec in TINY.get(name, [(name, None)])]


def smooth_image(h: int = 40, w: int = 52, seed: int = 0) -> np.ndarray:
    """A uint8 RGB image of low-frequency content (resampling differences stay small)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 5, 6, generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
    return (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # (H, W, 3)


def raws() -> list[torch.Tensor]:
    """Mixed raws: grey 8×8, RGB of another size (encoders' preprocess brings them to one shape)."""
    g = torch.Generator().manual_seed(1)
    return [torch.rand(1, 8, 8, generator=g), torch.rand(3, 20, 24, generator=g), torch.rand(3, 8, 8, generator=g)]


# -- load ---------------------------------------------------------------------------------------
def test_load_numpy_forms():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = load_image(grey)
    assert out.dtype == torch.float32 and out.shape == (1, 3, 4)
    torch.testing.assert_close(out[0], torch.from_numpy(grey).float() / 255)
    rgb = smooth_image(6, 5)
    out = load_image(rgb)
    assert out.shape == (3, 6, 5)
    torch.testing.assert_close(out, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    rgba = np.concatenate([rgb, np.full((6, 5, 1), 7, np.uint8)], axis=2)
    torch.testing.assert_close(load_image(rgba), out)  # alpha dropped
    sixteen = np.full((2, 2), 65535, np.uint16)
    torch.testing.assert_close(load_image(sixteen), torch.ones(1, 2, 2))
    floats = np.random.default_rng(0).random((4, 4, 3))
    torch.testing.assert_close(load_image(floats), torch.from_numpy(floats).permute(2, 0, 1).float())


def test_load_tensor_forms_and_idempotence():
    t = torch.rand(3, 5, 7)
    assert load_image(t) is t  # a raw goes through untouched
    assert load_image(torch.rand(5, 7)).shape == (1, 5, 7)
    u8 = torch.randint(0, 256, (1, 4, 4), dtype=torch.uint8)
    torch.testing.assert_close(load_image(u8), u8.float() / 255)
    assert load_image(torch.rand(4, 3, 3)).shape == (3, 3, 3)  # RGBA → RGB
    for x in (np.zeros((3, 3), np.uint8), smooth_image(4, 4), torch.rand(2, 3, 3), u8):
        once = load_image(x)
        torch.testing.assert_close(load_image(once), once)


def test_load_paths_bytes_and_pil(tmp_path):
    rgb = smooth_image(10, 12)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "grey.png")
    Image.fromarray(np.concatenate([rgb, np.full((10, 12, 1), 128, np.uint8)], 2)).save(tmp_path / "rgba.png")
    Image.fromarray(np.full((3, 3), 65535, np.uint16)).save(tmp_path / "sixteen.png")
    expected = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(load_image(str(tmp_path / "rgb.png")), expected)
    torch.testing.assert_close(load_image(tmp_path / "rgba.png"), expected)  # PathLike, alpha dropped
    torch.testing.assert_close(load_image(tmp_path / "grey.png"), expected[:1])
    torch.testing.assert_close(load_image(tmp_path / "sixteen.png"), torch.ones(1, 3, 3))
    torch.testing.assert_close(load_image((tmp_path / "rgb.png").read_bytes()), expected)
    torch.testing.assert_close(load_image(Image.open(tmp_path / "rgb.png")), expected)
    palette = Image.fromarray(rgb).quantize(64)  # mode "P"
    torch.testing.assert_close(load_image(palette), load_image(np.array(palette.convert("RGB"))))


def test_load_jpeg_applies_exif_rotation(tmp_path):
    img = Image.fromarray(smooth_image(8, 16))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "rot.jpg").shape == (3, 16, 8)


def test_unreadable_inputs_raise_data_error_naming_the_file(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(DataError, match=r"nope\.png.*does not exist"):
        load_image(missing)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match=r"corrupt\.png.*cannot be read"):
        load_image(str(corrupt))
    good = io.BytesIO()
    Image.fromarray(smooth_image(32, 32)).save(good, format="PNG")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.getvalue()[:200])
    with pytest.raises(DataError, match=r"truncated\.png.*cannot be read"):
        load_image(truncated)
    with pytest.raises(DataError, match="is a directory"):
        load_image(tmp_path)


def test_bad_values_and_shapes():
    with pytest.raises(DataError, match=r"\[0, 1\].*255"):
        load_image(np.full((3, 3), 200.0))
    with pytest.raises(ShapeError, match=r"channels-first.*torch.from_numpy"):
        load_image(np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(ShapeError, match=r"expected.*\(C, H, W\).*got \(2, 1, 3, 8\)"):
        load_image(torch.zeros(2, 1, 3, 8))
    with pytest.raises(DataError, match="cannot read a dict"):
        load_image({"x": 1})
    with pytest.raises(DataError, match="dtype"):
        load_image(torch.zeros(3, 3, dtype=torch.int64))


def test_collate_stacks_same_size_and_rejects_others():
    batch = collate_images([torch.rand(3, 4, 5), np.zeros((4, 5, 3), np.uint8)])
    assert batch.shape == (2, 3, 4, 5) and batch.dtype == torch.float32
    with pytest.raises(ShapeError, match=r"expected \(3, 4, 5\).*got \(3, 4, 6\) at item 1"):
        collate_images([torch.rand(3, 4, 5), torch.rand(3, 4, 6)])
    with pytest.raises(DataError, match="empty"):
        collate_images([])


def test_modality_is_registered_with_its_extra():
    entry = zoo.registry().get("modalities", "image")
    assert entry.meta["extra"] == "image" and entry.meta["collate"] is collate_images


def test_plugin_import_is_light():
    code = ("import sys, zoo; zoo.list_encoders('image'); "
            "print(sorted(m for m in ('timm', 'open_clip', 'torchvision', 'PIL') if m in sys.modules))")
    env = {**os.environ, "ZOO_PLUGINS": "image"}  # this plugin alone: others may import what they need
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


def test_missing_extra_names_the_pip_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(PluginError, match=r"pip install 'zoo\[image\]'"):
        zoo.create_encoder("image", "timm:resnet10t")


# -- preprocessing ------------------------------------------------------------------------------
def test_preprocess_matches_timm_eval_transform():
    from timm.data import create_transform
    enc = zoo.create_encoder("image", "timm:resnet10t", image_size=32)
    cfg = enc.preprocess_config()
    assert cfg["crop_pct"] == 0.875 and cfg["mean"] == [0.485, 0.456, 0.406]  # resnet10t's pretrained_cfg
    ref = create_transform(input_size=(3, 32, 32), interpolation=cfg["interpolation"], mean=cfg["mean"],
                           std=cfg["std"], crop_pct=cfg["crop_pct"], crop_mode="center")
    img = smooth_image(40, 52)
    ours = enc.preprocess([img])[0]
    theirs = ref(Image.fromarray(img))
    assert ours.shape == theirs.shape == (3, 32, 32)
    assert (ours - theirs).abs().mean() < 0.02  # PIL uint8 vs float resampling; a misplaced crop gives ≫ 0.1


def test_preprocess_matches_open_clip_eval_transform():
    import open_clip
    enc = zoo.create_encoder("image", "open_clip:ViT-B-32", **TINY_OC_VIT)
    cfg = enc.preprocess_config()
    ref = open_clip.image_transform(32, is_train=False, mean=cfg["mean"], std=cfg["std"],
                                    interpolation="bicubic", resize_mode="shortest")
    img = smooth_image(45, 38)
    ours, theirs = enc.preprocess([img])[0], ref(Image.fromarray(img))
    assert ours.shape == theirs.shape == (3, 32, 32)
    assert (ours - theirs).abs().mean() < 0.02


def test_preprocess_channels_and_errors():
    pre = ImagePreprocess(image_size=8, channels=3, mean=[0.5], std=0.5)
    out = pre([torch.full((1, 4, 4), 0.75)])
    torch.testing.assert_close(out, torch.full((1, 3, 8, 8), 0.5))  # grey → RGB, resized, (0.75 - .5) / .5
    grey = ImagePreprocess(channels=1)([torch.ones(3, 2, 2)])
    torch.testing.assert_close(grey, torch.ones(1, 1, 2, 2))  # luma weights sum to 1
    with pytest.raises(ShapeError, match="share a size"):
        ImagePreprocess()([torch.rand(3, 2, 2), torch.rand(3, 3, 3)])
    with pytest.raises(ValueError, match="interpolation"):
        ImagePreprocess(interpolation="lanczos9")
    with pytest.raises(ValueError, match="std must be positive"):
        ImagePreprocess(std=0.0)
    assert json.loads(json.dumps(pre.to_dict()))["image_size"] == [8, 8]


# -- encoders -----------------------------------------------------------------------------------
def test_every_registered_encoder_has_a_tiny_case():
    assert {"image/mlp", "image/timm", "image/open_clip"} <= set(zoo.list_encoders("image"))
    assert all(kw is not None for _, kw in SPECS), "add a tiny build to TINY for each new image encoder"


@pytest.mark.parametrize("name,kw", SPECS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SPECS)])
def test_encoder_forward_backward_shape(name, kw):
    torch.manual_seed(0)
    enc = zoo.create_encoder("image", name, **kw).train()
    batch = enc.preprocess(raws())
    assert batch.dim() == 4 and batch.shape[0] == 3
    z = enc(batch)
    assert z.shape == (3, enc.output_dim) and torch.isfinite(z).all()
    z.pow(2).sum().backward()
    grads = {n: p.grad for n, p in enc.named_parameters() if p.requires_grad}
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads.values()), \
        [n for n, g in grads.items() if g is None]
    cfg = enc.preprocess_config()
    assert {"image_size", "mean", "std", "interpolation", "channels"} <= set(cfg)
    json.dumps(cfg)
    with pytest.raises(ShapeError, match="expected"):
        enc(batch[:, :1, :2])
    levels = getattr(enc, "level_dims", {})
    if levels:  # mlp, timm: intermediate levels for hierarchical objectives
        with torch.no_grad():
            out = enc.eval().forward_levels(batch)
            torch.testing.assert_close(out.pop("final"), enc(batch))
        assert {k: tuple(v.shape) for k, v in out.items()} == {k: (3, d) for k, d in levels.items()}


def test_mlp_levels_and_tower_levels():
    enc = zoo.create_encoder("image", "mlp", in_shape=[1, 8, 8], hidden=16, out_dim=8, layers=3)
    assert enc.level_dims == {"layer1": 16, "layer2": 16}
    levels = enc.forward_levels(enc.preprocess(raws()))
    assert {k: tuple(v.shape) for k, v in levels.items()} == {"layer1": (3, 16), "layer2": (3, 16), "final": (3, 8)}
    model = zoo.create_model(towers={"image": {"encoder": "mlp", "hidden": 16, "out_dim": 8, "levels": ["layer1"]}},
                             embed_dim=4)
    out = model.encode_levels("image", model.preprocess("image", raws()))
    assert set(out) == {"layer1", "final"} and out["layer1"].shape == (3, 4)
    with pytest.raises(ValueError, match="in_shape"):
        zoo.create_encoder("image", "mlp", in_shape=[8, 8])


def test_timm_levels_are_named_stages():
    enc = zoo.create_encoder("image", "timm:resnet10t", image_size=32)
    assert enc.level_dims == {"act1": 64, "layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}
    model = zoo.create_model(towers={"image": {"encoder": "timm:vit_tiny_patch16_224", **TINY_VIT,
                                               "levels": ["blocks_0"]}}, embed_dim=8)
    out = model.encode_levels("image", model.preprocess("image", raws()))
    assert set(out) == {"blocks_0", "final"} and out["blocks_0"].shape == (3, 8)


def test_unknown_names_and_options():
    with pytest.raises(UnknownNameError, match="resnet10t"):
        zoo.create_encoder("image", "timm:resnet10tt")
    with pytest.raises(RecipeError, match="img_size"):
        zoo.create_encoder("image", "timm:resnet10t", img_size=32)
    with pytest.raises(UnknownNameError, match="ViT-B-32"):
        zoo.create_encoder("image", "open_clip:ViT-B-3")
    with pytest.raises(RecipeError, match="widht"):
        zoo.create_encoder("image", "open_clip:ViT-B-32", vision_cfg={"widht": 8})
    with pytest.raises(RecipeError, match="embed_dim"):
        zoo.create_encoder("image", "open_clip:custom", vision_cfg=TINY_OC_VIT["vision_cfg"])
    enc = zoo.create_encoder("image", "open_clip:custom", **TINY_OC_VIT)
    assert enc.output_dim == 16 and next(iter(enc.state_dict())).startswith("visual.")


# -- pretrained weights -------------------------------------------------------------------------
def test_timm_pretrained_from_local_safetensors(tmp_path):
    from safetensors.torch import save_file
    torch.manual_seed(0)
    source = zoo.create_encoder("image", "timm:resnet10t", image_size=32).eval()
    weights = tmp_path / "resnet10t.safetensors"
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(weights))
    torch.manual_seed(1)
    loaded = zoo.create_encoder("image", "timm:resnet10t", image_size=32, pretrained=True,
                                pretrained_cfg_overlay={"file": str(weights)}).eval()
    fresh = zoo.create_encoder("image", "timm:resnet10t", image_size=32).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), atol=0, rtol=0)
        assert not torch.allclose(fresh(x), source(x))  # pretrained=False is a random init

    partial = {k: v.contiguous() for k, v in source.model.state_dict().items() if not k.startswith("conv1.0")}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(CheckpointError, match=r"do not cover the model.*conv1\.0\.weight"):
        zoo.create_encoder("image", "timm:resnet10t", pretrained=True,
                           pretrained_cfg_overlay={"file": str(tmp_path / "partial.safetensors")})


def test_timm_pretrained_unreachable_is_an_error_not_random_weights(tmp_path, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no retries against the network
    with pytest.raises(CheckpointError, match=r"timm:resnet10t.*could not be loaded.*pretrained = false"):
        zoo.create_encoder("image", "timm:resnet10t", pretrained=True, cache_dir=str(tmp_path))
    missing = tmp_path / "absent.safetensors"
    with pytest.raises(CheckpointError, match=r"absent\.safetensors.*file not found"):
        zoo.create_encoder("image", "timm:resnet10t", pretrained=True, pretrained_cfg_overlay={"file": str(missing)})


def test_open_clip_pretrained_unreachable_is_an_error(tmp_path, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match=r"open_clip:ViT-B-32.*'laion2b_s34b_b79k' could not be loaded"):
        zoo.create_encoder("image", "open_clip:ViT-B-32", pretrained="laion2b_s34b_b79k", cache_dir=str(tmp_path))
    with pytest.raises(CheckpointError, match="no-such-tag"):
        zoo.create_encoder("image", "open_clip:ViT-B-32", pretrained="no-such-tag")


# -- augmentations -----------------------------------------------------------------------------
AUG_CASES = {
    "image/random_resized_crop": dict(scale=[0.3, 0.6]),
    "image/hflip": dict(p=1.0),
    "image/color_jitter": dict(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.2),
    "image/grayscale": dict(p=1.0),
    "image/gaussian_blur": dict(p=1.0),
    "image/solarize": dict(p=1.0, threshold=0.5),
    "image/simclr": dict(size=12),
    "image/clip": dict(size=[12, 10]),
}
RANDOM_PARAMS = {"image/random_resized_crop", "image/color_jitter", "image/gaussian_blur", "image/simclr", "image/clip"}
AUGS = zoo.list_augmentations("image")


def make_aug(qualname: str):
    from zoo.data.pairs import make_augmentation
    return make_augmentation("image", {"name": qualname.split("/")[1], **AUG_CASES[qualname]})


def test_every_augmentation_has_a_case():
    assert set(AUGS) == set(AUG_CASES)


# greyscale is the identity on grey images by definition (checked in the next test)
AUG_INPUTS = [(n, c) for n in AUGS for c in (3, 1) if (n, c) != ("image/grayscale", 1)]


@pytest.mark.parametrize("name,channels", AUG_INPUTS)
def test_augmentation_deterministic_changes_input_and_keeps_range(name, channels):
    aug = make_aug(name)
    x = torch.from_numpy(smooth_image(16, 16, seed=3)).permute(2, 0, 1).float()[:channels] / 255
    global_state = torch.get_rng_state()
    views = [aug(x.clone(), torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert torch.equal(torch.get_rng_state(), global_state), "augmentations must not touch the global RNG"
    torch.testing.assert_close(views[0], views[1], atol=0, rtol=0)
    size = {"image/simclr": (12, 12), "image/clip": (12, 10)}.get(name, (16, 16))
    assert views[0].shape == (channels, *size) and views[0].dtype == torch.float32
    assert views[0].min() >= 0 and views[0].max() <= 1
    if views[0].shape == x.shape:
        assert not torch.allclose(views[0], x), f"{name} did not change the input"
    if name in RANDOM_PARAMS:
        assert not torch.allclose(views[0], views[2]), f"{name} gave the same view for two seeds"


def test_grayscale_keeps_channels_and_is_identity_on_grey():
    aug = make_aug("image/grayscale")
    rgb = torch.rand(3, 5, 5)
    out = aug(rgb, torch.Generator().manual_seed(0))
    assert out.shape == (3, 5, 5) and torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])
    grey = torch.rand(1, 5, 5)
    assert torch.equal(aug(grey, torch.Generator().manual_seed(0)), grey)


def test_augmentation_kernels_match_torchvision():
    from torchvision.transforms.v2 import functional as F

    from zoo_image.augment import color_jitter, random_resized_crop
    x = torch.rand(3, 9, 9)
    full = random_resized_crop(scale=[1.0, 1.0], ratio=[1.0, 1.0])
    torch.testing.assert_close(full(x, torch.Generator().manual_seed(0)), x)  # the whole square, same size
    bright = color_jitter(brightness=[1.5, 1.5], contrast=0, saturation=0, hue=0)
    torch.testing.assert_close(bright(x, torch.Generator().manual_seed(0)), F.adjust_brightness(x, 1.5))


def test_crop_box_respects_scale_and_ratio():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w = crop_box(g, 64, 48, (0.2, 0.5), (0.75, 4 / 3))
        assert 0 <= top and top + h <= 64 and 0 <= left and left + w <= 48
        assert 0.18 <= h * w / (64 * 48) <= 0.52 and 0.7 <= w / h <= 1.4


def test_augmentation_option_errors():
    for spec in ({"name": "hflip", "p": 1.5}, {"name": "random_resized_crop", "scale": [0.9, 0.1]},
                 {"name": "gaussian_blur", "kernel_size": 4}, {"name": "color_jitter", "hue": 0.7}):
        with pytest.raises(ValueError):
            make_aug_spec(spec)
    with pytest.raises(RecipeError, match="does not accept"):
        make_aug_spec({"name": "hflip", "q": 1})


def make_aug_spec(spec):
    from zoo.data.pairs import make_augmentation
    return make_augmentation("image", spec)


# -- checkpoints and recipes --------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model(towers={
        "image": {"encoder": "mlp", "hidden": 16, "out_dim": 8, "mean": 0.3, "std": 0.4},
        "photo": {"modality": "image", "encoder": "timm:resnet10t", "image_size": 32},
        "clip": {"modality": "image", "encoder": "open_clip:ViT-B-32", **TINY_OC_VIT},
    }, embed_dim=8).eval()
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["preprocess"]["image"]["mean"] == [0.3] and config["preprocess"]["photo"]["image_size"] == [32, 32]
    loaded = zoo.load(f"local-dir:{tmp_path / 'ckpt'}")
    for tower in ("image", "photo", "clip"):
        with torch.no_grad():
            a = model.encode(tower, model.preprocess(tower, raws()))
            b = loaded.encode(tower, loaded.preprocess(tower, raws()))
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_digits_clip_recipe_trains(tmp_path):
    overrides = {"run.steps": 20, "run.log_every": 1, "run.progress": False, "optim.warmup_steps": 2,
                 "eval.tasks": [], "data.options": {"size": 640}}
    zoo.train(RECIPE, overrides=overrides, run_dir=tmp_path / "run", progress=False)
    loss = logged_losses(tmp_path / "run")
    assert len(loss) == 20 and all(np.isfinite(loss))
    assert np.mean(loss[-3:]) < np.mean(loss[:3]) - 0.3, loss


@pytest.mark.slow
def test_digits_clip_recipe_reaches_high_zero_shot_accuracy(tmp_path):
    result = zoo.train(RECIPE, overrides={"run.progress": False, "eval.tasks": ["zero_shot"]},
                       run_dir=tmp_path / "run", progress=False)
    assert result.metrics["zero_shot/top1"] >= 0.95, result.metrics


@pytest.mark.parametrize("sizes", [[(3, 8, 8)] * 5, [(3, 8, 8), (3, 6, 9), (1, 8, 8), (3, 8, 8), (3, 5, 5)]])
def test_hflip_and_simclr_batch_forms_equal_the_per_sample_views(sizes):
    """Images of one size are flipped in one op, mixed sizes one at a time; both equal the per-sample views,
    and so does the SimCLR chain run augmentation by augmentation (each sample's generator, same order)."""
    from zoo.data.pairs import make_augmentation

    g0 = torch.Generator().manual_seed(0)
    images = [torch.rand(s, generator=g0) for s in sizes]
    for spec in ({"name": "hflip", "p": 0.5}, {"name": "simclr", "size": 8}):
        aug = make_augmentation("image", spec)
        one = [aug(im, torch.Generator().manual_seed(10 + k)) for k, im in enumerate(images)]
        batch = aug.batch(images, [torch.Generator().manual_seed(10 + k) for k in range(len(images))])
        assert all(torch.equal(a, b) for a, b in zip(one, batch)), spec
    flipped = make_augmentation("image", {"name": "hflip", "p": 1.0}).batch(images, [g0] * len(images))
    assert all(torch.equal(f, im.flip(-1)) for f, im in zip(flipped, images))
