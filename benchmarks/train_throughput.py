"""Training throughput: the zoo's Trainer (what ``zoo train`` runs) against a hand-written PyTorch loop.

    python benchmarks/train_throughput.py                       # CPU, fp32, 3 interleaved pairs of runs
    python benchmarks/train_throughput.py --precision bf16 --compile
    python benchmarks/train_throughput.py --device cuda --batch 4096 --hidden 2048 --workers 4   # + MFU

Both sides train the same tiny CLIP — two MLP towers over the core's ``vector`` modality
(``synthetic-pairs``), linear projections, the ``clip`` objective, AdamW — on the same data with
the same batch size. The hand loop is what one writes without a framework::

    for batch in DataLoader(dataset, batch_size, shuffle=True, drop_last=True):
        emb = {k: model.embed_batch(k, batch[k]) for k in ("x", "y")}
        loss = objective(emb, logit_scale=model.scale()); loss.backward(); opt.step(); opt.zero_grad()

(the optimizer has the zoo's two parameter groups, weight decay on matrices only, as open_clip, and
the same AdamW kernel as the Trainer: torch's fused one where the parameters allow it).
The zoo side is :class:`zoo.training.trainer.Trainer` built from the equivalent recipe, run by ``fit()``:
its data pipeline (seeded per-sample collation, pair strategy, tower preprocessing), LR schedule,
temperature clamp, NaN check, loss logging and progress accounting all count as its overhead.

Each run is a fresh subprocess (so peak memory is its own); the zoo and the hand loop alternate
(A, B, B, A, …) so that load from other processes hits both alike, and medians are reported.
Separate runs differ by ±15–20 % even on a quiet 2-core machine: on this 2-vCPU KVM guest a 2-thread
step switches between two speeds (~14 and ~20 ms here) with the host's placement of the vCPUs, even
inside one process and for a pure-torch loop (benchmarks/README.md, "What the mode is");
the *lockstep* run (one process; each zoo step is followed by one hand step, ``--lockstep-steps``
timed pairs, per-step medians, and the paired per-step ratio with its interquartile range)
compares the two loops under the same load and is the number to read.
Throughput: samples/s over the steps after ``--warmup``. Memory: CPU — peak resident set during
training above the resident set once everything is built (``/proc/self/clear_refs`` resets the
high-water mark); CUDA — ``torch.cuda.max_memory_allocated``. FLOPs of one training step (towers
and loss, forward + backward) are counted with ``torch.utils.flop_counter.FlopCounterMode``; on
CUDA the model FLOPs utilisation is FLOPs/s over the device's dense peak (``--peak-tflops``).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _driver  # noqa: E402
from _driver import alternate, check_warmup, child_main, timing_parser  # noqa: E402

RECIPE = """
[model]
embed_dim = {embed}
[model.towers]
x = {{ modality = "vector", encoder = "mlp", in_dim = {dim}, hidden = {hidden}, out_dim = {hidden}, layers = {layers} }}
y = {{ modality = "vector", encoder = "mlp", in_dim = {dim}, hidden = {hidden}, out_dim = {hidden}, layers = {layers} }}

[data]
dataset = "synthetic-pairs"
options = {{ size = {size}, dim = {dim}, classes = 16 }}
batch_size = {batch}
num_workers = {workers}

[pairs]
strategy = "paired"
options = {{ fields = ["x", "y"] }}

[objective]
name = "clip"

[optim]
lr = 1e-3
weight_decay = 0.1
schedule = "constant"

[run]
steps = {steps}
seed = 0
device = "{device}"
precision = "{precision}"
compile = {compile}
log_every = 10
progress = false
"""

# dense peak TFLOP/s per device-name fragment, first match wins: (bf16, tf32, fp32 without tensor cores)
PEAK_TFLOPS = {"H100 PCIe": (756.0, 378.0, 51.0), "H100": (989.0, 494.0, 67.0), "H200": (989.0, 494.0, 67.0),
               "A100": (312.0, 156.0, 19.5), "L40S": (362.0, 183.0, 91.6), "A10": (125.0, 62.5, 31.2),
               "L4": (121.0, 60.0, 30.3)}


def recipe_text(args) -> str:
    return RECIPE.format(embed=args.embed, dim=args.dim, hidden=args.hidden, layers=args.layers,
                         size=args.batch * args.batches, batch=args.batch, workers=args.workers,
                         steps=args.steps, device=args.device, precision=args.precision,
                         compile=str(args.compile).lower())


# ------------------------------------------------------------------------------ memory and timing

def reset_peak(device: torch.device) -> float:
    """Reset the peak-memory high-water mark; return the current bytes (the baseline)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return float(torch.cuda.memory_allocated(device))
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_bytes("VmRSS:")


def peak_bytes(device: torch.device) -> float:
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device))
    return _status_bytes("VmHWM:")


def _status_bytes(field: str) -> float:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field)) * 1024.0
    except (OSError, StopIteration):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


class Clock:
    """Wall and CPU seconds from the end of step ``warmup`` to the end of the last step, and peak memory.

    The process CPU time (all its threads) is what the steps cost even when other processes share
    the cores; wall time is what a user waits for (and the only meaningful one on a GPU)."""

    def __init__(self, device: torch.device, warmup: int, steps: int):
        self.device, self.warmup, self.steps = device, warmup, steps
        self.t0 = self.t1 = self.cpu0 = self.cpu1 = self.peak = 0.0

    def tick(self, step: int) -> None:
        """Call after each step; the last one also reads the peak memory (before any teardown)."""
        if step in (self.warmup, self.steps):
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            now, cpu = time.perf_counter(), time.process_time()
            if step == self.warmup:
                self.t0, self.cpu0 = now, cpu
            else:
                self.t1, self.cpu1, self.peak = now, cpu, peak_bytes(self.device)

    def result(self, base: float) -> dict:
        return {"seconds": self.t1 - self.t0, "cpu_seconds": self.cpu1 - self.cpu0, "peak_bytes": self.peak - base}


# ------------------------------------------------------------------------------ the two sides

def zoo_trainer(recipe_path: str, run_dir: Path, after_step):
    """The Trainer, running ``fit()`` unchanged; ``after_step(step)`` is called after each step's
    own bookkeeping, and the final save and plots (not part of the steps) are skipped."""
    from zoo.recipes import load_recipe
    from zoo.training.trainer import Trainer, TrainResult

    class TimedTrainer(Trainer):
        def _after_step(self, loss, batch_size):
            super()._after_step(loss, batch_size)
            after_step(self.state.step)

        def _finish(self, evaluation):
            return TrainResult(self.run_dir, {})

    return TimedTrainer(load_recipe(recipe_path), run_dir=run_dir, progress=False)


def hand_steps(recipe_path: str, device: torch.device):
    """The minimal loop (same model, objective, data, batch size, optimizer): the first ``next`` builds
    it, each further one runs one step."""
    import zoo
    from zoo.data import create_dataset
    from zoo.recipes import load_recipe
    from zoo.training.build import build_model, prepare_encoders

    recipe = load_recipe(recipe_path)
    torch.manual_seed(0)
    model = build_model(recipe).to(device).train()
    prepare_encoders(model, recipe.run)  # torch.compile of each encoder, as the trainer does
    objective = zoo.create_objective("clip")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "logit_" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "logit_" not in n)]
    from zoo.training.optim import can_fuse  # the same AdamW kernel as the Trainer's (fused where torch has one):
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.optim.weight_decay},  # as open_clip:
                             {"params": rest, "weight_decay": 0.0}],                       # no decay on biases
                            lr=recipe.optim.lr, betas=tuple(recipe.optim.betas), eps=recipe.optim.eps,
                            fused=can_fuse(decay + rest) or None)  # the overhead measured is the trainer's own
    dataset = create_dataset("synthetic-pairs", **recipe.data.options)
    workers = recipe.data.num_workers  # kept across epochs, as a careful hand loop (and the zoo) keeps them
    loader = torch.utils.data.DataLoader(dataset, batch_size=recipe.data.batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if recipe.run.precision == "bf16"
           else torch.autocast(device.type, enabled=False))
    yield  # built: the first next() sets up, each further one runs a step
    while True:
        for batch in loader:
            with amp:
                emb = {k: model.embed_batch(k, batch[k].to(device, non_blocking=True)) for k in ("x", "y")}
                loss = objective(emb, logit_scale=model.scale())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            yield


def run_zoo(args, recipe_path: str, device: torch.device) -> dict:
    clock = Clock(device, args.warmup, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = zoo_trainer(recipe_path, Path(tmp) / "run", clock.tick)
        base = reset_peak(device)
        trainer.fit()
    return clock.result(base)


def run_hand(args, recipe_path: str, device: torch.device) -> dict:
    clock, steps = Clock(device, args.warmup, args.steps), hand_steps(recipe_path, device)
    next(steps)
    base = reset_peak(device)
    for step in range(1, args.steps + 1):
        next(steps)
        clock.tick(step)
    return clock.result(base)


def run_lockstep(args, recipe_path: str, device: torch.device) -> dict:
    """Both loops in one process, one zoo step then one hand step: per-step wall and CPU seconds.

    Neighbouring steps see the same machine load, so on a shared machine the per-step medians
    compare the two loops far more steadily than separate runs do (memory is not measured here)."""
    times = {"zoo": [], "hand": []}
    hand = hand_steps(recipe_path, device)
    next(hand)
    mark = [0.0, 0.0]

    def now():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter(), time.process_time()

    def after_zoo_step(step):
        t = now()
        times["zoo"].append((t[0] - mark[0], t[1] - mark[1]))
        next(hand)
        mark[:] = now()
        times["hand"].append((mark[0] - t[0], mark[1] - t[1]))

    with tempfile.TemporaryDirectory() as tmp:
        trainer = zoo_trainer(recipe_path, Path(tmp) / "run", after_zoo_step)
        mark[:] = now()
        trainer.fit()
    return {k: [list(x) for x in v[args.warmup:]] for k, v in times.items()}


def step_flops(recipe_path: str, device: torch.device) -> float:
    """FLOPs of one training step of the model (towers + loss, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    import zoo
    from zoo.data import create_dataset
    from zoo.recipes import load_recipe
    from zoo.training.build import build_model

    recipe = load_recipe(recipe_path)
    model = build_model(recipe).to(device)
    ds = create_dataset("synthetic-pairs", **recipe.data.options)
    rows = range(recipe.data.batch_size)
    batch = {k: torch.stack([ds[i][k] for i in rows]).to(device) for k in ("x", "y")}
    with FlopCounterMode(display=False) as counter:
        emb = {k: model.embed_batch(k, batch[k]) for k in batch}
        zoo.create_objective("clip")(emb, logit_scale=model.scale()).backward()
    return float(counter.get_total_flops())


def child(args) -> int:
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.toml")
        Path(path).write_text(recipe_text(args))
        if args.child == "flops":
            return child_main(args, lambda: {"flops": step_flops(path, device)})
        if args.child == "lockstep":  # its own length: per-step ratios need many steps to be read under noise
            args.steps = args.warmup + args.lockstep_steps
            Path(path).write_text(recipe_text(args))
        run = {"zoo": run_zoo, "hand": run_hand, "lockstep": run_lockstep}[args.child]
        return child_main(args, lambda: run(args, path, device))


# ------------------------------------------------------------------------------ the driver

def spawn(which: str, argv: list[str]) -> dict:
    # the core's vector modality needs no plugin
    return _driver.spawn(__file__, which, argv, env={"ZOO_DISABLE_PLUGIN_AUTOLOAD": "1"})


def peak_flops(args) -> float | None:
    """The device's dense peak FLOP/s for the run's precision (``--peak-tflops`` overrides)."""
    if args.peak_tflops:
        return args.peak_tflops * 1e12
    if not (args.device.startswith("cuda") and torch.cuda.is_available()):
        return None
    name = torch.cuda.get_device_name(torch.device(args.device))
    matmul = torch.backends.cuda.matmul
    tf32 = getattr(matmul, "fp32_precision", None) == "tf32" or bool(getattr(matmul, "allow_tf32", False))
    for key, (bf16, tf32_peak, fp32) in PEAK_TFLOPS.items():
        if key in name:
            return (bf16 if args.precision == "bf16" else tf32_peak if tf32 else fp32) * 1e12
    return None


def report(args, runs: dict[str, list[dict]], flops: float) -> None:
    samples = (args.steps - args.warmup) * args.batch
    cpu = not args.device.startswith("cuda")
    med = {k: {"sps": statistics.median(samples / r["seconds"] for r in v),
               "cpu_sps": statistics.median(samples / r["cpu_seconds"] for r in v),
               "mb": statistics.median(r["peak_bytes"] for r in v) / 2**20} for k, v in runs.items()}
    peak = peak_flops(args)
    print(f"torch {torch.__version__}; device {args.device}; precision {args.precision}; compile {args.compile}; "
          f"batch {args.batch}; towers mlp {args.dim}->{args.hidden}x{args.layers}->{args.embed}; "
          f"{args.threads} threads; {args.steps - args.warmup} timed steps after {args.warmup}; "
          f"median of {args.repeats} interleaved runs")
    print(f"model FLOPs per step (forward + backward): {flops / 1e9:.2f} GFLOP\n")
    print(f"{'loop':<6} {'samples/s':>10} {'per CPU-s':>10} {'peak MB':>8} {'TFLOP/s':>8} {'MFU':>6}   "
          f"runs (samples/s)")
    for k in ("zoo", "hand"):
        tflops = med[k]["sps"] / args.batch * flops / 1e12
        mfu = f"{tflops * 1e12 / peak:.1%}" if peak else "—"
        per_cpu = f"{med[k]['cpu_sps']:.0f}" if cpu else "—"
        each = ", ".join(f"{samples / r['seconds']:.0f}" for r in runs[k])
        print(f"{k:<6} {med[k]['sps']:>10.0f} {per_cpu:>10} {med[k]['mb']:>8.1f} {tflops:>8.3f} {mfu:>6}   {each}")
    ratios = [samples / z["seconds"] / (samples / h["seconds"]) for z, h in zip(runs["zoo"], runs["hand"])]
    print(f"\nzoo / hand throughput: {med['zoo']['sps'] / med['hand']['sps']:.3f} "
          f"(zoo overhead {med['hand']['sps'] / med['zoo']['sps'] - 1:+.1%}, target ≤ +3%); "
          f"run by run {min(ratios):.3f} … {max(ratios):.3f} (separate processes: read the lockstep below)")
    if cpu:  # CPU time is robust to other processes sharing the cores
        print(f"zoo / hand per CPU-second: {med['zoo']['cpu_sps'] / med['hand']['cpu_sps']:.3f} "
              f"(zoo overhead {med['hand']['cpu_sps'] / med['zoo']['cpu_sps'] - 1:+.1%})")
    print(f"peak memory zoo / hand: {med['zoo']['mb'] / max(med['hand']['mb'], 1e-9):.2f}")
    if not peak and not cpu:
        print("MFU: unknown device peak; pass --peak-tflops")


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile)."""
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def report_lockstep(args, times: dict[str, list[list[float]]]) -> None:
    """Per-step medians of the one-process comparison (each zoo step followed by a hand step), and the
    spread of the paired per-step ratios: step i of the zoo against the hand step right after it,
    which saw the same machine load; the interquartile range says how far one run's number can be trusted."""
    med = {k: [statistics.median(t[i] for t in v) for i in (0, 1)] for k, v in times.items()}
    n = len(times["zoo"])
    print(f"\nlockstep (one process, {n} zoo steps each followed by one hand step; per-step medians; "
          f"paired: median and interquartile range of zoo step i / hand step i):")
    for i, what in enumerate(("wall", "CPU")):
        z, h = med["zoo"][i] * 1e3, med["hand"][i] * 1e3
        q1, q2, q3 = quartiles([a[i] / b[i] - 1 for a, b in zip(times["zoo"], times["hand"]) if b[i] > 0])
        diff = statistics.median(a[i] - b[i] for a, b in zip(times["zoo"], times["hand"])) * 1e6
        print(f"  {what:<4} ms/step  zoo {z:8.2f}   hand {h:8.2f}   zoo overhead {z / h - 1:+.1%}   "
              f"paired {q2:+.1%} (IQR {q1:+.1%} … {q3:+.1%}), {diff:+.0f} µs/step")


def parse(argv=None):
    p = timing_parser(__doc__, ["zoo", "hand", "lockstep", "flops"], steps=80, warmup=20, repeats=3, threads=2,
                      workers=0)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="run.precision (bf16 autocast)")
    p.add_argument("--compile", action="store_true", help="run.compile: torch.compile each encoder")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=32, help="dataset size in batches (epochs wrap around)")
    p.add_argument("--dim", type=int, default=64, help="input vector size")
    p.add_argument("--hidden", type=int, default=512, help="tower width")
    p.add_argument("--layers", type=int, default=3, help="tower depth")
    p.add_argument("--embed", type=int, default=128, help="shared embedding size")
    p.add_argument("--peak-tflops", type=float, default=0.0, help="device dense peak for MFU (default: by name)")
    p.add_argument("--no-lockstep", action="store_true", help="skip the one-process step-by-step comparison")
    p.add_argument("--lockstep-steps", type=int, default=300,
                   help="timed steps of the lockstep run, after --warmup (default 300)")
    args = check_warmup(p, p.parse_args(argv))
    if args.lockstep_steps < 4:
        p.error(f"--lockstep-steps must be at least 4 (quartiles), got {args.lockstep_steps}")
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.child:
        return child(args)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here; run with --device cpu", file=sys.stderr)
        return 2
    flops = spawn("flops", argv)["flops"]
    report(args, alternate(("zoo", "hand"), args.repeats, lambda which: spawn(which, argv)), flops)
    if not args.no_lockstep:
        report_lockstep(args, spawn("lockstep", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
