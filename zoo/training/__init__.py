"""Training: a recipe in, a run directory out.

- :mod:`.trainer` — ``train()`` and the :class:`Trainer` loop (read it top to bottom);
- :mod:`.build` — the model a recipe asks for (fresh towers, a catalog model, frozen parts);
- :mod:`.optim` — optimizer and schedule;
- :mod:`.checkpointing` — the trainer's checkpoints and exact resume; :mod:`.checkpoints` — their files;
- :mod:`.rundir` — a run directory belongs to one run; :mod:`.preflight` — device, memory and worker checks;
- :mod:`.distributed`, :mod:`.fsdp`, :mod:`.gradcache` — many processes, sharded towers, big batches.
"""
