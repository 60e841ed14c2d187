"""GradCache: full-batch gradients from chunks, with dropout masks restored, and flat memory."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from helpers import QUICK

from zoo.recipes import load_recipe
from zoo.training.trainer import Trainer

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"


def _grads_after_one_step(tmp_path, chunk: int, dropout: float, objective: str = "clip", extra=None):
    over = {**QUICK, **(extra or {}), "data.batch_size": 64, "optim.warmup_steps": 4, "run.grad_cache_chunk": chunk,
            "objective.name": objective, "model.towers.x.dropout": dropout, "model.towers.y.dropout": dropout}
    t = Trainer(load_recipe(QUICKSTART, over), run_dir=tmp_path / f"c{chunk}")
    batch = next(iter(t.batches()))
    torch.manual_seed(123)
    loss = t.forward_backward(batch)
    return loss, {n: p.grad.clone() for n, p in t.model.named_parameters() if p.grad is not None}, t, batch


def test_gradients_equal_the_full_batch(tmp_path):
    for objective in ("clip", "siglip"):
        over = {} if objective == "clip" else {"model.logit_bias": -10.0}
        l0, g0, *_ = _grads_after_one_step(tmp_path / objective, 0, 0.0, objective, over)
        l1, g1, *_ = _grads_after_one_step(tmp_path / objective, 16, 0.0, objective, over)
        assert abs(l0.item() - l1.item()) < 1e-6
        for k in g0:
            torch.testing.assert_close(g1[k], g0[k], atol=1e-6, rtol=1e-5)


def test_fixed_temperature_and_frozen_tower_equal_the_full_batch(tmp_path):
    """Outputs without a graph (a temperature that is not learnt, a frozen tower) get no backward of their
    own; the gradients of the rest still equal the full batch's."""
    over = {"model.learn_logit_scale": False, "model.freeze": ["towers.y"]}
    l0, g0, t, _ = _grads_after_one_step(tmp_path / "full", 0, 0.0, "clip", over)
    l1, g1, *_ = _grads_after_one_step(tmp_path / "cache", 16, 0.0, "clip", over)
    assert not t.model.logit_scale.requires_grad
    assert abs(l0.item() - l1.item()) < 1e-6
    assert g0.keys() == g1.keys() and g0  # the x tower learns; y and the temperature are fixed
    assert not any(k.startswith("towers.y") for k in g0)
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], atol=1e-6, rtol=1e-5)


def test_dropout_masks_are_restored(tmp_path):
    """With dropout, GradCache's gradients equal autograd through the same chunked forward."""
    _, g_cache, t, batch = _grads_after_one_step(tmp_path, 16, 0.3)
    t.optimizer.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # the same starting RNG state as the GradCache pass
    from zoo.data.batches import slice_batch
    fb = t.forward_backward
    chunks = [fb.encode({v: (tw, slice_batch(b, lo, lo + 16)) for v, (tw, b) in batch.views.items()})
              for lo in range(0, 64, 16)]
    emb = {k: torch.cat([c.embeddings[k] for c in chunks]) for k in chunks[0].embeddings}
    fb.loss(chunks[0]._replace(embeddings=emb), batch).backward()  # the temperature from the first chunk
    for n, p in t.model.named_parameters():
        torch.testing.assert_close(g_cache[n], p.grad, atol=1e-6, rtol=1e-5)


PEAK = """
import sys, torch
from zoo.recipes import load_recipe
from zoo.training.trainer import Trainer
chunk, batch = int(sys.argv[1]), int(sys.argv[2])
over = {"data.batch_size": batch, "data.options.size": batch, "run.grad_cache_chunk": chunk, "run.progress": False,
        "optim.warmup_steps": 0,
        "objective.options.chunk_size": 256,  # the loss streams too: no (B, B) logits
        "model.towers.x.hidden": 1024, "model.towers.y.hidden": 1024, "model.towers.x.layers": 4, "model.towers.y.layers": 4}
t = Trainer(load_recipe(%r, over), run_dir=%r)
b = next(iter(t.batches()))
def kb(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field))
open("/proc/self/clear_refs", "w").write("5")   # reset the high-water mark (Linux)
before = kb("VmRSS:")
t.forward_backward(b)
print((kb("VmHWM:") - before) / 1024)
"""


# glibc moves its mmap threshold up as large blocks are freed, so whether a tensor's pages come
# from a fresh mapping (counted in the peak) or from reused heap varies run to run; a fixed
# threshold makes every large tensor a mapping of its own and the peak repeatable.
PEAK_ENV = {"OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}


def _peak_mb(tmp_path, chunk: int, batch: int) -> float:
    code = PEAK % (str(QUICKSTART), str(tmp_path / f"p{chunk}-{batch}"))
    out = subprocess.run([sys.executable, "-c", code, str(chunk), str(batch)], capture_output=True, text=True,
                         timeout=300, env={**__import__("os").environ, **PEAK_ENV})
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.strip().splitlines()[-1])


def test_peak_memory_stays_flat_as_the_batch_grows(tmp_path):
    small, large = _peak_mb(tmp_path, 128, 512), _peak_mb(tmp_path, 128, 4096)
    plain = _peak_mb(tmp_path, 0, 4096)
    print(json.dumps({"gradcache_512_MB": small, "gradcache_4096_MB": large, "plain_4096_MB": plain}))
    assert large < plain / 3, (small, large, plain)   # activations of one chunk, not of the batch
    assert large < small + 25, (small, large)          # grows only by the cached (B, D) embeddings
