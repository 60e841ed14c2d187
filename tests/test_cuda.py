"""CUDA-only checks (marker ``cuda``; skipped where no GPU is present). ``benchmarks/gpu_check.py``
runs them on a machine with a GPU: ``pytest -m cuda tests/test_cuda.py``.

- bf16 / fp16 autocast losses (clip, siglip, symile) against float32 on the same inputs;
- ``run.compile`` training on CUDA: finite losses that follow the eager run's;
- a 1-GPU NCCL process group: the zoo's gathers and the all-reduce log-sum-exp;
- FSDP (``zoo.training.fsdp.shard``) on one GPU: loss and gradients equal the unsharded model's.
"""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.nn.functional as F

import zoo

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.py)")]

TOWER = {"modality": "vector", "encoder": "mlp", "in_dim": 16, "hidden": 64, "out_dim": 64, "layers": 2}


def unit(n, d, m=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(n, d, generator=g), dim=1).cuda() for _ in range(m)]


def small_model():
    from zoo.model import ContrastiveModel, ModelConfig
    torch.manual_seed(0)
    return ContrastiveModel(ModelConfig.from_dict({"embed_dim": 32, "towers": {"x": dict(TOWER), "y": dict(TOWER)}}))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["clip", "siglip", "symile"])
def test_autocast_loss_matches_float32(name, dtype):
    m = 3 if name == "symile" else 2
    xs = unit(512, 128, m)
    emb = dict(zip(("a", "b", "c"), xs))
    objective = zoo.create_objective(name)
    kw = {"logit_scale": torch.tensor(10.0, device="cuda")}
    if name == "siglip":
        kw["logit_bias"] = torch.tensor(-10.0, device="cuda")
    ref = objective(emb, **kw)
    with torch.autocast("cuda", dtype=dtype):
        low = objective({k: v.to(dtype) for k, v in emb.items()}, **kw)
    assert torch.isfinite(low)
    assert float(low) == pytest.approx(float(ref), rel=2e-2, abs=2e-2)


def _train(tmp_path, compile_: bool, precision: str = "fp32"):
    from zoo.recipes import load_recipe
    from zoo.training.trainer import Trainer
    text = (tmp_path.parent / "recipe.toml")
    text.write_text(f"""
[model]
embed_dim = 32
[model.towers]
x = {{ modality = "vector", encoder = "mlp", in_dim = 16, hidden = 64, out_dim = 64, layers = 2 }}
y = {{ modality = "vector", encoder = "mlp", in_dim = 16, hidden = 64, out_dim = 64, layers = 2 }}
[data]
dataset = "synthetic-pairs"
options = {{ size = 512, dim = 16 }}
batch_size = 64
[objective]
name = "clip"
[run]
steps = 16
seed = 0
device = "cuda"
precision = "{precision}"
compile = {str(compile_).lower()}
log_every = 1
progress = false
""")
    losses = []

    class Record(Trainer):
        def _after_step(self, loss, batch_size):
            super()._after_step(loss, batch_size)
            losses.append(float(loss))

    Record(load_recipe(str(text)), run_dir=tmp_path / "run", progress=False).fit()
    return losses


def test_compiled_training_follows_eager(tmp_path):
    eager = _train(tmp_path / "eager", compile_=False)
    compiled = _train(tmp_path / "compiled", compile_=True)
    assert len(compiled) == len(eager) == 16 and all(map(torch.isfinite, map(torch.tensor, compiled)))
    assert compiled == pytest.approx(eager, rel=1e-2, abs=1e-2)  # same kernels up to fusion order


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_runs(tmp_path, precision):
    losses = _train(tmp_path, compile_=False, precision=precision)
    assert len(losses) == 16 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]


@pytest.fixture
def nccl_group():
    import torch.distributed as dist
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", rank=0, world_size=1)
    yield dist
    dist.destroy_process_group()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_nccl_one_gpu_gathers(nccl_group):
    from zoo.objectives._collectives import all_reduce_logsumexp
    from zoo.training.distributed import gather_plain, gather_with_grad
    assert nccl_group.get_backend() == "nccl"
    x = torch.randn(8, 4, device="cuda", requires_grad=True)
    assert torch.equal(gather_plain(x), x.detach())
    gathered = gather_with_grad(x)
    gathered.sum().backward()
    assert torch.equal(gathered.detach(), x.detach()) and torch.equal(x.grad, torch.ones_like(x))
    v = torch.randn(5, device="cuda")
    assert torch.allclose(all_reduce_logsumexp(v), v)


def test_fsdp_one_gpu_equals_unsharded(nccl_group):
    from zoo.training.fsdp import average_replicated_grads, full_model_state, shard
    plain, sharded = small_model().cuda(), small_model().cuda()
    shard(sharded, torch.device("cuda"), 1)
    g = torch.Generator().manual_seed(3)
    batch = {v: torch.randn(32, 16, generator=g).cuda() for v in ("x", "y")}
    objective = zoo.create_objective("clip")
    losses = []
    for model in (plain, sharded):
        emb = {v: model.encode(v, b) for v, b in batch.items()}
        loss = objective(emb, logit_scale=model.scale())
        loss.backward()
        losses.append(loss.detach())
    average_replicated_grads(sharded)
    assert torch.allclose(losses[0], losses[1], atol=1e-6)
    full = full_model_state(sharded)
    for name, p in plain.named_parameters():
        assert torch.allclose(full[name].cuda(), p.detach(), atol=1e-6)
    for (name, p), q in zip(plain.named_parameters(), sharded.parameters()):
        grad = q.grad.full_tensor() if hasattr(q.grad, "full_tensor") else q.grad
        assert torch.allclose(grad, p.grad, atol=1e-5), name


def test_loader_batches_arrive_pinned_with_workers(tmp_path):
    """data.num_workers on CUDA pins each batch (the DataLoader calls Batch.pin_memory), so embed_batch's
    non-blocking copy overlaps the GPU's work."""
    from zoo.recipes import load_recipe
    from zoo.training.trainer import Trainer

    text = tmp_path / "pin.toml"
    text.write_text(f"""
[model]
embed_dim = 32
[model.towers]
x = {TOWER!r}
y = {TOWER!r}
[data]
dataset = "synthetic-pairs"
options = {{ size = 256, dim = 16 }}
batch_size = 64
num_workers = 1
[run]
steps = 2
device = "cuda"
progress = false
""".replace("'", '"').replace(": ", " = "))
    trainer = Trainer(load_recipe(str(text)), run_dir=tmp_path / "run", progress=False)
    batch = next(trainer.batches())
    assert all(b.is_pinned() for _, b in batch.views.values()) and batch.labels["class"].is_pinned()
    trainer.close()
