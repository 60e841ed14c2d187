"""``benchmarks/scaling.py --quick`` runs every case and fits an exponent for time and memory.

Only that the numbers are computed is checked (finite, one per case and quantity): their values
depend on the machine and its load, and no test here asserts on timing."""
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import scaling  # noqa: E402


def test_slope_recovers_a_power_law():
    xs = [32, 64, 128, 256]
    assert scaling.slope(xs, [3.0 * x ** 2 for x in xs]) == pytest.approx(2.0)
    assert scaling.slope(xs, [5.0 for _ in xs]) == pytest.approx(0.0)


@pytest.mark.slow
def test_quick_mode_fits_every_exponent(capsys):
    assert scaling.main(["--quick", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    names = [c["name"] for c in scaling.cases(quick=True)]
    assert {"clip dense", "siglip", "symile n_squared M=3"} <= set(names)
    assert any("GradCache" in n for n in names) and any("chunked" in n for n in names)
    rows = [line for line in out.splitlines() if any(line.startswith(n) for n in names)]
    assert len(rows) == len(names)
    for line in rows:  # … k time, k mem, "a / b" expected
        k_time, k_mem = (float(x) for x in line.split()[-5:-3])
        assert math.isfinite(k_time) and math.isfinite(k_mem)
