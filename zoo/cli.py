"""The ``zoo`` command: plugins, list, info, train, eval, push, export, and the commands plugins register."""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from zoo.errors import ZooError
from zoo.logs import setup_logging

LIST_KINDS = {"models": None, "modalities": "modalities", "encoders": "encoders", "objectives": "objectives",
              "augmentations": "augmentations", "pairs": "pair_strategies", "datasets": "datasets",
              "sources": "pretrained", "tasks": "eval_tasks", "commands": "commands"}


def cmd_plugins(args) -> int:
    from zoo.plugins import get_plugin_manager
    for info in get_plugin_manager().plugins.values():
        status = "ok" if info.ok else "FAILED"
        print(f"{info.name:<22} {info.version or '-':<10} {status:<6} {info.source}")
        if info.error:
            print(f"    error: {info.error}")
        for kind, names in sorted(info.registered.items()):
            print(f"    {kind}: {', '.join(names)}")
    return 0


def cmd_list(args) -> int:
    from zoo.plugins import registry
    kinds = [args.kind] if args.kind else [k for k in LIST_KINDS if k != "models"]
    for kind in kinds:
        if kind == "models":
            _list_models(args.pattern)
            continue
        entries = registry().entries(LIST_KINDS[kind], args.modality)
        if kind == "encoders":
            print(f"encoders ({len(entries)}), as a recipe writes them: [model.towers.<key>] modality = …, "
                  f"encoder = \"<name>\":")
            for e in entries:
                print(f"  {e.modality or '-':<9} {recipe_name(e):<34} {e.description}  [{e.plugin}]")
            continue
        print(f"{kind} ({len(entries)}):")
        for e in entries:
            print(f"  {e.qualname:<32} {e.description}  [{e.plugin}]{capabilities(e)}")
    return 0


def capabilities(entry) -> str:
    """A modality's capabilities as ``zoo list modalities`` shows them (``  can: thumbnail, prompts``)."""
    if entry.kind != "modalities":
        return ""
    spec = entry.factory
    can = [c for c in ("thumbnail", "render", "prompts", "count", "slice") if getattr(spec, c)]
    return f"  can: {', '.join(can)}" if can else ""


def recipe_name(entry) -> str:
    """An entry's name as a recipe writes it: ``timm:<timm model>`` for a family, else its name."""
    variant = entry.meta.get("variant")
    return f"{entry.name}:<{variant}>" if variant else entry.name


def _list_models(pattern: str | None) -> None:
    from zoo.hub.catalog import list_models_offline
    names = list_models_offline(pattern)
    if not names:
        print("(no listable models; `zoo list sources` shows the prefixes)")
        return
    local = sum(1 for v in names.values() if v)
    print(f"models ({len(names)}; {local} load offline, marked *):")
    for name, offline in names.items():
        print(f"  {'*' if offline else '?' if offline is None else ' '} {name}")


def cmd_info(args) -> int:
    import inspect

    from zoo.plugins import registry
    from zoo.registry import LABELS
    reg = registry()
    name = args.name
    head = name.split(":", 1)[0]
    if ":" in name and reg.canonical("pretrained", head) in reg.names("pretrained"):
        from zoo.hub.catalog import info
        print(json.dumps(info(name), indent=2, default=str))
        return 0
    hits = [e for kind in LIST_KINDS.values() if kind for e in reg.entries(kind)
            if name in (e.name, e.qualname) or (":" in name and e.meta.get("variant") and head == e.name)
            or name in e.meta.get("aliases", ())]
    if not hits:
        from zoo.errors import UnknownNameError
        every = [e.qualname for kind in LIST_KINDS.values() if kind for e in reg.entries(kind)]
        raise UnknownNameError("name", name, every)
    for e in hits:
        print(f"{LABELS.get(e.kind, e.kind.rstrip('s'))}: {e.qualname}\n  plugin: {e.plugin}")
        if e.kind == "encoders":
            print(f"  in a recipe: encoder = \"{recipe_name(e)}\" (modality {e.modality})")
        print(f"  {e.description}")
        if e.meta.get("citation"):
            print(f"  citation: {e.meta['citation']}")
        if e.kind == "modalities":
            print(f"  can: {capabilities(e).removeprefix('  can: ') or '(no capabilities)'}")
        made_by = e.factory.load if e.kind == "modalities" else e.factory  # a modality's doc is its load's
        doc = inspect.cleandoc(getattr(made_by, "__doc__", "") or "")
        if doc.startswith(e.description.strip()):  # the description is the docstring's first line: once is enough
            doc = doc[len(e.description.strip()):].strip()
        if doc:
            print("\n".join("  " + ln if ln else "" for ln in doc.splitlines()))
    return 0


def cmd_train(args) -> int:
    from zoo.training.trainer import TrainingInterrupted, train
    if args.recipe is None and not args.resume:
        from zoo.errors import RecipeError
        raise RecipeError("zoo train needs a recipe (zoo train RECIPE.toml), or --resume RUN_DIR to continue a run "
                          "with the recipe stored in it.")
    try:
        result = train(args.recipe, overrides=args.set, resume=bool(args.resume), run_dir=args.resume or args.run_dir,
                       overwrite=args.overwrite)
    except TrainingInterrupted as stop:  # SIGINT / SIGTERM: the checkpoint is written, say how to go on
        result = stop.result
    print(json.dumps(result.metrics, indent=2, default=str))
    if "stopped_at" in result.metrics:
        print(f"\nResume with:  zoo train --resume {result.run_dir}")
    else:
        print(f"\nLoad the result with:  zoo.load(\"local-dir:{result.run_dir}\")")
    return 0


def cmd_export(args) -> int:
    from pathlib import Path

    from zoo.hub.catalog import load
    from zoo.hub.format import load_local
    model = load_local(args.run) if Path(args.run).is_dir() else load(args.run)
    options = {k: v for k, v in (("tower", args.tower), ("image", args.image), ("text", args.text)) if v}
    out = model.export(args.format, args.out, **options)
    print(f"wrote {args.format} to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from zoo import __version__
    p = argparse.ArgumentParser(prog="zoo", description="A plugin-based multimodal contrastive model zoo.")
    p.add_argument("--version", action="version", version=f"zoo {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("plugins", help="each plugin, its version, origin, what it registers and load errors")
    s.set_defaults(func=cmd_plugins)
    s = sub.add_parser("list", help="list registered names")
    s.add_argument("kind", nargs="?", choices=sorted(LIST_KINDS))
    s.add_argument("--modality", help="only this modality (encoders, augmentations)")
    s.add_argument("--pattern", help="glob filter for models")
    s.set_defaults(func=cmd_list)
    s = sub.add_parser("info", help="what a registered name or a model is")
    s.add_argument("name")
    s.set_defaults(func=cmd_info)
    s = sub.add_parser("train", help="train from a TOML recipe")
    s.add_argument("recipe", nargs="?", help="the recipe (optional with --resume: the run's stored recipe.toml)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe value")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint "
                   "(with its stored recipe; only run.steps/epochs/… may change, see docs/reliability.md)")
    s.add_argument("--overwrite", action="store_true", help="RUN_DIR holds an old run: delete its files and start again")
    s.add_argument("--run-dir", help="write the run here instead of run.output_dir/run.name")
    s.set_defaults(func=cmd_train)
    s = sub.add_parser("export", help="write a run or model in another library's format")
    s.add_argument("run", help="a run / checkpoint directory or a model name (st:all-MiniLM-L6-v2, local-dir:…)")
    s.add_argument("format", help="sentence-transformers | open_clip")
    s.add_argument("out", help="the directory to write")
    s.add_argument("--tower", help="sentence-transformers: the text tower to export (default: the only one)")
    s.add_argument("--image", help="open_clip: the image tower (default: the only one)")
    s.add_argument("--text", help="open_clip: the text tower (default: the only one)")
    s.set_defaults(func=cmd_export)
    from zoo.evaluation import cli as eval_cli  # subcommands that live with their feature
    from zoo.hub import cli as hub_cli
    eval_cli.add_cli(sub)
    hub_cli.add_cli(sub)
    from zoo.retrieval import cli as retrieval_cli  # embed, index, search, serve
    retrieval_cli.add_cli(sub)
    add_plugin_commands(sub)
    return p


def add_plugin_commands(sub) -> None:
    """The subcommands plugins registered (``zoo_register_commands``). A name the zoo's own commands use
    is skipped, and so is a command whose ``add_arguments`` raises: each with a warning naming the
    plugin; the other commands keep working."""
    import warnings

    from zoo.plugins import registry
    for e in registry().entries("commands"):
        if e.name in sub.choices:
            warnings.warn(f"zoo plugin {e.plugin!r} registers the command {e.name!r}, which the zoo (or a plugin "
                          f"loaded before it) already has; it is skipped. Rename it in the plugin.", RuntimeWarning,
                          stacklevel=2)
            continue
        arguments = argparse.ArgumentParser(add_help=False)  # filled first: a failure leaves `zoo` untouched
        try:
            if e.meta.get("add_arguments") is not None:
                e.meta["add_arguments"](arguments)
        except Exception as exc:  # noqa: BLE001 - a broken plugin command must not break `zoo`
            warnings.warn(f"zoo plugin {e.plugin!r}: command {e.name!r} is skipped, its add_arguments failed: "
                          f"{type(exc).__name__}: {exc}. Fix or uninstall the plugin.", RuntimeWarning, stacklevel=2)
            continue
        s = sub.add_parser(e.name, parents=[arguments], help=e.meta.get("help") or e.description or
                           f"(plugin {e.plugin})", description=e.description or e.meta.get("help"))
        s.set_defaults(func=_plugin_command(e))


def _plugin_command(entry):
    """``run(args)`` of a plugin command: a ZooError passes (``zoo: error: …``); anything else is reported
    as a failure of that plugin, by name, with status 1 (not as a bug of the zoo)."""

    def run(args) -> int:
        try:
            status = entry.factory(args)
        except (ZooError, KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's failure, reported as one
            tb = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f" ({tb[0].filename}:{tb[0].lineno})" if tb else ""
            print(f"zoo: error: command {entry.name!r} of plugin {entry.plugin!r} failed: {type(exc).__name__}: "
                  f"{exc}{where}. Fix or uninstall the plugin (`zoo plugins` lists every plugin); the other commands "
                  f"are not affected.", file=sys.stderr)
            return 1
        return int(status or 0)

    return run


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        setup_logging(args.verbose)  # one line per record; under torchrun only rank 0 prints
        return args.func(args)
    except ZooError as exc:  # a documented error: its message says what to fix, no traceback
        print(f"zoo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `zoo list … | head` closed the pipe: not an error of the zoo
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        except (AttributeError, OSError, ValueError):
            pass
        return 141
    except Exception as exc:  # anything else is a bug in the zoo or a plugin: say so, with the traceback
        print(f"zoo: internal error: {type(exc).__name__} is not an error the zoo documents, so this is a bug in "
              f"the zoo or a plugin (`zoo plugins` lists them): please report it with the command you ran and the "
              f"traceback below.", file=sys.stderr)
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
