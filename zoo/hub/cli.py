"""``zoo push RUN_DIR REPO_ID``: a trained run's checkpoint and a model card to the Hugging Face Hub.

    zoo push runs/digits-clip my-org/digits-clip [--private] [--message "…"] [--token hf_…]

The run's own files are uploaded as they are — ``config.json``, ``model.safetensors``,
``recipe.toml`` and ``assets/`` (tokenizers, processor configs) — after the checkpoint has been
loaded strictly once (a run that would not load is never pushed), with a ``README.md`` model card
generated for the repo: modalities and towers, the objective with its citation, the training
data, the run's metrics (``results.json``) and how to load it (``zoo.load("hf-hub:<repo>")``).
Uploading goes through ``huggingface_hub`` (``HfApi.create_repo`` + ``upload_folder``).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.errors import CheckpointError
from zoo.files import atomic_write_text
from zoo.hub.format import CONFIG, WEIGHTS, load_local
from zoo.hub.remote_code import CODE_SUFFIXES

UPLOADED = (CONFIG, WEIGHTS, "recipe.toml")


def stage_run(run_dir: str | Path, repo_id: str, folder: str | Path) -> Path:
    """Copy what a run uploads into ``folder`` and write its model card; returns ``folder``."""
    run_dir, folder = Path(run_dir), Path(folder)
    model = load_local(run_dir)  # strict: config, assets and weights must agree
    for name in UPLOADED:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, folder / name)
    if (run_dir / "assets").is_dir():
        shutil.copytree(run_dir / "assets", folder / "assets", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(*(f"*{s}" for s in CODE_SUFFIXES)))  # never upload code
    recipe = (run_dir / "recipe.toml").read_text("utf-8") if (run_dir / "recipe.toml").is_file() else None
    metrics = json.loads((run_dir / "results.json").read_text("utf-8")) if (run_dir / "results.json").is_file() \
        else None
    from zoo.hub.card import model_card
    atomic_write_text(folder / "README.md", model_card(model, recipe_text=recipe, metrics=metrics, repo_id=repo_id))
    return folder


def push_run(run_dir: str | Path, repo_id: str, *, private: bool | None = None, commit_message: str | None = None,
             token: str | None = None, api=None) -> Any:
    """Upload a run directory to ``repo_id`` (created if needed); returns huggingface_hub's commit info."""
    if api is None:
        from huggingface_hub import HfApi
        api = HfApi(token=token)
    message = commit_message or f"Upload zoo run {Path(run_dir).name}"
    with tempfile.TemporaryDirectory() as tmp:
        stage_run(run_dir, repo_id, tmp)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            return api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=message)
        except Exception as exc:  # auth, network and Hub errors all stop the push, with what to do
            raise CheckpointError(f"cannot push {run_dir} to {repo_id}: {type(exc).__name__}: {exc}. Log in "
                                  f"(`hf auth login`) or pass --token, and check the repo id and your "
                                  f"network.") from exc


def add_cli(sub) -> None:
    s = sub.add_parser("push", help="upload a run (checkpoint, assets, recipe, model card) to the Hugging Face Hub")
    s.add_argument("run_dir", help="a run directory written by `zoo train` (or any zoo checkpoint directory)")
    s.add_argument("repo_id", help="the Hub repo, e.g. my-org/digits-clip (created if missing)")
    s.add_argument("--private", action="store_true", help="create the repo as private")
    s.add_argument("--message", help="the commit message")
    s.add_argument("--token", help="a Hugging Face token (default: the logged-in one)")
    s.set_defaults(func=_cmd_push)


def _cmd_push(args) -> int:
    info = push_run(args.run_dir, args.repo_id, private=args.private or None, commit_message=args.message,
                    token=args.token)
    print(f"pushed {args.run_dir} to {args.repo_id}: {getattr(info, 'commit_url', info)}")
    print(f'load it with:  zoo.load("hf-hub:{args.repo_id}")')
    return 0
