"""Evaluation: the tasks (:mod:`.tasks`), embedding a dataset (:mod:`.embed`), the pictures
(:mod:`.plots`) and ``zoo eval`` (:mod:`.cli`)."""
from __future__ import annotations

from zoo.evaluation.tasks import (alignment_uniformity, evaluate, format_table, linear_probe,  # noqa: F401
                                  retrieval, run_tasks, zero_shot)
