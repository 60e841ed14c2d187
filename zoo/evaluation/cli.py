"""``zoo eval``: evaluate a run directory or a model name, with the defaults of the run's recipe.

    zoo eval runs/digits-clip                                # the recipe's [eval]: same numbers as training
    zoo eval runs/digits-clip --dataset digits --task retrieval --match index --json
    zoo eval st:all-MiniLM-L6-v2 --dataset pydoc-topics --task alignment --data-option size=200

For a run directory, everything not given on the command line comes from its ``recipe.toml``:
the dataset (``eval.dataset`` or ``data.dataset``) and, for that same dataset, its
``data.options``; the split (``data.eval_split``); the tasks (``eval.tasks``) and each task's
``eval.options``. Output keys are ``task/metric``, as in the run's ``metrics.jsonl`` and
``results.json``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from zoo.errors import DataError
from zoo.evaluation.runner import format_table, task_names, task_options
from zoo.evaluation.tasks import MATCHES


def add_cli(sub) -> None:
    s = sub.add_parser("eval", help="evaluate a run directory or a model name on a dataset (defaults: the run's "
                                    "recipe [eval])")
    s.add_argument("model", help="a run directory or a catalog name (local-dir:…, hf-hub:…, st:…)")
    s.add_argument("--dataset", help="a registered dataset (default for a run: its recipe's eval dataset)")
    s.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a dataset option, e.g. path=train.csv or size=200 (repeatable)")
    s.add_argument("--task", action="append", choices=task_names(),  # the registered tasks, plugins' included
                   help="repeatable (default for a run: its recipe's eval.tasks; else zero_shot)")
    s.add_argument("--split", help="the split to evaluate (default: the recipe's data.eval_split, else test)")
    s.add_argument("--match", choices=MATCHES, help="retrieval / alignment positives: the paired row (index), any "
                                                    "row of the same label (label), or label when the dataset has "
                                                    "one label field (auto, the default)")
    s.add_argument("--label", help="the label field to match or classify by (when the dataset has several)")
    s.add_argument("--batch-size", type=int, default=256, help="rows embedded at once (default 256)")
    s.add_argument("--device", help="cpu, cuda, cuda:1 … (default: where the model loads)")
    s.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    s.add_argument("--out", help="also write the results as JSON here")
    s.set_defaults(func=cmd_eval)


def run_defaults(model: str) -> dict:
    """What a run directory's recipe says about evaluation (empty for a model name)."""
    path = Path(model) / "recipe.toml"
    if not path.is_file():
        return {}
    from zoo.recipes import load_recipe
    r = load_recipe(path)
    dataset = r.eval.dataset or r.data.dataset
    return {"dataset": dataset, "options": r.data.options if dataset == r.data.dataset else {},
            "split": r.data.eval_split, "train_split": r.data.split, "tasks": r.eval.tasks, "task_options": r.eval.options}


def cmd_eval(args) -> int:
    from zoo.evaluation.runner import run_tasks
    from zoo.hub.catalog import load
    from zoo.recipes import parse_value
    defaults = run_defaults(args.model)
    dataset = args.dataset or defaults.get("dataset")
    if not dataset or dataset.startswith("(in memory"):
        raise DataError(f"say which dataset to evaluate on: --dataset NAME (`zoo list datasets`)"
                        f"{'; the run trained on data in memory' if dataset else ''}.")
    same = dataset == defaults.get("dataset")
    options = dict(defaults.get("options", {})) if same else {}
    for item in args.data_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise DataError(f"--data-option {item!r} is not KEY=VALUE (e.g. path=train.csv).")
        options[key.strip()] = parse_value(value.strip())
    tasks = args.task or (defaults.get("tasks") if same else None) or ["zero_shot"]
    per_task = {}
    for task in tasks:
        opts = dict(defaults.get("task_options", {}).get(task, {})) if same else {}
        params = task_options(task)  # --match/--label reach only the tasks that take them
        opts.update({k: v for k, v in (("match", args.match), ("label", args.label)) if v is not None and k in params})
        per_task[task] = opts
    name = f"local-dir:{args.model}" if os.path.isdir(args.model) else args.model
    model = load(name, device=args.device) if args.device else load(name)
    results = run_tasks(model, dataset, tasks, per_task, split=args.split or defaults.get("split", "test"),
                        train_split=defaults.get("train_split", "train"), dataset_options=options,
                        batch_size=args.batch_size, numbers_only=False)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0
