"""Rows on image–text training of the 8×8 digits with captions: SigLIP vs CLIP, multi-level vs flat.

Setting: scikit-learn's real digits with template captions ("a hand-written seven"), an MLP image
tower and a bag-of-words text tower (32-d joint embedding), AdamW 1e-2 cosine, a fixed number of
epochs; zero-shot top-1 over the ten class prompts on the 359 held-out images.
"""
from __future__ import annotations

import math
from typing import Any

from _reproduce_common import (
    Context,
    direction,
    embed,
    few_label_indices,
    knn,
    merge,
    probe,
    row,
    stats,
    train,
    verdict,
)

EPOCHS = 6
DIGITS_CLIP = {
    "model": {"embed_dim": 32,
              "towers": {"image": {"encoder": "mlp", "in_shape": [1, 8, 8], "hidden": 128, "out_dim": 64,
                                   "layers": 2, "mean": 0.3, "std": 0.4},
                         "text": {"encoder": "bow", "out_dim": 64, "num_buckets": 4096}}},
    "data": {"dataset": "digits", "batch_size": 64},
    "pairs": {"strategy": "paired", "options": {"fields": ["image", "caption"], "augment": {"image": [
        {"name": "random_resized_crop", "scale": [0.85, 1.0], "ratio": [0.9, 1.1]}]}}},
    "objective": {"name": "clip"},
    "optim": {"lr": 1e-2, "weight_decay": 0.05, "warmup_steps": 10, "schedule": "cosine"},
    "run": {"epochs": EPOCHS, "seed": 0, "log_every": 50, "progress": False},
}
SETTING = ("digits image–caption pairs (1,438 train / 359 test), MLP image tower + bag-of-words text tower → 32-d, "
           f"AdamW 1e-2 cosine, {EPOCHS} epochs")


def _quick(recipe: dict, ctx: Context) -> dict:
    return merge(recipe, **{"run.steps": 3, "data.options.size": ctx.size()}) if ctx.quick else recipe


def zero_shot(model, dataset: str = "digits", size: int | None = None) -> float:
    import zoo
    return zoo.evaluate(model, dataset, task="zero_shot", field="image", label="class",
                        dataset_options={"size": size})["top1"]


@row("siglip", paper="Zhai et al. 2023, Sigmoid Loss for Language Image Pre-Training (ICCV)",
     claim="The pairwise sigmoid loss matches or beats the softmax (CLIP) loss at small batch sizes and depends "
           "less on the batch size (SigLiT: 84.5 % ImageNet zero-shot on four TPU-v4 chips in two days).",
     notes="Why: the epochs are fixed, so batch 256 means far fewer steps (about 33) than batch 16; the sigmoid "
           "loss starts from the paper's bias b = −10, which it must first learn away, and with so few steps it "
           "falls behind — the batch sensitivity measured here is mostly step count. At batch 16 the two match, "
           "which is the paper's small-batch claim; the paper's sensitivity result compares batches at a fixed "
           "number of examples seen over many thousands of steps.")
def siglip(ctx: Context) -> dict[str, Any]:
    batches = [16, 256] if ctx.quick else [16, 64, 256]
    variants = {"CLIP (softmax)": {"objective": {"name": "clip"}},
                "SigLIP (sigmoid)": {"objective": {"name": "siglip"},
                                     "model.logit_scale": math.log(10.0), "model.logit_bias": -10.0}}
    results, runs = {}, []
    for name, change in variants.items():
        for b in batches:
            recipe = merge(DIGITS_CLIP, **{k.replace("/", "."): v for k, v in change.items()}, **{"data.batch_size": b})
            vals = []
            for seed in ctx.seeds:
                model, _ = train(_quick(merge(recipe, **{"run.seed": seed}), ctx), ctx)
                vals.append(zero_shot(model, size=ctx.size()))
                runs.append({"row": "siglip", "variant": f"{name} @ batch {b}", "seed": seed, "top1": vals[-1]})
            results[f"{name} @ batch {b}"] = stats(vals)
    small = batches[0]
    outcomes = [direction(results[f"SigLIP (sigmoid) @ batch {small}"], results[f"CLIP (softmax) @ batch {small}"])]
    spread = {n: max(results[f"{n} @ batch {b}"]["mean"] for b in batches)
              - min(results[f"{n} @ batch {b}"]["mean"] for b in batches) for n in variants}
    less_sensitive = spread["SigLIP (sigmoid)"] <= spread["CLIP (softmax)"]
    # "matches or beats": a tie at the small batch counts as matching
    match = outcomes[0] in ("better", "tie+", "tie")
    # both halves of the claim must hold; one half alone is not the claim, even in direction
    v = "reproduced" if match and less_sensitive else "not reproduced"
    why = (f"At batch {small} SigLIP vs CLIP: {outcomes[0]}. Spread of the mean zero-shot top-1 across batches "
           f"{batches}: SigLIP {spread['SigLIP (sigmoid)']:.3f}, CLIP {spread['CLIP (softmax)']:.3f} "
           f"({'SigLIP less' if less_sensitive else 'SigLIP more'} sensitive).")
    return {"setting": SETTING + f"; batch {', '.join(map(str, batches))}; SigLIP init t = 10, b = −10 (the paper's)",
            "metric": "zero-shot top-1 (10 digit prompts)", "results": results,
            "ours": [k for k in results if k.startswith("SigLIP")], "baseline": [k for k in results if k.startswith("CLIP")],
            "verdict": v, "why": why, "runs": runs}


HIER_NOTES = ("Why: the captions name the digit, so flat CLIP already learns the fine level (zero-shot top-1 near "
              "the ceiling) and the coarse level follows from it; class and group 5-NN are at the ceiling for both, "
              "leaving room only where labels are very few. A hierarchy whose fine level the paired text does not "
              "give away (molecules with Murcko and generic scaffolds, suggested in issue 16) would test the claim "
              "harder; it was not run today for CPU time.")

LEVELS = [
    {"name": "pair", "views": ["image", "caption"], "positives": "row", "objective": "clip", "weight": 1.0},
    {"name": "class", "views": ["image", "caption"], "positives": "class", "objective": "supcon", "weight": 0.25},
    {"name": "group", "views": ["image", "caption"], "positives": "group", "objective": "supcon", "weight": 0.25},
]


def level_scores(model, seed: int, size: int | None = None) -> dict[str, float]:
    import zoo
    tr, te = (zoo.create_dataset("digits-groups", split=s, size=size) for s in ("train", "test"))
    x_tr, y_tr = embed(model, tr, "image")
    x_te, y_te = embed(model, te, "image")
    few = few_label_indices(y_tr["class"], 2, seed)                      # 20 labelled images
    return {"zero-shot class top-1": zero_shot(model, "digits-groups", size),
            "class 5-NN": knn(x_tr, y_tr["class"], x_te, y_te["class"]),
            "group 5-NN": knn(x_tr, y_tr["group"], x_te, y_te["group"]),
            "few-label probe (2 per class)": probe(x_tr[few], y_tr["class"][few], x_te, y_te["class"]),
            "few-label group probe (2 per group)": probe(
                x_tr[(f2 := few_label_indices(y_tr["group"], 2, seed))], y_tr["group"][f2], x_te, y_te["group"])}


@row("hierarchical", paper="Wang et al. 2023, COMET (NeurIPS); Gu et al. 2025, BioCLIP 2",
     claim="Contrasting at every level of a hierarchy beats a single (flat) level, most with few labels "
           "(COMET: consistently better than six baselines, particularly with 10 % and 1 % of the labels).",
     notes=HIER_NOTES)
def hierarchical(ctx: Context) -> dict[str, Any]:
    base = merge(DIGITS_CLIP, **{"data.dataset": "digits-groups", "pairs.strategy": "hierarchical",
                                 "pairs.options.levels": ["class", "group"]})
    variants = {"flat CLIP": base,
                "multi-level": merge(base, objective={"name": "hierarchical", "options": {"levels": LEVELS}})}
    results, runs, per = {}, [], {}
    for name, recipe in variants.items():
        vals = []
        for seed in ctx.seeds:
            model, _ = train(_quick(merge(recipe, **{"run.seed": seed}), ctx), ctx)
            vals.append(level_scores(model, seed, ctx.size()))
            runs.append({"row": "hierarchical", "variant": name, "seed": seed, **vals[-1]})
        per[name] = {k: stats([v[k] for v in vals]) for k in vals[0]}
        results.update({f"{name}: {k}": s for k, s in per[name].items()})
    metrics = list(per["flat CLIP"])
    outcomes = {m: direction(per["multi-level"][m], per["flat CLIP"][m]) for m in metrics}
    v = verdict([outcomes["group 5-NN"], outcomes["few-label probe (2 per class)"],
                 outcomes["few-label group probe (2 per group)"]])
    return {"setting": "digits-groups: digits + a coarse shape group (loops 0/6/8/9, strokes 1/4/7, open curves 2/3/5); "
                       + SETTING + "; batch 64; multi-level = CLIP pair level (weight 1) + SupCon on class and on group "
                       "(weight 0.25 each) over image and caption embeddings; flat = the CLIP pair level alone",
            "metric": "per-level accuracy (zero-shot and 5-NN for class, 5-NN for group) and few-label probes",
            "results": results, "ours": [k for k in results if k.startswith("multi")],
            "baseline": [k for k in results if k.startswith("flat")], "verdict": v,
            "why": "multi-level vs flat: " + "; ".join(f"{m} {o}" for m, o in outcomes.items())
                   + ". The verdict counts the coarse level and the few-label probes (the claim's regime).",
            "runs": runs}

