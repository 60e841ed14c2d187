"""The ``zoo`` command: plugins, list, info, train, eval, push."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .errors import ZooError

LIST_KINDS = {"models": None, "modalities": "modalities", "encoders": "encoders", "objectives": "objectives",
              "augmentations": "augmentations", "pairs": "pair_strategies", "datasets": "datasets",
              "sources": "pretrained"}


def cmd_plugins(args) -> int:
    from .plugins import get_plugin_manager
    for info in get_plugin_manager().plugins.values():
        status = "ok" if info.ok else "FAILED"
        print(f"{info.name:<22} {info.version or '-':<10} {status:<6} {info.source}")
        if info.error:
            print(f"    error: {info.error}")
        for kind, names in sorted(info.registered.items()):
            print(f"    {kind}: {', '.join(names)}")
    return 0


def cmd_list(args) -> int:
    from . import list_models
    from .plugins import registry
    kinds = [args.kind] if args.kind else [k for k in LIST_KINDS if k != "models"]
    for kind in kinds:
        if kind == "models":
            names = list_models(args.pattern)
            print("\n".join(names) if names else "(no listable models; `zoo list sources` shows the prefixes)")
            continue
        entries = registry().entries(LIST_KINDS[kind], args.modality)
        print(f"{kind} ({len(entries)}):")
        for e in entries:
            print(f"  {e.qualname:<32} {e.description}  [{e.plugin}]")
    return 0


def cmd_info(args) -> int:
    from .plugins import registry
    reg = registry()
    name = args.name
    if ":" in name and name.split(":", 1)[0] in reg.names("pretrained"):
        from .catalog import info
        print(json.dumps(info(name), indent=2, default=str))
        return 0
    hits = [e for kind in LIST_KINDS.values() if kind for e in reg.entries(kind) if name in (e.name, e.qualname)]
    if not hits:
        from .errors import UnknownNameError
        every = [e.qualname for kind in LIST_KINDS.values() if kind for e in reg.entries(kind)]
        raise UnknownNameError("name", name, every)
    for e in hits:
        print(f"{e.kind[:-1] if e.kind.endswith('s') else e.kind}: {e.qualname}\n  plugin: {e.plugin}\n"
              f"  {e.description}")
        if e.meta.get("citation"):
            print(f"  citation: {e.meta['citation']}")
        doc = (getattr(e.factory, "__doc__", "") or "").strip()
        if doc:
            print("\n".join("  " + ln for ln in doc.splitlines()))
    return 0


def cmd_train(args) -> int:
    from .trainer import train
    result = train(args.recipe, overrides=args.set, resume=bool(args.resume), run_dir=args.resume or args.run_dir)
    print(json.dumps(result.metrics, indent=2, default=str))
    print(f"\nLoad the result with:  zoo.load(\"local-dir:{result.run_dir}\")")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zoo", description="A plugin-based multimodal contrastive model zoo.")
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
    s.add_argument("recipe")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe value")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    s.add_argument("--run-dir", help="write the run here instead of run.output_dir/run.name")
    s.set_defaults(func=cmd_train)
    from . import evaluation, hub_cli  # subcommands that live with their feature
    evaluation.add_cli(sub)
    hub_cli.add_cli(sub)
    from .retrieval import cli as retrieval_cli  # embed, index, search, serve
    retrieval_cli.add_cli(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ZooError as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
