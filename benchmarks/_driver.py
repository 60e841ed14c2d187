"""What the benchmarks that time two training loops share: their common options, the A B B A order
of the runs, and each run as a fresh process (the same script with ``--child``) that prints one
``RESULT <json>`` line.

Used by ``train_throughput.py``, ``train_vs_open_clip.py`` and ``gpu_check.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULT = "RESULT "

_HELP = {
    "steps": "steps per run; the first --warmup are not timed",
    "warmup": "steps before the clock starts",
    "repeats": "runs per side, in the order A B B A …",
    "threads": "torch threads per run",
    "workers": "data loader worker processes (both sides)",
}


def timing_parser(doc: str, children: Sequence[str], **defaults: int | str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` (described by ``doc``'s first line) with the options of :data:`_HELP` that
    ``defaults`` names, and the hidden ``--child`` a run is started with.

    A default given as text (``"40 (--cpu: 3)"``) is only shown: the option defaults to ``None``
    and the benchmark fills it in after parsing.
    """
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    for name, default in defaults.items():
        shown = isinstance(default, str)
        p.add_argument(f"--{name}", type=int, default=None if shown else default,
                       help=f"{_HELP[name]} (default {default})")
    p.add_argument("--child", choices=list(children), help=argparse.SUPPRESS)
    return p


def check_warmup(p: argparse.ArgumentParser, args: argparse.Namespace, least: int = 0) -> argparse.Namespace:
    """``least ≤ --warmup < --steps``, else the parser's usage error."""
    if not least <= args.warmup < args.steps:
        p.error(f"need {least} ≤ --warmup < --steps, got --warmup {args.warmup} --steps {args.steps}")
    return args


def child_main(args: argparse.Namespace, run: Callable[[], dict]) -> int:
    """The body of a child process: ``args.threads`` torch threads, then ``run()``, its result on one line."""
    torch.set_num_threads(args.threads)
    print(RESULT + json.dumps(run()), flush=True)
    return 0


def spawn(script: str | os.PathLike, which: str, argv: Sequence[str], *extra: str, env: dict | None = None,
          timeout: float | None = None, cwd: str | os.PathLike | None = None) -> dict:
    """Run ``script argv --child which extra…`` in a fresh interpreter (the zoo and its plugins on
    the path, ``env`` added) and return the JSON of its last ``RESULT`` line."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")])
    cmd = [sys.executable, str(script), *argv, "--child", which, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path, **(env or {})},
                         timeout=timeout, cwd=cwd)
    lines = [x for x in out.stdout.splitlines() if x.startswith(RESULT)]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"the {which} run failed (exit {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(lines[-1][len(RESULT):])


def alternate(sides: tuple[str, str], repeats: int, run: Callable[[str], dict]) -> dict[str, list[dict]]:
    """``repeats`` runs of each side in the order A B B A A B …, so that a drifting machine load
    favours neither: ``{side: [result of each run]}``."""
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for r in range(repeats):
        for which in sides if r % 2 == 0 else sides[::-1]:
            runs[which].append(run(which))
    return runs
