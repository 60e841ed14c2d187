"""Reproduce the papers' claims on the data the install ships: one row per claim.

    python benchmarks/reproduce.py                       # every row, 3 seeds → docs/results/<row>.json + docs/results.md
    python benchmarks/reproduce.py --only dcl --seeds 5  # one row (the page is regenerated from all saved rows)
    python benchmarks/reproduce.py --quick --seeds 1     # CI-sized: a few steps per run (fields only)
    python benchmarks/reproduce.py --write-docs          # only regenerate docs/results.md from docs/results/*.json

Every run trains through ``zoo.train`` into a fresh temporary run directory; each row trains
the claim's method and the baseline its paper compares against in the same script, over the
same seeds, and reports mean ± sd and a verdict (see ``_reproduce_common.verdict``).
``--quick`` results go to a scratch directory unless ``--out`` says otherwise, so they never
overwrite the measured table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT), str(ROOT / "plugins")]

import _reproduce_clip  # noqa: E402,F401  (each module registers its rows)
import _reproduce_image  # noqa: E402,F401
import _reproduce_molecule  # noqa: E402,F401
import _reproduce_symile  # noqa: E402,F401
import _reproduce_text  # noqa: E402,F401
from _reproduce_common import ROWS, Context  # noqa: E402
from _reproduce_docs import write_docs  # noqa: E402

RESULTS = ROOT / "docs" / "results"
ORDER = ["dcl", "debiased", "supcon", "simcse", "alignment", "siglip", "symile", "hierarchical", "molclr"]


def command(name: str, seeds: int) -> str:
    return f"python benchmarks/reproduce.py --only {name}" + (f" --seeds {seeds}" if seeds != 3 else "")


def run_row(name: str, ctx: Context) -> dict:
    import torch
    r = ROWS[name]
    t0, c0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    out = r.run(ctx)
    out.update(name=name, paper=r.paper, claim=r.claim, seeds=ctx.seeds, quick=ctx.quick,
               seconds=round(time.perf_counter() - t0, 1), cpu_seconds=round(time.process_time() - c0, 1),
               load=[round(load0, 1), round(os.getloadavg()[0], 1)], command=command(name, len(ctx.seeds)),
               machine=f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                       f"{torch.get_num_threads()} threads")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", action="append", choices=ORDER, help="run only this row (repeatable)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    p.add_argument("--quick", action="store_true", help="a few steps per run: checks that every row runs")
    p.add_argument("--out", type=Path, help="where the row JSON goes (default docs/results/; scratch with --quick)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the models are tiny, and 2 threads on 2 busy cores spin for minutes)")
    p.add_argument("--write-docs", action="store_true", help="only regenerate docs/results.md from the saved JSON "
                                                                "(with --only or --quick: run those rows first)")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be ≥ 1")
    out = args.out or (Path(tempfile.mkdtemp(prefix="zoo-reproduce-quick-")) if args.quick else RESULTS)
    names = args.only or ([] if args.write_docs and not args.quick else ORDER)
    import torch
    torch.set_num_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(seeds=list(range(args.seeds)), quick=args.quick, results_dir=out)
    for name in names:
        print(f"[reproduce] {name} …", flush=True)
        res = run_row(name, ctx)
        (out / f"{name}.json").write_text(json.dumps(res, indent=1, ensure_ascii=False), "utf-8")
        print(f"[reproduce] {name}: {res['verdict']} ({res['seconds']} s) — {res['why']}", flush=True)
    shutil.rmtree(ctx.scratch, ignore_errors=True)
    if names or args.write_docs:    # the page always follows the saved rows
        path = write_docs(out, ROOT / "docs" / "results.md" if out == RESULTS else out / "results.md", ORDER)
        print(f"[reproduce] wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
