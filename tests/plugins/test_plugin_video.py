"""The video plugin: reading real files, frame sampling, the frames encoder over image encoders,
clip-consistent augmentations, intra-video negatives, checkpoints and the video–text recipe."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.errors import ShapeError, UnknownNameError

pytest.importorskip("av")
zoo_video = pytest.importorskip("zoo_video")
from helpers import logged_losses

from zoo_video import collate_video, load_video, write_video  # noqa: E402
from zoo_video.io import frame_indices  # noqa: E402

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "video-text.toml"
MLP = dict(image_encoder="mlp", image_kwargs=dict(in_shape=[1, 8, 8], hidden=16, out_dim=16))
# one tiny build per registered encoder
TINY = {"video/frames": [("frames", dict(MLP, temporal="mean")),
                         ("frames", dict(MLP, temporal="transformer", temporal_layers=2, heads=2, max_frames=8))]}
OWN = [e.qualname for e in zoo.registry().entries("encoders", "video") if e.plugin == "video"]  # wrapped: test_pretrained
SPECS = [spec for name in OWN for spec in TINY.get(name, [(name, None)])]
IDS = [f"{n}-{kw['temporal']}" if kw else n for n, kw in SPECS]


def clip(seed: int = 0, t: int = 6, c: int = 1, h: int = 8, w: int = 8) -> torch.Tensor:
    return torch.rand(t, c, h, w, generator=torch.Generator().manual_seed(seed))


def smooth_clip(t: int = 5, h: int = 32, w: int = 48) -> torch.Tensor:
    """A bright square moving right over a gradient (lossy codecs keep it close)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    frames = []
    for i in range(t):
        f = torch.stack([x, y, 0.5 * torch.ones_like(x)]) * 0.6
        f[:, 8:20, 4 + 6 * i:16 + 6 * i] = 1.0
        frames.append(f)
    return torch.stack(frames)  # (T, 3, H, W)


# -- load and collate -------------------------------------------------------------------------
def test_real_file_round_trip_lossless_and_lossy(tmp_path):
    video = smooth_clip()
    write_video(tmp_path / "a.mkv", video, codec="ffv1")
    exact = load_video(str(tmp_path / "a.mkv"))
    assert exact.dtype == torch.float32 and exact.shape == (5, 3, 32, 48)
    torch.testing.assert_close(exact, (video * 255).round() / 255, atol=1e-6, rtol=0)
    torch.testing.assert_close(load_video((tmp_path / "a.mkv").read_bytes()), exact)
    write_video(tmp_path / "b.mp4", video, codec="mpeg4")
    lossy = load_video(tmp_path / "b.mp4")
    assert lossy.shape == exact.shape and (lossy - video).abs().mean() < 0.03


def test_array_layouts_and_frame_lists():
    u8 = (clip(c=3) * 255).byte()  # (T, C, H, W)
    expected = u8.float() / 255
    torch.testing.assert_close(load_video(u8), expected)
    torch.testing.assert_close(load_video(u8.permute(0, 2, 3, 1).numpy()), expected)  # (T, H, W, C)
    torch.testing.assert_close(load_video(list(u8.permute(0, 2, 3, 1).numpy())), expected)  # frames
    grey = load_video(np.zeros((4, 8, 8), np.uint8))
    assert grey.shape == (4, 1, 8, 8)
    raw = clip()
    assert load_video(raw) is raw and torch.equal(load_video(load_video(u8)), expected)  # idempotent


def test_frame_sampling():
    video = torch.arange(10.0).view(10, 1, 1, 1)
    assert frame_indices(10, 5).tolist() == [1, 3, 5, 7, 9]  # middle of each of 5 segments
    assert frame_indices(3, 5).tolist() == [0, 0, 1, 2, 2]  # centres 0.3, 0.9, 1.5, 2.1, 2.7
    assert load_video(video, num_frames=5).flatten().tolist() == [1, 3, 5, 7, 9]
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    a = load_video(video, num_frames=4, sampling="random_clip", generator=g(1)).flatten()
    assert torch.equal(a, load_video(video, num_frames=4, sampling="random_clip", generator=g(1)).flatten())
    assert torch.equal(a, a[0] + torch.arange(4.0))  # consecutive frames
    starts = {int(load_video(video, num_frames=4, sampling="random_clip", generator=g(s))[0]) for s in range(20)}
    assert len(starts) > 2 and max(starts) <= 6
    with pytest.raises(ValueError, match="generator"):
        load_video(video, num_frames=4, sampling="random_clip")
    with pytest.raises(ValueError, match="uniform"):
        load_video(video, num_frames=4, sampling="bogus")


def test_collate_and_shape_errors():
    assert collate_video([clip(0), clip(1)]).shape == (2, 6, 1, 8, 8)
    with pytest.raises(ShapeError, match="num_frames"):
        collate_video([clip(t=4), clip(t=6)])
    with pytest.raises(ShapeError):
        load_video(np.zeros((4, 8, 8, 5), np.uint8))


# -- the frames encoder -----------------------------------------------------------------------
def test_every_registered_encoder_has_a_tiny_spec():
    assert all(name in TINY for name in OWN), OWN


@pytest.mark.parametrize("name,kw", SPECS, ids=IDS)
def test_encoder_forward_backward_levels(name, kw):
    torch.manual_seed(0)
    enc = zoo.create_encoder("video", name, **kw).train()
    batch = enc.preprocess([clip(s) for s in range(3)])
    out = enc(batch)
    assert out.shape == (3, enc.output_dim) and torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0
    levels = enc.eval().forward_levels(batch)
    assert set(levels) == {"frame_mean", "temporal", "final"}
    for lv, dim in enc.level_dims.items():
        assert levels[lv].shape == (3, dim) and torch.isfinite(levels[lv]).all()


def test_frame_features_are_the_image_encoder_per_frame():
    enc = zoo.create_encoder("video", "frames", **MLP).eval()
    image = zoo.create_encoder("image", "mlp", **MLP["image_kwargs"])
    image.load_state_dict(enc.image.state_dict())
    videos = [clip(0), clip(1)]
    batch = enc.preprocess(videos)  # (B, T, 1, 8, 8)
    expected = torch.stack([image(image.preprocess(list(v))).mean(0) for v in videos])
    torch.testing.assert_close(enc(batch), expected)


def test_mean_is_order_blind_and_transformer_is_not():
    video = clip(t=5)[None]  # (1, T, C, H, W)
    reversed_ = video.flip(1)
    mean = zoo.create_encoder("video", "frames", **MLP).eval()
    torch.testing.assert_close(mean(video), mean(reversed_))
    torch.manual_seed(0)
    tf = zoo.create_encoder("video", "frames", **MLP, temporal="transformer", heads=2).eval()
    assert not torch.allclose(tf(video), tf(reversed_), atol=1e-4)
    with pytest.raises(UnknownNameError):
        zoo.create_encoder("video", "frames", **MLP, temporal="lstm")
    with pytest.raises(ShapeError, match="max_frames"):
        zoo.create_encoder("video", "frames", **MLP, temporal="transformer", heads=2, max_frames=4)(video)


def test_preprocess_samples_frames_and_uses_the_image_preprocess():
    enc = zoo.create_encoder("video", "frames", **MLP, num_frames=4)
    rgb_big = [clip(0, t=10, c=3, h=16, w=16), clip(1, t=7, c=3, h=16, w=16)]
    batch = enc.preprocess(rgb_big)
    assert batch.shape == (2, 4, 1, 8, 8)  # 4 uniform frames, grey, resized by image/mlp's preprocess
    assert torch.isfinite(enc(batch)).all()


@pytest.mark.parametrize("name,kw", SPECS, ids=IDS)
def test_save_load_round_trip(tmp_path, name, kw):
    torch.manual_seed(0)
    model = zoo.create_model(towers={"video": {"encoder": name, **kw, "num_frames": 4}}, embed_dim=8).eval()
    videos = [clip(0), clip(1, t=9)]
    model.save_pretrained(tmp_path / "ckpt")
    loaded = zoo.load(f"local-dir:{tmp_path / 'ckpt'}")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["preprocess"]["video"]["num_frames"] == 4
    with torch.no_grad():
        a = model.encode("video", model.preprocess("video", videos))
        b = loaded.encode("video", loaded.preprocess("video", videos))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


# -- augmentations ----------------------------------------------------------------------------
AUG_SPECS = {"temporal_crop": dict(num_frames=4), "frame_drop": dict(p=0.5),
             "spatial_crop": dict(scale=[0.3, 0.6]), "hflip": dict(p=0.5)}


@pytest.mark.parametrize("name", [a.split("/", 1)[1] for a in zoo.list_augmentations("video")])
def test_augmentation_is_seeded_and_changes_the_input(name):
    from zoo.data.pairs import make_augmentation
    aug = make_augmentation("video", {"name": name, **AUG_SPECS[name]})
    raw = clip(t=8, c=3)
    outs = [aug(raw.clone(), torch.Generator().manual_seed(s)) for s in range(6)]
    assert torch.equal(outs[0], aug(raw.clone(), torch.Generator().manual_seed(0)))
    assert any(o.shape != outs[0].shape or not torch.equal(o, outs[0]) for o in outs[1:])
    assert any(o.shape != raw.shape or not torch.equal(o, raw) for o in outs)
    assert all(o.dtype == torch.float32 and o.dim() == 4 for o in outs)


@pytest.mark.parametrize("name", ["spatial_crop", "hflip"])
def test_spatial_augmentations_use_one_transform_for_all_frames(name):
    from zoo.data.pairs import make_augmentation
    aug = make_augmentation("video", {"name": name, **AUG_SPECS[name], **({"p": 1.0} if name == "hflip" else {})})
    still = clip(t=1, c=3, h=12, w=12).expand(5, -1, -1, -1).clone()  # five identical frames
    out = aug(still, torch.Generator().manual_seed(0))
    assert out.shape == still.shape and not torch.equal(out, still)
    assert all(torch.equal(out[0], out[i]) for i in range(1, 5))


def test_frame_drop_keeps_t_and_order():
    from zoo_video.augment import frame_drop
    video = torch.arange(8.0).view(8, 1, 1, 1)
    out = frame_drop(p=0.5)(video, torch.Generator().manual_seed(2)).flatten()
    assert out.shape == (8,) and torch.all(out[1:] >= out[:-1]) and len(set(out.tolist())) < 8


# -- intra-video negatives --------------------------------------------------------------------
def test_shuffled_frames_strategy_adds_a_permuted_view():
    strategy = zoo.registry().get("pair_strategies", "shuffled_frames").factory(
        field="video", fields=["video", "caption"], augment={"video": [{"name": "hflip", "p": 0.5}]})
    strategy.setup({"video": "video", "caption": "text"})
    samples = [{"video": torch.arange(6.0).view(6, 1, 1, 1).expand(6, 1, 2, 2).clone(), "caption": f"c{i}"}
               for i in range(4)]
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(4)]  # noqa: E731
    views = strategy.views_of(samples, gens())
    assert list(views) == ["video", "caption", "video_shuffled"] and views["video_shuffled"][0] == "video"
    for v, s in zip(views["video"][1], views["video_shuffled"][1]):
        order = s[:, 0, 0, 0]
        assert sorted(order.tolist()) == v[:, 0, 0, 0].tolist() and not torch.equal(order, v[:, 0, 0, 0])
    again = strategy.views_of(samples, gens())
    assert all(torch.equal(a, b) for a, b in zip(views["video_shuffled"][1], again["video_shuffled"][1]))
    with pytest.raises(zoo.RecipeError, match="field"):
        zoo.registry().get("pair_strategies", "shuffled_frames").factory(field="caption").setup(
            {"video": "video", "caption": "text"})


def test_clip_intra_adds_the_shuffled_clip_as_a_negative_column():
    g = torch.Generator().manual_seed(0)
    v, c, vs = (F.normalize(torch.randn(5, 8, generator=g), dim=-1) for _ in range(3))
    objective = zoo.create_objective("clip_intra")
    loss = objective({"video": v, "caption": c, "video_shuffled": vs}, logit_scale=10.0)
    logits = 10.0 * c @ v.T
    extra = 10.0 * (c * vs).sum(-1, keepdim=True)
    target = torch.arange(5)
    expected = (F.cross_entropy(torch.cat([logits, extra], 1), target) + F.cross_entropy(logits.T, target)) / 2
    torch.testing.assert_close(loss, expected)
    plain = zoo.create_objective("clip")({"video": v, "caption": c}, logit_scale=torch.tensor(10.0))
    far = objective({"video": v, "caption": c, "video_shuffled": -c}, logit_scale=10.0)  # negative at cos = −1
    assert loss > plain and abs(far.item() - plain.item()) < 1e-3
    with pytest.raises(ShapeError, match="shuffled"):
        objective({"video": v, "caption": c}, logit_scale=10.0)


# -- the video–text recipe --------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["clip", "intra"])
def test_video_text_recipe_trains_and_loss_goes_down(tmp_path, variant):
    overrides = {"data.options": {"size": 160}, "data.batch_size": 32,
                 "run.steps": 12, "run.log_every": 1, "run.progress": False, "optim.warmup_steps": 0}
    if variant == "intra":
        overrides.update({"pairs.strategy": "shuffled_frames", "objective.name": "clip_intra"})
    result = zoo.train(RECIPE, overrides=overrides, run_dir=tmp_path / variant, progress=False)
    losses = logged_losses(result.run_dir)
    assert len(losses) == 12 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    model = zoo.load(f"local-dir:{result.run_dir}")
    assert set(model.towers) == {"video", "text"}
