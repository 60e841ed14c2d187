"""Evaluation: the built-in tasks (:mod:`.tasks`, registered through ``zoo_register_eval_tasks`` like a
plugin's), running and checking registered tasks (:mod:`.runner`), embedding a dataset (:mod:`.embed`),
the pictures (:mod:`.plots`) and ``zoo eval`` (:mod:`.cli`)."""
from __future__ import annotations

from zoo.evaluation.runner import evaluate, format_table, run_tasks  # noqa: F401
from zoo.evaluation.tasks import alignment_uniformity, linear_probe, retrieval, zero_shot  # noqa: F401
