"""The pictures: what they draw (read back from the figures), and that drawing leaves matplotlib's backend alone."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zoo.evaluation.embed import Embedded
from zoo.evaluation.plots import embeddings_figure, readable, retrieval_figure, similarity_figure, training_figure
from zoo.objectives.symile import mip_similarity


def _embedded(n=12, classes=3, fields=("image", "caption"), seed=0, raws=None, modalities=None):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    emb = {f: F.normalize(torch.randn(n, 8, generator=g), dim=-1) for f in fields}
    return Embedded(emb, {"class": y}, raws or {}, modalities or {f: "vector" for f in fields})


def test_importing_and_drawing_keeps_the_users_backend(tmp_path):
    code = textwrap.dedent(f"""
        import matplotlib
        matplotlib.use("svg")                         # what a notebook or a GUI session would have chosen
        import json, zoo.evaluation.plots
        rows = [{{"step": 1, "loss": 2.0, "lr": 0.1, "logit_scale": 14.0}},
                {{"step": 1, "eval": {{"zero_shot/top1": 0.5}}}}]
        p = __import__("pathlib").Path({str(tmp_path)!r}) / "metrics.jsonl"
        p.write_text("\\n".join(json.dumps(r) for r in rows))
        assert zoo.evaluation.plots.plot_training(p, p.parent)
        print(matplotlib.get_backend())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().lower() == "svg"
    assert (tmp_path / "training.png").stat().st_size > 1000


def test_training_marks_points_names_metrics_and_splits():
    rows = [{"step": 3, "loss": 2.0, "lr": 0.1, "logit_scale": 14.0},
            {"step": 3, "eval": {"retrieval/caption->image R@1": 0.5, "zero_shot/top1": 0.7}}]
    fig = training_figure(rows, train_split="train", eval_split="valid")  # shorter than log_every: one point each
    lines = [ln for ax in fig.axes for ln in ax.get_lines()]
    assert lines and all(ln.get_marker() not in (None, "None", "", " ") for ln in lines)
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert legend == sorted([readable("retrieval/caption->image R@1"), readable("zero_shot/top1")])
    assert not any("->" in t or "_" in t for t in legend)
    assert "'valid'" in fig.axes[-1].get_title() and "'train'" in fig.axes[0].get_title()


def test_similarity_ticks_are_captions():
    captions = [f"a long caption number {i} about a digit drawn by hand" for i in range(12)]
    e = _embedded(raws={"caption": captions, "image": [None] * 12})
    fig = similarity_figure(e, n=12, class_names=["zero", "one", "two"])
    ax = fig.axes[0]
    xt = [t.get_text() for t in ax.get_xticklabels()]
    yt = [t.get_text() for t in ax.get_yticklabels()]
    assert all(t.startswith("a long caption number") and len(t) <= 28 for t in xt)  # caption, truncated
    assert set(yt) == {"zero", "one", "two"}  # the image rows have no caption: their class


def test_similarity_draws_the_objectives_score_for_symile():
    e = _embedded(fields=("image", "caption", "audio"))
    fig = similarity_figure(e, n=12, score=mip_similarity)
    images = [ax.get_images()[0] for ax in fig.axes if ax.get_images()]
    assert len(images) == 3 and all("score" in ax.get_title() for ax in fig.axes if ax.get_images())
    rows = torch.argsort(e.labels["class"], stable=True)
    expect = mip_similarity({"caption": e.emb["caption"][rows], "audio": e.emb["audio"][rows]}, e.emb["image"][rows])
    assert np.allclose(images[0].get_array(), expect.numpy(), atol=1e-6)


def test_one_view_similarity_has_no_trivial_diagonal():
    e = _embedded(fields=("graph",))
    sim = np.ma.filled(similarity_figure(e, n=12).axes[0].get_images()[0].get_array().astype(float), np.nan)
    assert np.isnan(np.diag(sim)).all() and not np.isnan(sim[0, 1])


def test_embeddings_one_shared_pca_with_variance_and_distinct_colours():
    e = _embedded(n=60, classes=15)
    e.emb["caption"] = F.normalize(e.emb["image"] @ torch.linalg.qr(torch.randn(8, 8))[0], dim=-1)  # rotated copy
    fig = embeddings_figure(e, class_names=[str(i) for i in range(15)])
    z = torch.cat([e.emb["image"], e.emb["caption"]])
    zc = z - z.mean(0)
    v = torch.linalg.svd(zc, full_matrices=False)[2][:2].T
    expect = (zc @ v).numpy()
    panel_image, panel_caption = fig.axes[1], fig.axes[2]
    got_image = np.concatenate([c.get_offsets() for c in panel_image.collections])
    got_caption = np.concatenate([c.get_offsets() for c in panel_caption.collections])
    y = e.labels["class"].numpy()
    order = np.concatenate([np.where(y == c)[0] for c in sorted(set(y))])
    assert np.allclose(np.abs(got_image), np.abs(expect[:60][order]), atol=1e-5)
    assert np.allclose(np.abs(got_caption), np.abs(expect[60:][order]), atol=1e-5)
    assert "% of variance" in panel_image.get_xlabel()
    colours = {tuple(np.round(c.get_facecolor()[0], 4)) for c in panel_image.collections}
    assert len(colours) == 15  # no colour repeats past 10 classes


def test_retrieval_marks_same_label_hits_wraps_queries_and_scores():
    pytest.importorskip("zoo_image")
    n = 12
    e = _embedded(n=n, classes=3, fields=("caption", "image"),
                  raws={"caption": ["a very long query that would overflow its little box " * 3] * n,
                        "image": [torch.rand(1, 8, 8) for _ in range(n)]},
                  modalities={"caption": "text", "image": "image"})
    fig = retrieval_figure(e, "caption", "image", queries=3, k=5)
    grid = np.array(fig.axes).reshape(3, 6)
    y = e.labels["class"]
    picks = torch.linspace(0, n - 1, 3).round().long().tolist()
    sim = e.emb["caption"][picks] @ e.emb["image"].T
    for row, q in enumerate(picks):
        query = grid[row][0].texts[0].get_text()
        assert "\n" in query and all(len(line) <= 22 for line in query.splitlines())
        top = sim[row].topk(5)
        for j, (idx, s) in enumerate(zip(top.indices.tolist(), top.values.tolist())):
            title = grid[row][j + 1].get_title()
            assert f"{s:.2f}" in title
            assert (("✓" in title) or ("★" in title)) == (int(y[idx]) == int(y[q]))
            assert grid[row][j + 1].get_images(), "image results are drawn as thumbnails"


def test_retrieval_ranks_by_the_objectives_score_for_symile():
    n = 9
    e = _embedded(n=n, fields=("caption", "audio", "image"),
                  raws={"caption": [f"caption {i}" for i in range(n)], "audio": [None] * n, "image": [None] * n})
    fig = retrieval_figure(e, "caption", "image", queries=2, k=3, score=mip_similarity)
    assert "caption + audio → image" in fig.texts[0].get_text() and "objective's score" in fig.texts[0].get_text()
    best = mip_similarity({"caption": e.emb["caption"][:1], "audio": e.emb["audio"][:1]}, e.emb["image"]).max()
    assert f"{best.item():.2f}" in np.array(fig.axes).reshape(2, 4)[0][1].get_title()


def test_modalities_that_can_be_pictured_say_so():
    from zoo.plugins import registry
    pytest.importorskip("zoo_video")
    video = registry().get("modalities", "video").meta["thumbnail"](torch.rand(4, 3, 8, 6))  # (T, C, H, W)
    image = registry().get("modalities", "image").meta["thumbnail"](torch.rand(1, 8, 6))
    assert video.shape == (8, 6, 3) and image.shape == (8, 6)
    assert registry().get("modalities", "text").meta.get("thumbnail") is None  # shown as text instead
