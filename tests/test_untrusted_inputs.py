"""Hostile or broken inputs are named ZooErrors with the fix, raised before the work (issue 12, section 5):
a decompression-bomb PNG, WAVs declaring 1 Hz or cut short, ``(wave, 0)``, a device the machine lacks,
a push with no network, and the linear probe without scikit-learn."""
from __future__ import annotations

import io
import struct
import sys
import zlib

import numpy as np
import pytest
import torch

import zoo
from zoo.errors import CheckpointError, DataError, DeviceError, PluginError, ZooError

sf = pytest.importorskip("soundfile")
Image = pytest.importorskip("PIL.Image")


# -- images ---------------------------------------------------------------------------------------
def _bomb_png(width: int, height: int) -> bytes:
    """A real PNG of 1×1 pixel whose IHDR claims ``width × height`` (CRC fixed): ~70 bytes on disk."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


def test_decompression_bomb_png_is_a_data_error_with_the_fix(tmp_path):
    from zoo_image.io import load_image
    bomb = _bomb_png(100_000, 100_000)  # 10^10 pixels declared
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    for value in (bomb, str(path)):
        with pytest.raises(DataError, match=r"decompression bomb.*MAX_IMAGE_PIXELS"):
            load_image(value)


# -- audio ----------------------------------------------------------------------------------------
def _wav(frames: int = 1600, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(frames, dtype=np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _with_rate(wav: bytes, rate: int) -> bytes:
    data = bytearray(wav)
    data[24:32] = struct.pack("<II", rate, rate * 2)  # fmt chunk: sample rate, byte rate (mono PCM_16)
    return bytes(data)


def test_wav_declaring_1_hz_is_refused_before_reading_samples(tmp_path, monkeypatch):
    from zoo_audio.io import load_audio
    path = tmp_path / "one_hz.wav"
    path.write_bytes(_with_rate(_wav(200), 1))  # old code: 200 s at 1 Hz → 3.2M samples (6.4 GB for longer files)

    def no_read(*a, **k):
        raise AssertionError("samples were read before the header was checked")
    monkeypatch.setattr(sf, "read", no_read)
    for value in (str(path), path.read_bytes()):
        with pytest.raises(DataError, match=r"sample rate 1 Hz is not a plausible.*16000"):
            load_audio(value)


def test_truncated_wav_is_a_data_error_not_eight_samples(tmp_path):
    from zoo_audio.io import load_audio
    cut = _wav(16000)[:44 + 16]  # the header declares 1 s, 8 samples remain
    path = tmp_path / "cut.wav"
    path.write_bytes(cut)
    for value in (str(path), cut):
        with pytest.raises(DataError, match=r"truncated: its header declares 32000 bytes.*holds 16.*Re-export"):
            load_audio(value)
    assert load_audio(_wav(1600)).shape == (1600,)  # an intact file still loads


@pytest.mark.parametrize("rate", [0, -16000, 1, 16000.5, 10**12])
def test_absurd_sample_rate_in_a_tuple_is_a_data_error(rate):
    from zoo_audio.io import load_audio
    with pytest.raises(DataError, match="not a plausible audio rate"):
        load_audio((torch.zeros(100), rate))


def test_audio_too_long_is_refused_before_resampling(monkeypatch):
    from zoo_audio import io as audio_io
    monkeypatch.setattr(audio_io, "MAX_SECONDS", 0.5)
    with pytest.raises(DataError, match="MAX_SECONDS"):
        audio_io.load_audio((torch.zeros(8000), 8000))  # 1 s
    assert audio_io.load_audio((torch.zeros(2000), 8000)).shape == (4000,)


# -- devices --------------------------------------------------------------------------------------
@pytest.fixture
def checkpoint(tiny_model, tmp_path):
    return tiny_model.save_pretrained(tmp_path / "ckpt")


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "meta", "tpu"])
def test_load_on_a_device_the_machine_lacks_is_a_device_error(checkpoint, monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on machines with a GPU
    with pytest.raises(DeviceError, match=r"device .*(not available on this machine|holds no data|not a torch "
                                          r"device).*(cpu|'cuda')"):
        zoo.load(f"local-dir:{checkpoint}", device=device)
    with pytest.raises(DeviceError):  # checked first: nothing is read for a device that cannot hold it
        zoo.load(f"local-dir:{checkpoint / 'missing'}", device=device)
    assert isinstance(pytest.raises(ZooError, zoo.hub.format.load_local, checkpoint, device=device).value, ValueError)
    assert zoo.load(f"local-dir:{checkpoint}", device="cpu").logit_scale.device.type == "cpu"


# -- the Hub --------------------------------------------------------------------------------------
class _Offline:
    def create_repo(self, *a, **k):
        import httpx
        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution")

    upload_folder = create_repo


def test_push_to_hub_without_network_says_the_hub_is_unreachable_and_how_to_save(tiny_model):
    with pytest.raises(CheckpointError, match=r"Hub is unreachable.*save_pretrained\('DIR'\).*zoo push DIR org/m"):
        tiny_model.push_to_hub("org/m", api=_Offline())


# -- evaluation -----------------------------------------------------------------------------------
def test_linear_probe_without_scikit_learn_names_the_install_before_embedding(tiny_model, monkeypatch):
    import zoo.evaluation.tasks as ev
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` now raises ImportError

    def no_embedding(*a, **k):
        raise AssertionError("embedded the dataset before checking scikit-learn")
    monkeypatch.setattr(ev, "embed_dataset", no_embedding)
    with pytest.raises(PluginError, match="pip install scikit-learn"):
        zoo.evaluate(tiny_model, "synthetic-pairs", task="linear_probe", dataset_options={"size": 64})


# -- video ----------------------------------------------------------------------------------------
def test_video_decoding_to_more_than_the_limit_is_refused_while_decoding(tmp_path, monkeypatch):
    pytest.importorskip("av")
    from zoo_video import io as video_io
    video_io.write_video(tmp_path / "long.mkv", torch.zeros(10, 3, 16, 16), codec="ffv1")
    monkeypatch.setattr(video_io, "MAX_DECODED_BYTES", 5 * 16 * 16 * 3 * 4)  # room for 5 of the 10 frames
    with pytest.raises(DataError, match=r"more than zoo_video.io.MAX_DECODED_BYTES.*16x16, 6\+ frames.*ffmpeg"):
        video_io.load_video(tmp_path / "long.mkv")
    monkeypatch.setattr(video_io, "MAX_DECODED_BYTES", 10 * 16 * 16 * 3 * 4)
    assert video_io.load_video(tmp_path / "long.mkv").shape == (10, 3, 16, 16)
