"""Training: a recipe in, a run directory out.

- :mod:`.trainer` — ``train()`` and the :class:`Trainer` loop (read it top to bottom);
- :mod:`.state` — :class:`TrainState`, everything a run changes as it trains;
- :mod:`.step` — one batch's forward → objective → backward (GradCache, DDP's local loss);
- :mod:`.checkpointing` — the :class:`Checkpointer`: checkpoints and exact resume; :mod:`.checkpoints` — their files;
- :mod:`.runlog` — metrics.jsonl, the progress bar, throughput and the run's log lines;
- :mod:`.build` — the model a recipe asks for (fresh towers, a catalog model, frozen parts);
- :mod:`.optim` — optimizer and schedule;
- :mod:`.rundir` — a run directory belongs to one run; :mod:`.preflight` — device, memory and worker checks;
- :mod:`.distributed`, :mod:`.fsdp`, :mod:`.gradcache` — many processes, sharded towers, big batches.
"""
