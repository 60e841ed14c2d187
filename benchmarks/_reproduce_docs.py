"""docs/results.md from the rows' saved JSON (``reproduce.py --write-docs``): nothing is typed by hand."""
from __future__ import annotations

import json
from pathlib import Path

from _reproduce_common import ROWS, fmt

HEAD = """# Reproducing the papers

What each objective's paper claims, measured here on data the install ships, at a size that
runs on 2 CPU cores. Every number below comes from `benchmarks/reproduce.py`'s own output
(`docs/results/<row>.json`); this page is generated from those files by
`python benchmarks/reproduce.py --write-docs`. Results are mean ± sample sd over the seeds
listed; the method and the baseline its paper compares against run in the same script, on the
same seeds. **Verdict rule**: *reproduced* when every comparison the claim predicts comes out
on the claimed side by more than two standard errors of the difference (Welch); *reproduced
in direction only* when none is clearly on the wrong side and most are on the claimed side;
otherwise *not reproduced*. These are small models on small data: a claim that does not
reproduce here is not refuted at the paper's scale — each row says why we think it came out
as it did. The number in each claim is the paper's own headline, from its abstract.
Row anchors (`results.md#row-dcl`, …) are stable: model cards and recipes can cite them.

"""


def _anchor(name: str) -> str:
    return f"row-{name}"


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _results(d: dict, keys: list[str]) -> str:
    return "<br>".join(f"{k}: **{fmt(d['results'][k])}**" for k in keys if k in d["results"])


def write_docs(results_dir: Path, path: Path, order: list[str]) -> Path:
    rows = {}
    for name in order:
        f = results_dir / f"{name}.json"
        if f.exists():
            rows[name] = json.loads(f.read_text("utf-8"))
    lines = [HEAD, "## The table", "",
             "| # | paper and claim | our setting | ours | baseline | verdict | regenerate |",
             "|---|---|---|---|---|---|---|"]
    for i, name in enumerate(order, 1):
        d = rows.get(name)
        if d is None:
            lines.append(f"| {i} | `{name}` | not measured today | — | — | — | "
                         f"`python benchmarks/reproduce.py --only {name}` |")
            continue
        quick = " **(quick run: not a measurement)**" if d.get("quick") else ""
        lines.append(
            f"| <a id=\"{_anchor(name)}\"></a>{i} | **{_cell(d['paper'])}** — {_cell(d['claim'])} | "
            f"{_cell(d['setting'])}; {len(d['seeds'])} seeds; metric: {_cell(d['metric'])} | "
            f"{_cell(_results(d, d['ours']))} | {_cell(_results(d, d['baseline']))} | "
            f"**{d['verdict']}**{quick} | `{d['command']}` ({d['seconds']:.0f} s) |")
    total = sum(d["seconds"] for d in rows.values())
    cpu = [d.get("cpu_seconds") for d in rows.values()]
    per_row = ", ".join(f"{n} {d['seconds']:.0f} s" + (f" (CPU {d['cpu_seconds']:.0f} s, load {d['load'][0]}→{d['load'][1]})"
                                                       if "cpu_seconds" in d else "") for n, d in rows.items())
    machine = next(iter(rows.values()))["machine"] if rows else "—"
    lines += ["", f"Run time of the rows above: **{total / 60:.1f} min** wall clock in all ({per_row}), on {machine}."]
    if all(c is not None for c in cpu) and cpu:
        lines += [f"Their CPU time, {sum(cpu) / 60:.1f} min with one torch thread, is about what they take on a quiet "
                  "machine; the wall clock above was measured while other jobs loaded the 2 cores (load average at each row's "
                  "start → end in brackets)."]
    lines += ["",
              "## Why each row came out as it did", ""]
    for i, name in enumerate(order, 1):
        d = rows.get(name)
        if d is None:
            continue
        lines += [f"### {i}. {name}: {d['verdict']}", "", _cell(d["why"]), ""]
        if name in ROWS and ROWS[name].notes:
            lines += [ROWS[name].notes, ""]
        lines += ["| variant | mean ± sd | per seed |", "|---|---|---|"]
        for k, s in d["results"].items():
            lines.append(f"| {_cell(k)} | {fmt(s)} | {', '.join(f'{v:.3f}' for v in s['values'])} |")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path
