"""The Trainer's AdamW uses torch's fused kernel where every parameter takes it, and the same update."""
import torch

from zoo.recipes import load_recipe
from zoo.training.build import build_model
from zoo.training.optim import can_fuse, make_optimizer

RECIPE = {"model": {"embed_dim": 8, "towers": {
    "x": {"modality": "vector", "encoder": "mlp", "in_dim": 4, "hidden": 8, "out_dim": 8, "layers": 1},
    "y": {"modality": "vector", "encoder": "mlp", "in_dim": 4, "hidden": 8, "out_dim": 8, "layers": 1}}},
    "data": {"dataset": "synthetic-pairs", "options": {"size": 64, "dim": 4}, "batch_size": 8},
    "objective": {"name": "clip"}, "run": {"steps": 1}}


def test_cpu_parameters_get_the_fused_kernel_with_the_same_update():
    recipe = load_recipe(RECIPE)
    torch.manual_seed(0)
    model = build_model(recipe)
    opt = make_optimizer(model, recipe)
    assert all(g["fused"] for g in opt.param_groups)
    ref_model = build_model(recipe)
    ref_model.load_state_dict(model.state_dict())
    groups = [{"params": [q for q, p in zip(ref_model.parameters(), model.parameters()) if any(p is r for r in g["params"])],
               "weight_decay": g["weight_decay"]} for g in opt.param_groups]
    ref = torch.optim.AdamW(groups, lr=opt.defaults["lr"], betas=opt.defaults["betas"], eps=opt.defaults["eps"],
                            foreach=False)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        p.grad = torch.randn_like(p)
        q.grad = p.grad.clone()
    for _ in range(3):
        opt.step()
        ref.step()
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_what_cannot_be_fused_is_not():
    assert can_fuse([torch.nn.Parameter(torch.zeros(3))])
    assert not can_fuse([torch.zeros(3)])                                  # not a Parameter (e.g. a DTensor shard)
    assert not can_fuse([torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3, device="meta"))])
