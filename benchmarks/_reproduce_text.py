"""Row on sentence embeddings: unsupervised SimCSE and ESimCSE on the Python documentation topics.

Setting: the recipe simcse-pydoc's tiny BERT (2 layers, hidden 64, the bundled MiniLM tokenizer,
mean pooling + MLP head, dropout 0.1, τ = 0.05), trained on the ``pydoc-topics`` train split.
Task: same-topic retrieval on the held-out sentences of ``pydoc-topics-labelled`` (each test
sentence queries the other test sentences; a hit is a sentence of the same documentation topic;
the topic is never trained on): precision@1 and mean average precision.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from _reproduce_common import Context, direction, embed, merge, row, stats, train, untrained, verdict

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4


def simcse_recipe() -> dict[str, Any]:
    import tomllib
    r = tomllib.loads((ROOT / "recipes" / "simcse-pydoc.toml").read_text("utf-8"))
    r["run"].update(epochs=EPOCHS, progress=False, log_every=50)
    r.pop("description", None)
    return r


def topic_retrieval(model, size: int | None = None) -> dict[str, float]:
    """Leave-one-out same-topic retrieval on the labelled test sentences: P@1 and mAP."""
    import zoo
    ds = zoo.create_dataset("pydoc-topics-labelled", split="test", size=size)
    x, y = embed(model, ds, "text")
    y = y["topic"]
    sim = x @ x.T                                                          # (N, N) cosine
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1)[:, :-1]                               # (N, N-1), self last
    hits = y[order] == y[:, None]                                          # (N, N-1)
    ranks = np.arange(1, hits.shape[1] + 1)
    ap = [(np.cumsum(h)[h] / ranks[h]).mean() if h.any() else 0.0 for h in hits]
    return {"P@1": float(hits[:, 0].mean()), "mAP": float(np.mean(ap))}


@row("simcse", paper="Gao et al. 2021, SimCSE (EMNLP); Wu et al. 2022, ESimCSE (COLING)",
     claim="Unsupervised SimCSE (dropout twins) improves sentence embeddings over the untrained encoder "
           "(76.3 % average STS Spearman with BERT-base, +4.2 over the previous best); ESimCSE's word repetition "
           "improves on SimCSE (+2.0 points STS with BERT-base).",
     notes="Why it is weaker than the paper: the paper starts from pre-trained BERT; here the encoder is a 2-layer "
           "BERT from random initialisation (nothing may download), trained for a few epochs on about 1,500 "
           "sentences, and the untrained baseline's mean pooling of random token embeddings is already a "
           "bag-of-words-like embedding that same-topic retrieval rewards. ESimCSE here is word repetition only "
           "(its momentum-contrast queue is not in the zoo).")
def simcse(ctx: Context) -> dict[str, Any]:
    base = simcse_recipe()
    if ctx.quick:
        base = merge(base, **{"run.steps": 3, "data.options.size": 128})
    esim = merge(base, pairs={"strategy": "two_views", "options": {"field": "text", "augment": {
        "text": [{"name": "word_repetition", "dup_rate": 0.32}]}}})
    per: dict[str, list[dict[str, float]]] = {"untrained (mean-pooled)": [], "SimCSE": [], "ESimCSE (word rep.)": []}
    runs = []
    for seed in ctx.seeds:
        models = {"untrained (mean-pooled)": untrained(merge(base, **{"run.seed": seed}), ctx, seed),
                  "SimCSE": train(merge(base, **{"run.seed": seed}), ctx)[0],
                  "ESimCSE (word rep.)": train(merge(esim, **{"run.seed": seed}), ctx)[0]}
        for name, m in models.items():
            per[name].append(topic_retrieval(m, ctx.size(100)))
            runs.append({"row": "simcse", "variant": name, "seed": seed, **per[name][-1]})
    st = {n: {k: stats([v[k] for v in vals]) for k in vals[0]} for n, vals in per.items()}
    results = {f"{n}: {k}": s for n, d in st.items() for k, s in d.items()}
    vs_untrained = [direction(st["SimCSE"][k], st["untrained (mean-pooled)"][k]) for k in ("P@1", "mAP")]
    vs_simcse = [direction(st["ESimCSE (word rep.)"][k], st["SimCSE"][k]) for k in ("P@1", "mAP")]
    v1, v2 = verdict(vs_untrained), verdict(vs_simcse)
    v = v1 if v1 == v2 else (f"SimCSE: {v1}; ESimCSE: {v2}")
    return {"setting": "pydoc-topics train split (sentences of CPython's help topics), tiny random BERT "
                       f"(2 layers, hidden 64), batch 64, {EPOCHS} epochs, τ = 0.05; ESimCSE: word repetition "
                       "(dup rate 0.32) on two views, without its momentum queue; test: same-topic retrieval among "
                       f"the held-out sentences of topics with ≥ 5 sentences",
            "metric": "same-topic retrieval P@1 / mAP", "results": results,
            "ours": [k for k in results if k.startswith(("SimCSE", "ESimCSE"))],
            "baseline": [k for k in results if k.startswith("untrained")], "verdict": v,
            "why": f"SimCSE vs untrained (P@1, mAP): {', '.join(vs_untrained)}; ESimCSE vs SimCSE: "
                   f"{', '.join(vs_simcse)}.", "runs": runs}

