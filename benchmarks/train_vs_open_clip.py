"""End to end: ``zoo train`` against ``open_clip_train`` on the same model, data, batch and optimizer.

    python benchmarks/train_vs_open_clip.py            # CPU, fp32, 2 threads, A B B A runs (~8 minutes)
    python benchmarks/train_vs_open_clip.py --quick    # smaller batch and fewer steps (< 5 minutes)

The model: open_clip's ``ViT-S-32`` config shrunk for a CPU (vision 32×32 px, patch 8, width 128,
2 layers; text context 16, width 128, 2 layers, open_clip's BPE tokenizer and 49,408-token
vocabulary; embed 128), random init. open_clip_train builds it from a model-config JSON registered
with ``open_clip.add_model_config``; the zoo builds the same towers with its ``open_clip:<arch>``
image and text encoders (``projection = "none"``: the towers' own projections are open_clip's).
Both seed the global RNG with the same seed right before building vision tower, then text tower,
so the initial weights are identical (checked by ``--check-init``).

The data: webdataset shards of the real 8×8 digits shipped with scikit-learn, upscaled to 32×32
RGB PNG, each copy with a different caption template (``--copies``). open_clip_train reads them
with its own webdataset pipeline (``--dataset-type webdataset``, its ``RandomResizedCrop`` at
scale (0.9, 1.0), bicubic); the zoo with its ``webdataset`` dataset and the ``clip`` augmentation
(the same crop). Same batch, AdamW (lr 5e-4, betas (0.9, 0.98), eps 1e-6, weight decay 0.2 off
gains/biases/temperature), constant LR, fp32, ``--threads`` torch threads, ``--workers`` loader
workers. open_clip_train is driven through its own ``main`` with its own CLI arguments.

Throughput: wall and process-CPU time between the end of optimizer step ``--warmup`` and the end of
the last, read by torch's global optimizer-step hook in both (data loading, forward, backward and
each trainer's own logging all fall in between); with ``--threads 1`` CPU time is the steadier number on
a shared machine (with more threads, waiting OpenMP threads spin and count).
Peak memory: the process's peak resident set (``VmHWM``), everything included.
Runs alternate A B B A in fresh processes; medians are reported.

Loss curves: both log the loss of every step. The initial weights are identical, but the two
cannot be seeded alike past that: open_clip's webdataset pipeline orders samples by its shard
shuffle and a shuffle buffer, and draws crops from the global RNG; the zoo's sampler and
per-sample augmentation seeds are its own. The first 50 losses are compared as curves
(mean over blocks of 10 steps) against the spread of the zoo's own curve across seeds.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ARCH = "zoo-bench-vit-s32-tiny"
BASE = "ViT-S-32"
VISION = {"image_size": 32, "patch_size": 8, "width": 128, "layers": 2}
TEXT = {"context_length": 16, "width": 128, "heads": 2, "layers": 2}
EMBED = 128
OPTIM = {"lr": 5e-4, "beta1": 0.9, "beta2": 0.98, "eps": 1e-6, "wd": 0.2}

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _driver  # noqa: E402
from _driver import alternate, check_warmup, child_main, timing_parser  # noqa: E402
from _recipes import OPEN_CLIP_MODEL  # noqa: E402 - shared with the other open_clip benchmark

RECIPE = OPEN_CLIP_MODEL + """
[data]
dataset = "webdataset"
options = {{ urls = {{ train = "{urls}" }}, fields = {{ image = "png", caption = "txt" }} }}
batch_size = {batch}
num_workers = {workers}

[pairs]
strategy = "paired"
options = {{ fields = ["image", "caption"], augment = {{ image = [{{ name = "clip" }}] }} }}

[objective]
name = "clip"

[optim]
lr = {lr}
betas = [{beta1}, {beta2}]
eps = {eps}
weight_decay = {wd}
warmup_steps = 0
schedule = "constant"

[run]
steps = {steps}
seed = {seed}
precision = "fp32"
log_every = 1
progress = false
"""


# ------------------------------------------------------------------------------ data and model config

def model_config() -> dict:
    import open_clip
    cfg = json.loads(json.dumps(open_clip.get_model_config(BASE)))
    cfg["embed_dim"] = EMBED
    cfg["vision_cfg"].update(VISION)
    cfg["text_cfg"].update(TEXT)
    return cfg


def register_arch(folder: Path) -> None:
    """Make ``ARCH`` an open_clip model config (both sides build from it)."""
    import open_clip
    path = folder / f"{ARCH}.json"
    if not path.exists():
        path.write_text(json.dumps(model_config()))
    open_clip.add_model_config(path)


def make_shards(folder: Path, copies: int, per_shard: int = 2000) -> tuple[str, int]:
    """Digits → 32×32 RGB PNG + caption, webdataset tar shards; returns (brace pattern, samples)."""
    sys.path.insert(0, str(ROOT / "plugins"))
    from PIL import Image

    from zoo_data.digits import CAPTION_TEMPLATES, caption_for, load_sklearn_digits

    images, labels = load_sklearn_digits()  # (N, 1, 8, 8) in [0, 1]
    rows = [(c, i) for c in range(copies) for i in range(len(labels))]
    shards = (len(rows) + per_shard - 1) // per_shard
    for s in range(shards):
        with tarfile.open(folder / f"digits-{s:03d}.tar", "w") as tar:
            for c, i in rows[s * per_shard:(s + 1) * per_shard]:
                px = (images[i, 0] * 255).round().to(torch.uint8).numpy()
                img = Image.fromarray(px, "L").resize((32, 32), Image.BICUBIC).convert("RGB")
                buf = io.BytesIO()
                img.save(buf, format="PNG")
                caption = caption_for(int(labels[i]), (c + i) % len(CAPTION_TEMPLATES)).encode()
                for ext, data in (("png", buf.getvalue()), ("txt", caption)):
                    info = tarfile.TarInfo(f"{c:02d}{i:05d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return str(folder / f"digits-{{000..{shards - 1:03d}}}.tar"), len(rows)


class StepClock:
    """(wall, CPU) seconds at the end of every optimizer step, by torch's global step hook: the same
    measurement for both trainers (data loading, forward, backward, logging all fall between two)."""

    def __init__(self):
        self.marks: list[tuple[float, float]] = []
        from torch.optim.optimizer import register_optimizer_step_post_hook
        register_optimizer_step_post_hook(lambda *_: self.marks.append((time.perf_counter(), time.process_time())))


def peak_rss() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024.0


# ------------------------------------------------------------------------------ the two sides

def run_open_clip(args, work: Path) -> dict:
    from open_clip_train.main import main as oc_main
    logs = work / f"oc-{os.getpid()}-{time.time_ns()}"
    argv = ["--model", ARCH, "--train-data", args.urls, "--dataset-type", "webdataset",
            "--train-num-samples", str(args.steps * args.batch), "--batch-size", str(args.batch),
            "--epochs", "1", "--workers", str(args.workers), "--precision", "fp32", "--device", "cpu",
            "--lr", str(OPTIM["lr"]), "--beta1", str(OPTIM["beta1"]), "--beta2", str(OPTIM["beta2"]),
            "--eps", str(OPTIM["eps"]), "--wd", str(OPTIM["wd"]), "--warmup", "0", "--lr-scheduler", "const",
            "--seed", str(args.seed), "--log-every-n-steps", "1", "--save-frequency", "0", "--report-to", "",
            "--logs", str(logs), "--name", "bench", "--zeroshot-frequency", "0", "--val-frequency", "0"]
    import open_clip_train.data as ocd
    expander = ocd.tar_file_expander  # webdataset ≥ 0.2.96 ends a tar with {} (open_clip issue #935):
    ocd.tar_file_expander = lambda *a, **k: expander(*a, **{"eof_value": None, **k})  # its documented fix
    clock = StepClock()
    oc_main(argv)
    text = (logs / "bench" / "out.log").read_text()
    losses = [float(m.group(1)) for m in re.finditer(r"(?<![\w_])Loss: (\S+)", text)]
    return {"marks": clock.marks, "losses": losses, "peak_bytes": peak_rss()}


def run_zoo(args, work: Path) -> dict:
    from zoo.recipes import load_recipe
    from zoo.training.trainer import Trainer, TrainResult

    losses, clock = [], StepClock()

    class Timed(Trainer):
        def _after_step(self, loss, batch_size):
            super()._after_step(loss, batch_size)
            losses.append(float(loss))

        def _finish(self, evaluation):
            return TrainResult(self.run_dir, {})

    path = work / f"zoo-{os.getpid()}.toml"
    path.write_text(RECIPE.format(embed=EMBED, arch=ARCH, urls=args.urls, batch=args.batch, workers=args.workers,
                                  steps=args.steps, seed=args.seed, **OPTIM))
    trainer = Timed(load_recipe(str(path)), run_dir=work / f"zoo-run-{os.getpid()}-{time.time_ns()}", progress=False)
    trainer.fit()
    return {"marks": clock.marks, "losses": losses, "peak_bytes": peak_rss()}


def check_init(args, work: Path) -> dict:
    """Build both models from the same seed; the largest weight difference (0.0: identical)."""
    import open_clip
    from open_clip_train.main import random_seed

    from zoo.recipes import load_recipe
    from zoo.training.build import build_model

    random_seed(args.seed, 0)
    ref = open_clip.create_model(ARCH, precision="fp32", device="cpu").state_dict()
    path = work / "init.toml"
    path.write_text(RECIPE.format(embed=EMBED, arch=ARCH, urls=args.urls, batch=args.batch, workers=0,
                                  steps=1, seed=args.seed, **OPTIM))
    from zoo.training.checkpoints import seed_everything
    seed_everything(args.seed)
    ours = build_model(load_recipe(str(path))).state_dict()
    diffs = {}
    for k, v in ours.items():  # towers.image.encoder.visual.* -> visual.*; towers.text.encoder.text.* -> *
        name = k.replace("towers.image.encoder.", "", 1).replace("towers.text.encoder.text.", "", 1)
        if name in ref and ref[name].shape == v.shape:
            diffs[name] = float((ref[name] - v).abs().max())
    return {"compared": len(diffs), "of": len(ref), "max_abs_diff": max(diffs.values()) if diffs else None}


def data_rate(args, work: Path) -> dict:
    """Images/s of decode + augment + preprocess on one core, the zoo's path against open_clip_train's,
    on the same shard files (A B B A, process CPU time; no model). The zoo: its ``webdataset`` dataset
    (tar seek, PNG decode), the collator with the ``clip`` augmentation and the tower's preprocess
    (normalise + collate); open_clip: the same members decoded with PIL and its ``preprocess_train``
    (``RandomResizedCrop`` scale (0.9, 1.0), ``ToTensor``, ``Normalize``), stacked."""
    import open_clip
    from PIL import Image

    from zoo.data import create_dataset
    from zoo.data.collate import Collator
    from zoo.data.pairs import Paired
    from zoo.recipes import load_recipe
    from zoo.training.build import build_model

    torch.set_num_threads(1)
    path = work / "data.toml"
    path.write_text(RECIPE.format(embed=EMBED, arch=ARCH, urls=args.urls, batch=args.batch, workers=0, steps=1,
                                  seed=0, **OPTIM))
    recipe = load_recipe(str(path))
    ds = create_dataset("webdataset", **recipe.data.options)
    collator = Collator(build_model(recipe), Paired(fields=["image"], augment={"image": [{"name": "clip"}]}), ds, 0)
    _, preprocess_train, _ = open_clip.create_model_and_transforms(ARCH)
    n = min(len(ds), 512)

    def zoo_pass():
        for lo in range(0, n - args.batch + 1, args.batch):
            collator([(i, ds[i]) for i in range(lo, lo + args.batch)])

    raw = [_png_of(ds, i) for i in range(n)]

    def oc_pass():
        for lo in range(0, n - args.batch + 1, args.batch):
            torch.stack([preprocess_train(Image.open(io.BytesIO(b)).convert("RGB")) for b in raw[lo:lo + args.batch]])

    rates = {"zoo": [], "open_clip": []}
    for r in range(4):
        for name, fn in ((("zoo", zoo_pass), ("open_clip", oc_pass)) if r % 2 == 0 else
                         (("open_clip", oc_pass), ("zoo", zoo_pass))):
            t = time.process_time()
            fn()
            rates[name].append((n // args.batch) * args.batch / (time.process_time() - t))
    return rates


def _png_of(ds, i: int) -> bytes:
    """The PNG bytes of sample ``i`` as stored in its shard (what open_clip's pipeline decodes)."""
    from zoo_data.streams import read_member
    return read_member(ds.samples[i]["png"])


def child(args) -> int:
    work = Path(args.work)
    register_arch(work)
    run = {"open_clip": run_open_clip, "zoo": run_zoo, "init": check_init, "data": data_rate}[args.child]
    return child_main(args, lambda: run(args, work))


# ------------------------------------------------------------------------------ the driver

def spawn(which: str, argv: list[str], work: Path, urls: str) -> dict:
    return _driver.spawn(__file__, which, argv, "--work", str(work), "--urls", urls, cwd=work)


def blocks(losses: list[float], n: int, size: int = 10) -> list[float]:
    return [statistics.fmean(losses[i:i + size]) for i in range(0, min(n, len(losses)), size)]


def report(args, runs: dict[str, list[dict]], init: dict | None) -> None:
    w = args.warmup
    med = {}
    for k, rs in runs.items():
        n = [len(r["marks"]) - 1 - w for r in rs]  # steps timed: from the end of step w to the last
        sps = [args.batch * m / (r["marks"][-1][0] - r["marks"][w][0]) for m, r in zip(n, rs)]
        cpu = [args.batch * m / (r["marks"][-1][1] - r["marks"][w][1]) for m, r in zip(n, rs)]
        med[k] = {"sps": statistics.median(sps), "each": sps, "cpu": statistics.median(cpu),
                  "mb": statistics.median(r["peak_bytes"] for r in rs) / 2**20}
    print(f"torch {torch.__version__}; cpu; fp32; {args.threads} threads; {args.workers} loader workers; batch "
          f"{args.batch}; {args.steps - w} timed steps after {w}; model {BASE} shrunk (vision 32 px/8, text ctx 16, "
          f"width 128, 2+2 layers); {args.copies} × 1,797 digits as webdataset PNG+txt; A B B A × {args.repeats}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"\n{'trainer':<16} {'samples/s':>10} {'per CPU-s':>10} {'peak RSS MB':>12}   runs (samples/s)")
    for k in ("zoo", "open_clip"):
        name = "zoo train" if k == "zoo" else "open_clip_train"
        print(f"{name:<16} {med[k]['sps']:>10.1f} {med[k]['cpu']:>10.1f} {med[k]['mb']:>12.0f}   "
              f"{', '.join(f'{x:.1f}' for x in med[k]['each'])}")
    pairs = [z / o for z, o in zip(med["zoo"]["each"], med["open_clip"]["each"])]
    print(f"per round (zoo / open_clip_train, neighbouring runs under like load): "
          f"{', '.join(f'{x:.2f}' for x in pairs)}")
    print(f"\n{med['zoo']['sps'] / med['open_clip']['sps']:.2f} x open_clip_train (samples/s; goal ≥ 1.1 on CPU); "
          f"{med['zoo']['cpu'] / med['open_clip']['cpu']:.2f} x per CPU-second (steady under other load with --threads 1; with more, idle threads spin); "
          f"peak memory {med['zoo']['mb'] / med['open_clip']['mb']:.2f} x")
    n = min(50, args.steps)
    print(f"\nloss, mean of each block of 10 steps over the first {n} (same initial weights; data order and crops "
          f"cannot be seeded alike):")
    for k in ("zoo", "open_clip"):
        for i, r in enumerate(runs[k]):
            print(f"  {k:<10} run {i}: " + "  ".join(f"{x:.3f}" for x in blocks(r["losses"], n)))
    zoo_spread = [statistics.fmean(r["losses"][:n]) for r in runs["zoo"]]
    oc = [statistics.fmean(r["losses"][:n]) for r in runs["open_clip"]]
    print(f"  mean of the first {n} losses: zoo {statistics.fmean(zoo_spread):.4f}, open_clip_train "
          f"{statistics.fmean(oc):.4f} (Δ {statistics.fmean(zoo_spread) - statistics.fmean(oc):+.4f}; "
          f"the first loss is ln(batch) = {torch.tensor(float(args.batch)).log():.4f} for both)")
    if init:
        print(f"initial weights: {init['compared']} of {init['of']} open_clip tensors compared, max |Δ| "
              f"{init['max_abs_diff']}")


def parse(argv=None):
    p = timing_parser(__doc__, ["open_clip", "zoo", "init", "data"], steps=60, warmup=10, repeats=2, threads=2,
                      workers=0)
    p.add_argument("--quick", action="store_true", help="batch 32, 16 steps, one A B B A round (< 5 minutes on a quiet 2-core machine)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--copies", type=int, default=4, help="copies of the 1,797 digits, each with other captions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-check-init", action="store_true", help="skip the identical-initial-weights check")
    p.add_argument("--data-only", action="store_true", help="only images/s of decode + augment (both pipelines)")
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--urls", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.warmup, args.repeats, args.copies = 32, 16, 4, 2, 1
    return check_warmup(p, args)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        urls, n = make_shards(work, args.copies)
        rates = spawn("data", argv, work, urls)
        print(f"decode + augment + preprocess, images/s on one core (A B B A × 2, batch {args.batch}): zoo "
              f"{statistics.median(rates['zoo']):.0f}, open_clip_train's pipeline {statistics.median(rates['open_clip']):.0f} "
              f"({statistics.median(rates['zoo']) / statistics.median(rates['open_clip']):.2f} x)\n", flush=True)
        if args.data_only:
            return 0
        if n < args.steps * args.batch:
            raise SystemExit(f"{n} samples < steps × batch = {args.steps * args.batch}; raise --copies")
        init = None if args.no_check_init else spawn("init", argv, work, urls)
        runs = alternate(("zoo", "open_clip"), args.repeats, lambda which: spawn(which, argv, work, urls))
        report(args, runs, init)
    return 0


if __name__ == "__main__":
    sys.exit(main())
