"""The audio plugin: loading, collate, the log-mel frontend, every encoder, augmentations,
checkpoints and the CLAP recipe."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.errors import DataError, ShapeError

sf = pytest.importorskip("soundfile")
pytest.importorskip("torchaudio")
zoo_audio = pytest.importorskip("zoo_audio")
from helpers import logged_losses

from zoo_audio import SAMPLE_RATE, collate_audio, load_audio  # noqa: E402

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "clap-tones.toml"
TINY_W2V = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(8, 8),
                conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
# one tiny build per registered encoder (families: one or two variants)
TINY = {
    "audio/cnn": [("cnn", dict(channels=4, layers=2, out_dim=16, n_mels=16))],
    "audio/ast": [("ast", dict(hidden_size=16, layers=2, heads=2, n_mels=16, max_frames=32, patch_size=8,
                               frequency_stride=8, time_stride=8, specaugment=True))],
    "audio/hf": [("hf:wav2vec2", dict(config=TINY_W2V)), ("hf:hubert", dict(config=TINY_W2V))],
}
OWN = [e.qualname for e in zoo.registry().entries("encoders", "audio") if e.plugin == "audio"]  # wrapped towers: test_pretrained
SPECS = [spec for name in OWN for spec in TINY.get(name, [(name, None)])]


def tone(freq: float, seconds: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def batch(seed: int = 0, lengths=(4000, 2500, 3200)) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return collate_audio([torch.randn(n, generator=g) * 0.3 for n in lengths])


# -- load and collate -------------------------------------------------------------------------
def test_load_paths_and_bytes_resample_and_mix_to_mono(tmp_path):
    stereo = np.stack([tone(440, 0.5, 8000), tone(440, 0.5, 8000)], axis=1)  # (T, 2) at 8 kHz
    sf.write(tmp_path / "a.wav", stereo, 8000)
    sf.write(tmp_path / "b.flac", tone(440, 0.5), SAMPLE_RATE)
    from_wav = load_audio(str(tmp_path / "a.wav"))
    assert from_wav.dtype == torch.float32 and from_wav.shape == (SAMPLE_RATE // 2,)
    reference = torch.from_numpy(tone(440, 0.5))
    assert (from_wav - reference)[200:-200].abs().max() < 2e-3  # resampled 8 → 16 kHz ≈ the 16 kHz tone
    flac = load_audio(tmp_path / "b.flac")  # PathLike
    torch.testing.assert_close(flac, reference, atol=1e-4, rtol=0)  # FLAC is 16-bit
    torch.testing.assert_close(load_audio((tmp_path / "b.flac").read_bytes()), flac)


def test_load_arrays_tuples_and_integer_pcm():
    mono = tone(300, 0.25)
    two = np.stack([mono, 0 * mono])  # (C, T)
    torch.testing.assert_close(load_audio(two), torch.from_numpy(mono) / 2)
    torch.testing.assert_close(load_audio(two.T), torch.from_numpy(mono) / 2)  # (T, C)
    pcm = (mono * 32767).astype(np.int16)
    torch.testing.assert_close(load_audio(pcm), torch.from_numpy(mono), atol=1e-4, rtol=0)
    resampled = load_audio((torch.from_numpy(tone(300, 0.25, 32000)), 32000))
    assert resampled.shape == (4000,) and (resampled - torch.from_numpy(mono))[100:-100].abs().max() < 2e-3
    torch.testing.assert_close(load_audio(torch.from_numpy(mono).double()), torch.from_numpy(mono))


@pytest.mark.parametrize("value", [np.zeros(0, np.float32), np.zeros((2, 3, 4), np.float32), "x" * 3])
def test_load_rejects_bad_values(value):
    with pytest.raises((DataError, ShapeError)):
        load_audio(value if not isinstance(value, str) else {"not": "audio"})


def test_load_is_idempotent_and_collate_pads(tmp_path):
    sf.write(tmp_path / "c.wav", tone(500, 0.1, 22050), 22050)
    for value in (str(tmp_path / "c.wav"), tone(200, 0.1), (tone(200, 0.1, 8000), 8000)):
        once = load_audio(value)
        assert torch.equal(load_audio(once), once)
    b = collate_audio([torch.ones(5), torch.ones(3)])
    assert b["waveform"].shape == (2, 5) and b["lengths"].tolist() == [5, 3]
    assert b["waveform"][1, 3:].abs().sum() == 0


# -- frontend ---------------------------------------------------------------------------------
def test_logmel_frames_and_masking():
    from zoo_audio.frontend import LogMel
    mel = LogMel(n_mels=16, n_fft=400, hop_length=160)
    b = batch(lengths=(4000, 2500, 300))
    x, frames = mel(b["waveform"], b["lengths"])
    assert x.shape == (3, 16, 1 + (4000 - 400) // 160)
    assert frames.tolist() == [23, 1 + (2500 - 400) // 160, 1]
    assert x[1, :, frames[1]:].abs().sum() == 0 and x[1, :, : frames[1]].abs().sum() > 0
    alone, _ = mel(b["waveform"][1:2, :2500], b["lengths"][1:2])  # same features without the padding
    torch.testing.assert_close(alone[0], x[1, :, : frames[1]])


def test_specaugment_masks_in_train_mode_only():
    from zoo_audio.frontend import SpecAugment
    aug = SpecAugment(freq_masks=2, freq_width=4, time_masks=2, time_width=5)
    x = torch.ones(4, 16, 30)
    frames = torch.tensor([30, 20, 10, 5])
    torch.manual_seed(0)
    out = aug.train()(x, frames)
    assert (out == 0).any() and out.shape == x.shape
    assert torch.equal(aug.eval()(x, frames), x)


# -- encoders (parametrised over the registry) ------------------------------------------------
def test_every_registered_encoder_has_a_tiny_spec():
    assert all(name in TINY for name in OWN), OWN


@pytest.mark.parametrize("name,kw", SPECS, ids=[s[0] for s in SPECS])
def test_encoder_forward_backward_levels(name, kw):
    torch.manual_seed(0)
    enc = zoo.create_encoder("audio", name, **kw).train()
    b = batch()
    out = enc(b)
    assert out.shape == (3, enc.output_dim) and torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in enc.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads if g is not None)
    assert sum(g.abs().sum().item() for g in grads if g is not None) > 0
    levels = enc.eval().forward_levels(b)
    assert set(levels) == set(enc.level_dims) | {"final"}
    for lv, dim in enc.level_dims.items():
        assert levels[lv].shape == (3, dim) and torch.isfinite(levels[lv]).all()
    torch.testing.assert_close(levels["final"], enc(b))


def test_cnn_embedding_does_not_depend_on_batch_padding():
    enc = zoo.create_encoder("audio", "cnn", channels=4, layers=3, out_dim=8, n_mels=16).eval()
    b = batch()
    alone = enc(collate_audio([b["waveform"][1, :2500]]))
    torch.testing.assert_close(alone, enc(b)[1:2], atol=1e-6, rtol=0)


def test_hf_local_checkpoint_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.Wav2Vec2Config(**TINY_W2V)
    ref = transformers.Wav2Vec2Model(cfg).eval()
    ref.save_pretrained(tmp_path / "w2v")
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(tmp_path / "w2v")
    enc = zoo.create_encoder("audio", f"hf:{tmp_path / 'w2v'}").eval()
    wave = torch.randn(3000) * 0.2
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(tmp_path / "w2v")
    values = extractor(wave.numpy(), sampling_rate=SAMPLE_RATE, return_tensors="pt").input_values  # (1, T)
    with torch.no_grad():
        expected = ref(values).last_hidden_state.mean(dim=1)
        got = enc(collate_audio([wave]))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    fresh = zoo.create_encoder("audio", f"hf:{tmp_path / 'w2v'}", pretrained=False)  # architecture only
    assert fresh.state_dict().keys() == enc.state_dict().keys()
    assert not torch.equal(fresh.model.feature_projection.projection.weight, ref.feature_projection.projection.weight)


def test_hf_masked_mean_ignores_padded_frames():
    from zoo_audio.hf import masked_mean
    hidden = torch.arange(12.0).view(2, 3, 2)  # (B, F, H)
    out = masked_mean(hidden, torch.tensor([3, 1]))
    torch.testing.assert_close(out, torch.stack([hidden[0].mean(0), hidden[1, 0]]))


def test_hf_rebuilds_from_saved_assets_offline(tmp_path):
    enc = zoo.create_encoder("audio", "hf:wav2vec2", config=TINY_W2V, normalize=False)
    enc.save_assets(tmp_path / "assets")
    rebuilt = zoo.create_encoder("audio", "hf:some-org/not-in-any-cache", assets_dir=str(tmp_path / "assets"))
    assert rebuilt.model.config.hidden_size == 16 and rebuilt.normalize is False
    rebuilt.load_state_dict(enc.state_dict())
    b = batch()
    torch.testing.assert_close(rebuilt.eval()(b), enc.eval()(b))
    with pytest.raises(zoo.CheckpointError, match="not-in-any-cache"):
        zoo.create_encoder("audio", "hf:some-org/not-in-any-cache")


@pytest.mark.parametrize("name,kw", SPECS, ids=[s[0] for s in SPECS])
def test_save_load_round_trip(tmp_path, name, kw):
    torch.manual_seed(0)
    model = zoo.create_model(towers={"audio": {"encoder": name, **kw}}, embed_dim=8).eval()
    waves = [torch.randn(3000) * 0.1, torch.randn(2000) * 0.1]
    model.save_pretrained(tmp_path / "ckpt")
    loaded = zoo.load(f"local-dir:{tmp_path / 'ckpt'}")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["preprocess"]["audio"]["sample_rate"] == SAMPLE_RATE
    with torch.no_grad():
        a = model.encode("audio", model.preprocess("audio", waves))
        b = loaded.encode("audio", loaded.preprocess("audio", waves))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


# -- augmentations ----------------------------------------------------------------------------
AUG_SPECS = {"gain": dict(min_db=-6, max_db=6), "noise": dict(min_snr_db=5, max_snr_db=10),
             "time_shift": dict(max_seconds=0.05), "random_crop": dict(seconds=0.1),
             "time_mask": dict(max_seconds=0.05, masks=2), "freq_mask": dict(max_hz=2000, masks=2)}


@pytest.mark.parametrize("name", [a.split("/", 1)[1] for a in zoo.list_augmentations("audio")])
def test_augmentation_is_seeded_and_changes_the_input(name):
    from zoo.data.pairs import make_augmentation
    aug = make_augmentation("audio", {"name": name, **AUG_SPECS[name]})
    raw = load_audio(tone(700, 0.25) + tone(3000, 0.25))
    first = aug(raw.clone(), torch.Generator().manual_seed(3))
    again = aug(raw.clone(), torch.Generator().manual_seed(3))
    other = aug(raw.clone(), torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and first.dtype == torch.float32 and first.dim() == 1
    assert not torch.equal(first, other)
    assert first.shape != raw.shape or not torch.allclose(first, raw)


def test_random_crop_pads_short_clips_and_freq_mask_removes_a_band():
    from zoo_audio.augment import freq_mask, random_crop
    g = torch.Generator().manual_seed(0)
    assert random_crop(seconds=0.5)(torch.ones(100), g).shape == (SAMPLE_RATE // 2,)
    raw = torch.from_numpy(tone(1000, 0.5))
    removed = freq_mask(max_hz=8000, masks=1)
    energy = [removed(raw, torch.Generator().manual_seed(s)).square().sum() / raw.square().sum() for s in range(20)]
    assert min(energy) < 0.01 and max(energy) > 0.99  # the band covered 1 kHz in some draws, not in others


# -- the CLAP recipe --------------------------------------------------------------------------


def test_clap_recipe_trains_and_loss_goes_down(tmp_path):
    overrides = {"data.options": {"size": 160}, "data.batch_size": 32,
                 "run.steps": 12, "run.log_every": 1, "run.progress": False, "optim.warmup_steps": 0}
    result = zoo.train(RECIPE, overrides=overrides, run_dir=tmp_path / "clap", progress=False)
    losses = logged_losses(result.run_dir)
    assert len(losses) == 12 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    model = zoo.load(f"local-dir:{result.run_dir}")
    assert set(model.towers) == {"audio", "text"}
