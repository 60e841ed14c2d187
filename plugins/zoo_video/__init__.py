"""The ``video`` modality (``pip install zoo[video]``).

- raw: float32 ``(T, C, H, W)`` in [0, 1]; ``load`` decodes files with PyAV and converts
  arrays/tensors (uint8 → /255, ``(T, H, W, C)`` → ``(T, C, H, W)``); batch: ``(B, T, C, H, W)``.
- encoder ``frames``: any registered image encoder per frame + temporal ``mean`` or ``transformer``.
- augmentations: ``temporal_crop`` (random clip), ``frame_drop``, ``spatial_crop``, ``hflip``
  (spatial parameters shared by all frames of a video).
- pair strategy ``shuffled_frames`` and objective ``clip_intra``: intra-video negatives.

PyAV is imported only when a file is read or written.
"""
from __future__ import annotations

from zoo import hookimpl

from .augment import AUGMENTATIONS
from .frames import FramesEncoder
from .io import collate_video, is_single_video, load_video, render_video, write_video  # noqa: F401
from .objective import ClipIntra
from .pairs import ShuffledFrames


@hookimpl
def zoo_register_modalities(register):
    register("video", load=load_video, collate=collate_video, extra="video", thumbnail=thumbnail,
             render=render_video,
             is_single=is_single_video,
             extensions=(".mp4", ".avi", ".mov", ".mkv", ".webm"),
             description="frames (T, C, H, W) in [0, 1]; batch (B, T, C, H, W)")


def thumbnail(raw):
    """A raw video's middle frame as an ``(H, W[, 3])`` array in [0, 1] for pictures (zoo.evaluation.plots)."""
    frames = load_video(raw)  # (T, C, H, W)
    x = frames[frames.shape[0] // 2]
    return (x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)).clamp(0, 1).numpy()


@hookimpl
def zoo_register_encoders(register):
    register("video", "frames", FramesEncoder,
             description="an image encoder per frame + temporal mean or transformer; levels frame_mean, temporal")


@hookimpl
def zoo_register_augmentations(register):
    for name, (make, description) in AUGMENTATIONS.items():
        register("video", name, make, description=description)


@hookimpl
def zoo_register_pair_strategies(register):
    register("shuffled_frames", ShuffledFrames,
             description="paired views + <field>_shuffled (frames permuted): intra-video negatives")


@hookimpl
def zoo_register_objectives(register):
    register("clip_intra", ClipIntra, citation="Tao et al., Inter-intra contrastive framework, ACM MM 2020",
             description="CLIP with each row's *_shuffled view as an extra negative column")
