"""Side-by-side speed and memory of the zoo's objectives against reference implementations.

    python benchmarks/objectives.py            # every case (< 5 minutes on 2 cores)
    python benchmarks/objectives.py --quick    # small sizes, a smoke run in well under a minute
    python benchmarks/objectives.py --only clip --repeats 9 --stat min   # on a busy machine

Cases come from every ``benchmarks/_cases_*.py`` module, each defining ``cases(quick) -> list[dict]``
with keys ``name``, ``ours``, ``ref`` (or ``None``), ``ref_name``: ``ours``/``ref`` take no
arguments, run ONE forward+backward on inputs built outside them, and return the loss. Optional
keys: ``repeats`` (timed runs; ``1`` = one cold run, timed in the memory subprocess, for cases
too slow to repeat), ``min_speedup`` and ``budget_mb`` (targets checked in the last column),
``note`` (printed under the table).

Time: one warm-up, then the median (``--stat min``: the minimum) of ``repeats`` runs, ours and ref
interleaved so that load from other processes hits both alike. Memory: each fn runs in a fresh subprocess (after one warm-up run,
unless ``repeats`` is 1); the peak resident set during the measured run minus the resident set
before it (Linux: ``/proc/self/clear_refs`` resets the high-water mark ``VmHWM``). Inputs built by
``cases()`` are therefore excluded; the gradients' first allocation is included in cold runs.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
THREADS = 2


def discover() -> list[str]:
    """Names of the case modules next to this file, sorted."""
    return sorted(p.stem for p in HERE.glob("_cases_*.py"))


def load_cases(module: str, quick: bool) -> list[dict]:
    sys.path.insert(0, str(HERE))
    try:
        return importlib.import_module(module).cases(quick)
    finally:
        sys.path.remove(str(HERE))


def as_float(loss) -> float:
    return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)


def time_interleaved(fns: dict, repeats: int, stat=statistics.median) -> tuple[dict, dict]:
    """``stat`` (median) of the seconds, and the last loss, of each fn: one warm-up, then ``repeats`` rounds."""
    seconds = {k: [] for k in fns}
    losses = {k: as_float(fn()) for k, fn in fns.items()}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            losses[key] = as_float(fn())
            seconds[key].append(time.perf_counter() - start)
    return {k: stat(v) for k, v in seconds.items()}, losses


# ------------------------------------------------------------------------------ memory (subprocess)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory import reset_peak as _reset_peak  # noqa: E402 - shared with the other benchmarks
from _memory import status_mb as _status_mb


def measure_here(module: str, name: str, which: str, quick: bool, warm: bool) -> dict:
    """Run one fn of one case in this (fresh) process; peak MB above the resident set before it."""
    torch.set_num_threads(THREADS)
    case = next(c for c in load_cases(module, quick) if c["name"] == name)
    fn = case[which]
    if warm:
        fn()
    exact = _reset_peak()
    base = _status_mb("VmRSS:")
    start = time.perf_counter()
    loss = as_float(fn())
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM:") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mb": peak - base, "seconds": seconds, "loss": loss, "exact_peak": exact}


def measure(module: str, name: str, which: str, quick: bool, warm: bool) -> dict:
    """:func:`measure_here` in a fresh interpreter, so earlier runs do not pollute the peak."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", module, name, which]
    cmd += ["--quick"] * quick + ["--cold"] * (not warm)
    out = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{module}:{name}:{which} failed in its subprocess:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ one case, the table

def run_case(module: str, case: dict, args) -> dict:
    repeats = case.get("repeats", args.repeats)
    fns = {"ours": case["ours"], **({"ref": case["ref"]} if case.get("ref") else {})}
    row = {"case": case["name"], "ref_name": case.get("ref_name", ""), "targets": {}}
    if repeats > 1:
        seconds, losses = time_interleaved(fns, repeats, min if args.stat == "min" else statistics.median)
    for key in fns:
        mem = measure(module, case["name"], key, args.quick, warm=repeats > 1)
        row[f"{key}_mb"] = mem["peak_mb"]
        row[f"{key}_s"] = seconds[key] if repeats > 1 else mem["seconds"]
        row[f"{key}_loss"] = losses[key] if repeats > 1 else mem["loss"]
    for key in ("min_speedup", "budget_mb", "note"):
        if case.get(key) is not None:
            row["targets"][key] = case[key]
    return row


def ratio(num, den) -> str:
    return f"{num / den:.2f}x" if num is not None and den else "—"


def mem_ratio(ref_mb, ours_mb) -> str:
    """ref / ours; below 1 MB of ours the peak is within the resident-set granularity, so only a bound."""
    if ref_mb is None:
        return "—"
    if ours_mb >= 1:
        return ratio(ref_mb, ours_mb)
    return "— (both < 1 MB)" if ref_mb < 1 else f"≥{ref_mb:.0f}x (ours < 1 MB)"


def fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def fmt_mb(value) -> str:
    return "—" if value is None else format(value, ".1f" if value < 10 else ".0f")


def verdict(row: dict) -> str:
    """``ok``/``MISSED`` for the case's targets (speed-up and/or memory budget), else empty."""
    t, out = row["targets"], []
    if "min_speedup" in t and row.get("ref_s"):
        out.append(f"≥{t['min_speedup']}x " + ("ok" if row["ref_s"] / row["ours_s"] >= t["min_speedup"] else "MISSED"))
    if "budget_mb" in t:
        out.append(f"≤{t['budget_mb']:.0f}MB " + ("ok" if row["ours_mb"] <= t["budget_mb"] else "MISSED"))
    return ", ".join(out)


def print_table(rows: list[dict]) -> None:
    head = ["case", "ours s", "ref s", "speed-up", "ours MB", "ref MB", "mem ratio", "max |Δloss|", "target"]
    lines = [head]
    for r in rows:
        delta = abs(r["ours_loss"] - r["ref_loss"]) if "ref_loss" in r else None
        lines.append([r["case"], fmt(r["ours_s"], ".3f"), fmt(r.get("ref_s"), ".3f"),
                      ratio(r.get("ref_s"), r["ours_s"]), fmt_mb(r["ours_mb"]), fmt_mb(r.get("ref_mb")),
                      mem_ratio(r.get("ref_mb"), r["ours_mb"]), fmt(delta, ".1e"), verdict(r)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    for r in rows:
        print(f"* {r['case']}: ref = {r['ref_name'] or 'none'}" + (f"; {r['targets']['note']}" if "note" in r["targets"] else ""))


def header(args) -> None:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"torch {torch.__version__}, {THREADS} threads, {cpu}, {os.cpu_count()} CPUs; "
          f"{'quick' if args.quick else 'full'} mode; time = {args.stat} of {args.repeats} interleaved runs "
          f"after a warm-up; memory = peak RSS above the inputs, fresh process. "
          f"speed-up = ref s / ours s, mem ratio = ref MB / ours MB.\n")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run in well under a minute")
    p.add_argument("--only", default="", help="run only the cases whose name contains this text")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per fn")
    p.add_argument("--stat", choices=("median", "min"), default="median",
                   help="statistic of the timed runs; 'min' resists stalls when other jobs share the cores")
    p.add_argument("--measure", nargs=3, metavar=("MODULE", "CASE", "WHICH"), help=argparse.SUPPRESS)
    p.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(THREADS)
    if args.measure:
        print(json.dumps(measure_here(*args.measure, args.quick, warm=not args.cold)))
        return 0
    header(args)
    rows, failed = [], []
    for module in discover():
        try:
            for case in load_cases(module, args.quick):
                if args.only in case["name"]:
                    rows.append(run_case(module, case, args))
                    print(f"  done: {case['name']}", file=sys.stderr, flush=True)
        except Exception as exc:  # noqa: BLE001 - one broken case module must not hide the others' numbers
            failed.append(f"{module}: {type(exc).__name__}: {exc}")
    print_table(rows)
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
