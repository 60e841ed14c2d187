"""Evaluation tasks as the registry holds them: running them, their options, checking an ``[eval]`` section.

Every task, the built-in ones (:mod:`zoo.evaluation.tasks`) and a plugin's alike, is registered
through ``zoo_register_eval_tasks`` as ``register(name, run, *, needs_train=False, metrics=…,
lower_is_better=…, choices=…, metric_fields=…)`` (see :mod:`zoo.hookspecs`), and everything here reads
the registry: ``zoo.evaluate``, a recipe's ``[eval]`` (checked before training, run by the trainer),
and ``zoo eval``. No task is named here.
"""
from __future__ import annotations

import inspect
import re
from typing import Any

from zoo.data.datasets import as_dataset, create_dataset
from zoo.errors import DataError, RecipeError, closest
from zoo.plugins import registry

# what evaluate() passes to a task's run itself (never a recipe option)
_DATA_ARGS = ("model", "dataset", "train_dataset")
# the metrics a task minimises, for a task that does not say (mean/median rank, Wang & Isola's two losses)
LOWER_IS_BETTER = r".*(rank|alignment|uniformity).*"


def task_names() -> list[str]:
    """Every registered evaluation task."""
    return registry().names("eval_tasks")


def task_entry(task: str):
    """The registry entry of ``task`` (:class:`UnknownNameError` with the closest names if none)."""
    return registry().get("eval_tasks", task)


def needs_train(tasks: list[str]) -> bool:
    """Whether one of ``tasks`` is fitted on the training split too (it takes ``train_dataset=``)."""
    return any(t in task_names() and task_entry(t).meta.get("needs_train", False) for t in tasks)


def _params(task: str) -> dict[str, inspect.Parameter]:
    run = task_entry(task).factory
    return {n: p for n, p in inspect.signature(run).parameters.items()
            if n not in _DATA_ARGS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def task_options(task: str) -> list[str]:
    """The options ``[eval.options.<task>]`` accepts: the keyword parameters of the task's ``run``."""
    return list(_params(task))


def evaluate(model, dataset, task: str = "zero_shot", *, split: str = "test", train_split: str = "train",
             dataset_options: dict | None = None, batch_size: int = 256, **kw: Any) -> dict[str, Any]:
    """Evaluate ``model`` on a dataset (a registered name, a Dataset or a list of dicts) for one task.

    ``kw`` are the task's options (:func:`task_options`); ``batch_size`` reaches the tasks that take it.
    A task registered with ``needs_train=True`` gets ``train_dataset`` (given, or the dataset's
    ``train_split`` when ``dataset`` is a name)."""
    entry = task_entry(task)
    ds = create_dataset(dataset, split=split, **(dataset_options or {})) if isinstance(dataset, str) \
        else as_dataset(dataset)  # a Dataset, or a list of dicts
    train = kw.pop("train_dataset", None)
    if entry.meta.get("needs_train", False):
        if train is None:
            if not isinstance(dataset, str):
                raise DataError(f"{task} on a Dataset object needs train_dataset=<the training split>.")
            train = create_dataset(dataset, split=train_split, **(dataset_options or {}))
        kw["train_dataset"] = train
    valid = task_options(task)
    unknown = sorted(set(kw) - set(valid) - {"train_dataset"})
    if unknown:
        raise RecipeError(f"evaluation task {task!r} has no option(s) {', '.join(map(repr, unknown))}; "
                          f"valid: {', '.join(valid) or 'none'}.")
    if "batch_size" in valid:
        kw.setdefault("batch_size", batch_size)
    return dict(entry.factory(model, ds, **kw))


def run_tasks(model, dataset, tasks: list[str], options: dict[str, dict] | None = None, train_dataset=None,
              numbers_only: bool = True, **kw) -> dict[str, Any]:
    """Several tasks at once → ``{"task/metric": value}`` (numbers only, as the trainer logs them,
    unless ``numbers_only=False``). ``train_dataset`` is the split the tasks that need one fit on."""
    out: dict[str, Any] = {}
    for task in tasks:
        extra = {"train_dataset": train_dataset} if train_dataset is not None and needs_train([task]) else {}
        res = evaluate(model, dataset, task=task, **kw, **extra, **(options or {}).get(task, {}))
        out.update({f"{task}/{k}": float(v) if isinstance(v, (int, float)) else v for k, v in res.items()
                    if isinstance(v, (int, float)) or not numbers_only})
    return out


def format_table(results: dict[str, Any]) -> str:
    width = max((len(k) for k in results), default=0)
    return "\n".join(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in results.items())


# -- checking an [eval] section before training ---------------------------------------------------
def best_mode(metric: str, mode: str = "auto") -> str:
    """``"max"`` or ``"min"``: ``mode`` itself, or inferred from the metric's name by its task's
    ``lower_is_better`` (default: ranks and alignment/uniformity are lower-is-better; accuracies,
    recalls, R²: higher)."""
    if mode != "auto":
        return mode
    task, _, name = metric.partition("/")
    lower = task_entry(task).meta.get("lower_is_better") if task in task_names() else None
    return "min" if re.fullmatch(lower or LOWER_IS_BETTER, name or task) else "max"


def eval_problems(tasks: list[str], options: dict, best_metric: str) -> list[tuple[str, str]]:
    """What is wrong with an ``[eval]`` section, as ``(recipe key, problem and fix)`` pairs."""
    known = task_names()
    out = []
    for task in tasks:
        if task not in known:
            near = closest(task, known)
            out.append(("eval.tasks", f"unknown evaluation task {task!r}"
                        + (f"; did you mean {near[0]!r}?" if near else "") + f" Tasks: {', '.join(known)}."))
    for task, opts in options.items():
        key = f"eval.options.{task}"
        if task not in known:  # (options of a task missing from eval.tasks are allowed, and unused)
            out.append((key, f"options for {task!r}, which is not an evaluation task; tasks: {', '.join(known)}."))
            continue
        if not isinstance(opts, dict):
            out.append((key, f"must be a table of {task}'s options, e.g. {{ batch_size = 128 }}."))
            continue
        valid = task_options(task)
        for name, value in opts.items():
            choices = (task_entry(task).meta.get("choices") or {}).get(name)
            if name not in valid:
                out.append((f"{key}.{name}", f"{task} has no option {name!r}; valid: {', '.join(valid)}."))
            elif choices and value not in choices:
                out.append((f"{key}.{name}", f"= {value!r}; valid: {', '.join(choices)}."))
    if best_metric:
        task, sep, metric = best_metric.partition("/")
        pattern = task_entry(task).meta.get("metrics") or ".+" if task in known else ".+"
        if not tasks:
            out.append(("eval.best_metric", "is set but eval.tasks is empty; add the task that logs it."))
        elif not sep or task not in tasks or not re.fullmatch(pattern, metric):
            shown = "; ".join(f"{t}/{task_entry(t).meta.get('metrics') or '.+'}" for t in tasks if t in known)
            out.append(("eval.best_metric", f"= {best_metric!r} is not a metric the tasks log: they log "
                                            f"\"task/metric\" names matching {shown} (e.g. \"zero_shot/top1\", "
                                            f"\"retrieval/image->text R@1\")."))
    return out


def check_metric_fields(best_metric: str, dataset) -> None:
    """The fields a best metric names (its task's ``metric_fields``) are fields of the evaluation dataset."""
    fields = list(getattr(dataset, "fields", {}) or {})
    task, _, metric = best_metric.partition("/")
    named_by = task_entry(task).meta.get("metric_fields") if task in task_names() else None
    named = list(named_by(metric, fields)) if named_by is not None else []
    missing = [f for f in named if f not in fields]
    if missing:
        raise RecipeError(f"eval.best_metric = {best_metric!r} names field(s) {missing} that the evaluation dataset "
                          f"does not have; its fields are {fields}.")
