"""Evaluation: the built-in tasks (:mod:`.tasks`, registered through ``zoo_register_eval_tasks`` like a
plugin's), running and checking registered tasks (:mod:`.runner`), embedding a dataset (:mod:`.embed`),
the pictures (:mod:`.plots`) and ``zoo eval`` (:mod:`.cli`)."""
from __future__ import annotations

from zoo.evaluation.tasks import (  # noqa: F401
                                  alignment_uniformity,
                                  evaluate,
                                  format_table,
                                  linear_probe,
                                  retrieval,
                                  run_tasks,
                                  zero_shot,
)
