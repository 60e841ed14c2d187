"""Train every recipe in recipes/ at its full size and print the measured table for README.

    python benchmarks/recipes.py                     # all recipes
    python benchmarks/recipes.py digits-clip xor-symile

Each run writes runs/<recipe>/ (checkpoint, metrics.jsonl, plots/) and the table lists the
steps, the wall-clock time on this machine, the first and last logged loss and the
evaluation metrics the recipe's [eval] section asks for (on its held-out split).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = ("top1", "R@1", "(embeddings)", "(baseline", "alignment", "uniformity")


def run(name: str) -> dict:
    import zoo
    path = ROOT / "recipes" / f"{name}.toml"
    t0 = time.perf_counter()
    result = zoo.train(path, run_dir=ROOT / "runs" / name, progress=False)
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    metrics = {k: v for k, v in result.metrics.items() if "/" in k and any(h in k for h in HEADLINE)}
    return {"recipe": name, "steps": result.metrics["steps"], "wall_s": wall, "first_loss": losses[0],
            "last_loss": losses[-1], "metrics": metrics}


def main(names: list[str]) -> None:
    torch.set_num_threads(2)
    names = names or sorted(p.stem for p in (ROOT / "recipes").glob("*.toml"))
    out = []
    for name in names:
        try:
            out.append(run(name))
        except Exception as exc:  # noqa: BLE001 - report and go on
            out.append({"recipe": name, "error": f"{type(exc).__name__}: {exc}"})
        print(json.dumps(out[-1]), flush=True)
    print("\n| recipe | steps | wall s | loss first → last | held-out metrics |\n|---|---|---|---|---|")
    for r in out:
        if "error" in r:
            print(f"| `{r['recipe']}` | – | – | – | error: {r['error'][:80]} |")
            continue
        m = "; ".join(f"{k} {v:.3f}" for k, v in r["metrics"].items()) or "–"
        print(f"| `{r['recipe']}` | {r['steps']} | {r['wall_s']:.0f} | {r['first_loss']:.2f} → {r['last_loss']:.2f} | {m} |")
    (ROOT / "runs").mkdir(exist_ok=True)
    (ROOT / "runs" / "recipes.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
