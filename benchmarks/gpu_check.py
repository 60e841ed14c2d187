"""The GPU check: one prepared script for a machine with a lent GPU (< 8 minutes), printing one table.

    python benchmarks/gpu_check.py                 # on the GPU machine (or: bash benchmarks/gpu_check.sh)
    python benchmarks/gpu_check.py --cpu           # its CPU-safe parts at tiny sizes (CI: tests/benchmarks/test_gpu_check.py)

1. The CUDA-only tests: ``pytest -m cuda tests/test_cuda.py`` (bf16/fp16 autocast losses against
   float32, ``run.compile``, a 1-GPU NCCL process group, FSDP on one GPU) — passed/failed/skipped.
2. Throughput and MFU of a CLIP with open_clip's ``ViT-B-32`` image tower and its 12-layer text
   transformer, random init, batch 256, bf16 autocast, AdamW, on in-memory synthetic data (random
   224×224 images and captions), by the zoo's Trainer and by open_clip's own loop — the loop of
   open_clip's README (``model(images, texts)`` → ``ClipLoss`` → backward → step) over a DataLoader
   that applies open_clip's normalisation and tokenizer — on the same GPU, alternating (A B B A).
   FLOPs per step (forward + backward) are counted once with ``FlopCounterMode``; MFU is FLOP/s
   over the device's dense bf16 peak (``train_throughput.PEAK_TFLOPS`` or ``--peak-tflops``).

The issue's goal on an H100/H200: ≥ 1,500 samples/s (open_clip reaches ≈ 750 on an A100 at ~11 % MFU).
``--cpu`` runs step 2 on a tiny open_clip config (32 px, width 64, 1 + 1 layers), fp32, batch 8,
and skips step 1 (the tests skip themselves without a GPU); it checks the script, not the speed.
Every measurement runs in a fresh process (so peak memory is its own).
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import _driver  # noqa: E402
from _driver import alternate, check_warmup, child_main, timing_parser  # noqa: E402
from train_throughput import PEAK_TFLOPS  # noqa: E402

TINY = "zoo-gpu-check-tiny"
TINY_CFG = {"embed_dim": 64, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}
CAPTIONS = ["a photo of a {}", "a {} on the table", "a blurry picture of a {}", "the {} in the morning"]
WORDS = ["cat", "dog", "car", "tree", "house", "boat", "bird", "flower"]

from _recipes import OPEN_CLIP_MODEL  # noqa: E402 - shared with the other open_clip benchmark

RECIPE = OPEN_CLIP_MODEL + """[data]
batch_size = {batch}
num_workers = {workers}
[pairs]
strategy = "paired"
options = {{ fields = ["image", "caption"] }}
[objective]
name = "clip"
[optim]
lr = 5e-4
betas = [0.9, 0.98]
eps = 1e-6
weight_decay = 0.2
warmup_steps = 0
schedule = "constant"
[run]
steps = {steps}
seed = 0
device = "{device}"
precision = "{precision}"
log_every = 1000
progress = false
[eval]
tasks = []
"""


# ------------------------------------------------------------------------------ data

class Synthetic(torch.utils.data.Dataset):
    """``n`` random images ``(3, S, S)`` in [0, 1] and captions; the same rows for both loops."""

    fields = {"image": "image", "caption": "text"}
    label_fields: list[str] = []

    def __init__(self, n: int, size: int):
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, size, size, generator=g)
        self.captions = [CAPTIONS[i % len(CAPTIONS)].format(WORDS[(i // 4) % len(WORDS)]) for i in range(n)]

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "caption": self.captions[i]}


def setup(args) -> tuple[str, int]:
    """(open_clip architecture, embed dim): ``ViT-B-32``, or the tiny config registered for ``--cpu``."""
    import open_clip
    if not args.cpu:
        return "ViT-B-32", open_clip.get_model_config("ViT-B-32")["embed_dim"]
    folder = Path(tempfile.mkdtemp(prefix="zoo-gpu-check-"))  # open_clip names the config by the file's stem
    path = folder / f"{TINY}.json"
    path.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(path)
    return TINY, TINY_CFG["embed_dim"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak(device: torch.device) -> float:
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device))
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024.0


# ------------------------------------------------------------------------------ the two loops

def run_zoo(args, device: torch.device) -> dict:
    from zoo.data.inmemory import recipe_with_objects
    from zoo.training.trainer import Trainer, TrainResult

    arch, embed = setup(args)
    data = Synthetic(args.batch * args.batches, args.size)
    marks = []

    class Timed(Trainer):
        def _after_step(self, loss, batch_size):
            super()._after_step(loss, batch_size)
            sync(device)
            marks.append(time.perf_counter())

        def _finish(self, evaluation):
            return TrainResult(self.run_dir, {})

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.toml"
        path.write_text(RECIPE.format(embed=embed, arch=arch, batch=args.batch, workers=args.workers,
                                      steps=args.steps, device=device.type, precision=args.precision))
        recipe = recipe_with_objects(str(path), None, dataset=data)
        Timed(recipe, run_dir=Path(tmp) / "run", progress=False, dataset=data).fit()
    return {"marks": marks, "peak": peak(device)}


def open_clip_parts(args, device: torch.device):
    import open_clip
    arch, _ = setup(args)
    torch.manual_seed(0)
    model = open_clip.create_model(arch, device=device)
    tokenizer = open_clip.get_tokenizer(arch)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(3, 1, 1)

    def collate(rows):
        images = torch.stack([(r["image"] - mean) / std for r in rows])  # (B, 3, S, S), as its Normalize
        return images, tokenizer([r["caption"] for r in rows])
    return model, collate


def run_open_clip(args, device: torch.device) -> dict:
    from open_clip.loss import ClipLoss
    model, collate = open_clip_parts(args, device)
    # open_clip_train's parameter groups: no weight decay on gains, biases and the temperature
    exclude = [p for n, p in model.named_parameters() if p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n
               or "logit_scale" in n]
    ids = {id(p) for p in exclude}
    opt = torch.optim.AdamW([{"params": exclude, "weight_decay": 0.0},
                             {"params": [p for p in model.parameters() if id(p) not in ids], "weight_decay": 0.2}],
                            lr=5e-4, betas=(0.9, 0.98), eps=1e-6)
    loader = torch.utils.data.DataLoader(Synthetic(args.batch * args.batches, args.size), batch_size=args.batch,
                                         shuffle=True, drop_last=True, collate_fn=collate, num_workers=args.workers,
                                         pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
    loss_fn = ClipLoss()
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    marks, step = [], 0
    model.train()
    while step < args.steps:
        for images, texts in loader:
            images, texts = images.to(device, non_blocking=True), texts.to(device, non_blocking=True)
            with amp:
                out = model(images, texts)
                loss = loss_fn(out[0], out[1], out[2]) if isinstance(out, tuple) else loss_fn(
                    out["image_features"], out["text_features"], out["logit_scale"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, 4.6052)
            sync(device)
            marks.append(time.perf_counter())
            step += 1
            if step >= args.steps:
                break
    return {"marks": marks, "peak": peak(device)}


def step_flops(args, device: torch.device) -> dict:
    from open_clip.loss import ClipLoss
    from torch.utils.flop_counter import FlopCounterMode
    model, collate = open_clip_parts(args, device)
    data = Synthetic(args.batch, args.size)
    images, texts = collate([data[i] for i in range(args.batch)])
    with FlopCounterMode(display=False) as counter:
        out = model(images.to(device), texts.to(device))
        feats = (out[0], out[1], out[2]) if isinstance(out, tuple) else (
            out["image_features"], out["text_features"], out["logit_scale"])
        ClipLoss()(*feats).backward()
    return {"flops": float(counter.get_total_flops())}


def child(args) -> int:
    device = torch.device("cpu" if args.cpu else "cuda")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as open_clip_train does
        torch.cuda.reset_peak_memory_stats(device)
    run = {"zoo": run_zoo, "open_clip": run_open_clip, "flops": step_flops}[args.child]
    return child_main(args, lambda: run(args, device))


# ------------------------------------------------------------------------------ the driver

def spawn(which: str, argv: list[str], timeout: float) -> dict:
    return _driver.spawn(__file__, which, argv, timeout=timeout)


def run_tests(timeout: float) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"),
                                                         os.environ.get("PYTHONPATH", "")])}
    try:
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                              str(ROOT / "tests" / "test_cuda.py")], capture_output=True, text=True, env=env,
                             timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    summary = [line for line in out.stdout.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    if out.returncode not in (0, 5):
        print(out.stdout[-6000:], file=sys.stderr)
    return summary[-1].strip("= ") if summary else f"pytest exit {out.returncode}"


def device_peak(args) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops * 1e12
    if args.cpu or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    for key, (bf16, tf32, _fp32) in PEAK_TFLOPS.items():
        if key in name:
            return (bf16 if args.precision == "bf16" else tf32) * 1e12
    return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.child:
        return child(args)
    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device here: run with --cpu for the CPU-safe parts", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    tests = "not run (--cpu: the cuda tests skip without a GPU)" if args.cpu or args.no_tests else run_tests(300)
    flops = spawn("flops", argv, 600)["flops"]
    runs = alternate(("zoo", "open_clip"), args.repeats, lambda which: spawn(which, argv, 600))
    pk = device_peak(args)
    where = "cpu (--cpu: tiny config, not a speed measurement)" if args.cpu else torch.cuda.get_device_name(0)
    arch = f"{TINY} (tiny)" if args.cpu else "ViT-B-32 + 12-layer text"
    print(f"GPU check — {where}; torch {torch.__version__}; {arch}; batch {args.batch}; {args.precision}; "
          f"{args.steps - args.warmup} timed steps after {args.warmup}; {args.workers} loader workers; "
          f"{args.repeats} runs each, A B B A")
    print(f"\n| {'check':<34} | {'samples/s':>10} | {'peak GB':>8} | {'TFLOP/s':>8} | {'MFU':>6} |")
    print(f"|{'-' * 36}|{'-' * 12}|{'-' * 10}|{'-' * 10}|{'-' * 8}|")
    print(f"| {'CUDA tests (pytest -m cuda)':<34} | {tests:>45} |")
    med = {}
    for k, rs in runs.items():
        sps = [args.batch * (len(r["marks"]) - args.warmup) / (r["marks"][-1] - r["marks"][args.warmup - 1])
               for r in rs]
        med[k] = statistics.median(sps)
        tf = med[k] / args.batch * flops / 1e12
        mfu = f"{tf * 1e12 / pk:.1%}" if pk else "—"
        name = "zoo Trainer" if k == "zoo" else "open_clip loop"
        print(f"| {name:<34} | {med[k]:>10.1f} | {statistics.median(r['peak'] for r in rs) / 2**30:>8.2f} | "
              f"{tf:>8.2f} | {mfu:>6} |")
    print(f"\nzoo / open_clip: {med['zoo'] / med['open_clip']:.2f} x; FLOPs per step {flops / 1e9:.3f} GFLOP; "
          f"goal on an H100/H200: ≥ 1,500 samples/s; wall {time.perf_counter() - t0:.0f} s")
    return 0


def parse(argv=None):
    p = timing_parser(__doc__, ["zoo", "open_clip", "flops"], steps="40 (--cpu: 3)", warmup="15 (--cpu: 1)",
                      repeats=2, threads="8 (--cpu: 1)", workers="8 (--cpu: 0)")
    p.add_argument("--cpu", action="store_true", help="CPU-safe parts only, tiny sizes (CI)")
    p.add_argument("--batch", type=int, default=None, help="default 256 (--cpu: 8)")
    p.add_argument("--batches", type=int, default=4, help="dataset size in batches (epochs wrap around)")
    p.add_argument("--precision", choices=["bf16", "fp32"], default=None, help="default bf16 (--cpu: fp32)")
    p.add_argument("--peak-tflops", type=float, default=0.0, help="device dense peak for MFU (default: by name)")
    p.add_argument("--no-tests", action="store_true", help="skip the CUDA tests")
    args = p.parse_args(argv)
    small = args.cpu
    defaults = {"batch": (8, 256), "steps": (3, 40), "warmup": (1, 15), "workers": (0, 8), "threads": (1, 8),
                "precision": ("fp32", "bf16")}
    for k, (cpu, gpu) in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, cpu if small else gpu)
    args.size = 32 if small else 224
    return check_warmup(p, args, least=1)


if __name__ == "__main__":
    sys.exit(main())
