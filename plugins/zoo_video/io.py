"""Reading and writing videos; the raw form is float32 ``(T, C, H, W)`` in [0, 1].

``load_video`` accepts a path (decoded with PyAV, RGB), encoded bytes, an array/tensor
``(T, C, H, W)``, ``(T, H, W, C)`` or ``(T, H, W)`` (uint8 → /255; floats are taken as [0, 1]) or
a list of frames. It keeps every frame unless ``num_frames`` is given, then picks them by
``sampling``:

- ``"uniform"``: one frame from the middle of each of ``num_frames`` equal segments (deterministic);
- ``"random_clip"``: ``num_frames`` consecutive frames from a random start drawn from
  ``generator`` (a ``torch.Generator``; required, so results are reproducible).

The modality's registered ``load`` is ``load_video`` with its defaults (all frames; idempotent).
Fixed-length clips for training come from the ``frames`` encoder's ``num_frames`` (uniform, in
its preprocess) or from the ``temporal_crop`` augmentation (random, seeded per sample).
torchvision 0.29 no longer reads videos, so PyAV is the decoder.
"""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.checks import require
from zoo.errors import DataError, RecipeError, ShapeError

CHANNELS = (1, 3)
SAMPLINGS = ("uniform", "random_clip")
# The decoded float32 video a file may become; larger ones are refused while decoding (a tiny file of
# millions of black frames would otherwise fill the memory). Raise it for long videos you trust.
MAX_DECODED_BYTES = 4 << 30


def require_av():
    """PyAV, which reads and writes video files (:func:`zoo.checks.require`)."""
    return require("av", "video", "reading video files")


def load_video(value: Any, num_frames: int | None = None, sampling: str = "uniform",
               generator: torch.Generator | None = None) -> Tensor:
    """Any accepted input → float32 ``(T, C, H, W)`` in [0, 1] (``T = num_frames`` when given)."""
    if isinstance(value, (str, os.PathLike)):
        video = read_video_file(os.fspath(value), os.fspath(value))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        video = read_video_file(io.BytesIO(bytes(value)), f"<{len(value)} bytes>")
    else:
        video = to_tchw(value)
    if num_frames is None:
        return video
    return video[frame_indices(video.shape[0], num_frames, sampling, generator)]


def is_single_video(value: Any) -> bool:
    """One video: a path, bytes, or frames ``(T, [C,] H, W)`` / ``(T, H, W, C)``; ``(B, T, C, H, W)`` is a batch."""
    if isinstance(value, (Tensor, np.ndarray)):
        return value.ndim in (3, 4)
    return isinstance(value, (str, os.PathLike, bytes, bytearray, memoryview))


def read_video_file(source: Any, label: str) -> Tensor:
    """Decode every frame of the first video stream as RGB → ``(T, 3, H, W)`` float."""
    av = require_av()
    try:
        with av.open(source) as container:
            frames = []
            for f in container.decode(video=0):
                if (len(frames) + 1) * f.width * f.height * 3 * 4 > MAX_DECODED_BYTES:
                    raise DataError(f"video file {label} decodes to more than zoo_video.io.MAX_DECODED_BYTES = "
                                    f"{MAX_DECODED_BYTES / 2**30:.1f} GiB of float32 frames ({f.width}x{f.height}, "
                                    f"{len(frames) + 1}+ frames). Cut or downscale it (ffmpeg -t / -vf scale), or "
                                    f"raise zoo_video.io.MAX_DECODED_BYTES if it is meant to be this large.")
                frames.append(f.to_ndarray(format="rgb24"))  # (H, W, 3)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - PyAV raises FFmpegError subclasses, OSError, IndexError…
        raise DataError(f"cannot read video file {label}: {type(exc).__name__}: {exc}. The file is missing, has no "
                        f"video stream, or is in a format FFmpeg cannot decode; re-encode it (e.g. to H.264 MP4).") from exc
    if not frames:
        raise DataError(f"video file {label} has no decodable frame; remove it from the dataset.")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255)  # (T, 3, H, W)


def to_tchw(value: Any) -> Tensor:
    """An array/tensor/list of frames → float32 ``(T, C, H, W)`` in [0, 1]."""
    if isinstance(value, Tensor) and value.dtype == torch.float32 and value.dim() == 4 and value.shape[1] in CHANNELS:
        return value  # already a raw: load is idempotent
    try:
        if isinstance(value, (list, tuple)):
            value = np.stack([np.asarray(v) for v in value])
        t = value if isinstance(value, Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(value)))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"video modality: cannot read a {type(value).__name__} as frames ({exc}); pass a path or "
                        f"an array (T, C, H, W) / (T, H, W, C).") from exc
    if t.dim() == 3:
        t = t[:, None]  # (T, H, W) grey frames → (T, 1, H, W)
    if t.dim() != 4 or not (t.shape[1] in CHANNELS or t.shape[-1] in CHANNELS):
        raise ShapeError(f"video modality: expected frames (T, C, H, W) or (T, H, W, C) with C in {CHANNELS}, "
                         f"got shape {tuple(t.shape)}.")
    if t.shape[1] not in CHANNELS:
        t = t.permute(0, 3, 1, 2)  # (T, H, W, C) → (T, C, H, W)
    if t.shape[0] == 0:
        raise DataError("video modality: the video has no frames.")
    if t.dtype == torch.uint8:
        return t.float().div(255).contiguous()
    if not t.is_floating_point():
        raise DataError(f"video modality: frames must be uint8 or float in [0, 1], got dtype {t.dtype}.")
    return t.float().contiguous()


def frame_indices(total: int, num_frames: int, sampling: str = "uniform",
                  generator: torch.Generator | None = None) -> Tensor:
    """``num_frames`` indices into ``total`` frames (repeats the last frame of a short video)."""
    if num_frames < 1:
        raise RecipeError(f"num_frames must be ≥ 1, got {num_frames}.")
    if sampling == "uniform":
        return ((torch.arange(num_frames) + 0.5) * total / num_frames).long().clamp(max=total - 1)
    if sampling == "random_clip":
        if generator is None:
            raise RecipeError("sampling='random_clip' needs generator=torch.Generator().manual_seed(…) so the clip is "
                              "reproducible; in training use the temporal_crop augmentation.")
        start = int(torch.randint(max(total - num_frames, 0) + 1, (), generator=generator))
        return (start + torch.arange(num_frames)).clamp(max=total - 1)
    raise RecipeError(f"unknown frame sampling {sampling!r}; choose one of {', '.join(SAMPLINGS)}.")


def collate_video(raws: list[Tensor]) -> Tensor:
    """``(T, C, H, W)`` videos of one shape → ``(B, T, C, H, W)``."""
    if not raws:
        raise DataError("video modality: cannot collate an empty list of videos.")
    shapes = sorted({tuple(r.shape) for r in raws})
    if len(shapes) != 1:
        raise ShapeError(f"video modality: a batch needs videos of one shape (T, C, H, W), got {shapes}. Fix T with the "
                         f"frames encoder's num_frames or the temporal_crop augmentation, and H, W at the dataset.")
    return torch.stack(raws)  # (B, T, C, H, W)


def write_video(path: str | os.PathLike, video: Any, fps: int = 8, codec: str = "ffv1") -> None:
    """Encode ``(T, C, H, W)`` frames (float [0, 1] or uint8) to a file with PyAV.

    ``ffv1`` (in ``.mkv``) is lossless; ``mpeg4`` / ``libx264`` (in ``.mp4``) are lossy and need
    even H and W.
    """
    av = require_av()
    frames = (to_tchw(video).clamp(0, 1) * 255).round().byte()  # (T, C, H, W)
    if frames.shape[1] == 1:
        frames = frames.expand(-1, 3, -1, -1)
    frames = frames.permute(0, 2, 3, 1).numpy()  # (T, H, W, 3)
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())


def render_video(value: Any) -> tuple[str, bytes]:
    """A video (anything :func:`load_video` reads) → ``("image/png", its first frame as PNG)`` for a web page."""
    from PIL import Image
    frame = load_video(value)[0]  # (C, H, W) in [0, 1]
    arr = (frame.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(buf, format="PNG")
    return "image/png", buf.getvalue()
