"""``benchmarks/gpu_check.py --cpu``: the GPU check's CPU-safe parts run and print its one table.

The timing values are not checked (no timing assertions); that both loops trained, the table has
its rows, and the FLOP count is positive is."""
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gpu_check  # noqa: E402


def test_cpu_defaults_are_tiny_and_gpu_defaults_are_the_issue_s():
    cpu, gpu = gpu_check.parse(["--cpu"]), gpu_check.parse([])
    assert (cpu.batch, cpu.size, cpu.precision) == (8, 32, "fp32")
    assert (gpu.batch, gpu.size, gpu.precision) == (256, 224, "bf16")


@pytest.mark.slow
def test_cpu_mode_prints_the_table(capsys):
    assert gpu_check.main(["--cpu", "--repeats", "1", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    for row in ("CUDA tests (pytest -m cuda)", "zoo Trainer", "open_clip loop"):
        assert re.search(rf"^\| {re.escape(row)}", out, re.M), out
    rates = re.findall(r"^\| (?:zoo Trainer|open_clip loop)\s+\|\s+([\d.]+) \|", out, re.M)
    assert len(rates) == 2 and all(float(r) > 0 for r in rates)
    flops = float(re.search(r"FLOPs per step ([\d.]+) GFLOP", out).group(1))
    assert re.search(r"zoo / open_clip: [\d.]+ x", out) and flops > 0
