"""The ``zoo embed``, ``zoo index``, ``zoo search`` and ``zoo serve`` subcommands."""
from __future__ import annotations

import json
import sys

from zoo.errors import DataError


def add_cli(sub) -> None:
    s = sub.add_parser("embed", help="embed a dataset split into sharded arrays + manifest (resumable, torchrun)")
    s.add_argument("model", help="a run directory or a catalog name (local-dir:…, hf-hub:…, …)")
    s.add_argument("--dataset", required=True, help="a registered dataset (`zoo list datasets`)")
    s.add_argument("--split", default="test")
    s.add_argument("--fields", help="comma-separated fields to embed (default: every field the model encodes)")
    s.add_argument("--options", default="{}", help="dataset options as JSON, e.g. '{\"urls\": \"data/{000..009}.tar\"}'")
    s.add_argument("--out", required=True, help="the embedding directory to write (or to resume)")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--shard-size", type=int, default=8192, help="rows per shard (the unit of resume and of torchrun)")
    s.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    s.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_embed)

    s = sub.add_parser("index", help="build a FAISS index next to the embeddings (recall@10 in the manifest)")
    s.add_argument("dir")
    s.add_argument("--kind", default="auto", choices=["auto", "flat", "ivf", "hnsw"],
                   help="auto: exact below 100k vectors, IVF above")
    s.add_argument("--metric", default="ip", choices=["ip", "l2"])
    s.add_argument("--field", action="append", help="only this field (repeatable)")
    s.add_argument("--target-recall", type=float, default=0.95, help="tune nprobe/efSearch up to this recall@10")
    s.set_defaults(func=_cmd_index)

    s = sub.add_parser("search", help="the k nearest items of an index for a query of any modality")
    s.add_argument("dir")
    s.add_argument("--modality", action="append", required=True,
                   help="the query's modality or tower; give it twice (with two --query) for a Symile query")
    s.add_argument("--query", action="append", default=[], help="text, an image/audio/video path, a SMILES, …")
    s.add_argument("--queries", help="a file of queries, one per line (or JSON objects {modality: value})")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--field", help="the embedded field to search (default: one of another modality)")
    s.add_argument("--json", action="store_true", help="print JSON for scripts")
    s.set_defaults(func=_cmd_search)

    s = sub.add_parser("serve", help="a local web page: model browser and a search box per index")
    s.add_argument("--index", action="append", default=[], metavar="DIR", help="an embedding directory (repeatable)")
    s.add_argument("--models", action="append", default=[], metavar="DIR",
                   help="a run directory, or a folder of run directories, to browse (repeatable)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--max-upload-mb", type=float, default=20.0)
    s.set_defaults(func=_cmd_serve)


def _cmd_embed(args) -> int:
    from zoo.retrieval.embed import embed
    try:
        options = json.loads(args.options)
    except ValueError as exc:
        raise DataError(f"--options must be a JSON object ({exc}), e.g. '{{\"size\": 100}}'.") from exc
    m = embed(args.model, args.dataset, args.out, split=args.split,
              fields=[f.strip() for f in args.fields.split(",")] if args.fields else None,
              batch_size=args.batch_size, shard_size=args.shard_size, dtype=args.dtype, dataset_options=options,
              num_workers=args.workers, progress=not args.no_progress)
    print(f"embedded {m['count']} items × {list(m['fields'])} (dim {m['dim']}, {m['dtype']}) into {args.out}")
    return 0


def _cmd_index(args) -> int:
    from zoo.retrieval.index import index
    m = index(args.dir, kind=args.kind, metric=args.metric, fields=args.field, target_recall=args.target_recall)
    for f, e in m["indexes"].items():
        if args.field and f not in args.field:
            continue
        print(f"{f}: {e['factory']} ({e['metric']}), {e['count']} vectors, recall@10 {e['recall@10']}"
              f"{' (exact)' if e.get('exact') else ' vs exact, ' + e['params']}, built in {e['build_s']} s")
    return 0


def _read_queries(args) -> list[dict[str, list]]:
    """The query batches: ``[{modality: [raw, …]}, …]``."""
    if args.queries:
        try:
            lines = [ln.rstrip("\n") for ln in open(args.queries, encoding="utf-8") if ln.strip()]
        except OSError as exc:
            raise DataError(f"cannot read the queries file {args.queries}: {exc}.") from exc
        plain = [ln for ln in lines if not ln.lstrip().startswith("{")]
        if plain and len(args.modality) != 1:
            raise DataError("plain query lines need exactly one --modality; write JSON lines {modality: value} instead.")
        batches = [{args.modality[0]: plain}] if plain else []
        return batches + [{m: [v] for m, v in json.loads(ln).items()} for ln in lines if ln.lstrip().startswith("{")]
    if len(args.query) != len(args.modality):
        raise DataError(f"give one --query per --modality (got {len(args.modality)} modalities, {len(args.query)} "
                        f"queries), or --queries FILE.")
    return [{m: [q] for m, q in zip(args.modality, args.query)}]


def _cmd_search(args) -> int:
    from zoo.retrieval.search import Searcher, format_hits
    searcher = Searcher(args.dir)
    results = []
    for batch in _read_queries(args):
        for i, hits in enumerate(searcher.search(batch, k=args.k, field=args.field)):
            results.append({"query": {m: str(v[i]) for m, v in batch.items()}, "hits": hits})
    if args.json:
        json.dump(results if len(results) > 1 or args.queries else results[0], sys.stdout, indent=2)
        print()
    else:
        print("\n\n".join(format_hits(", ".join(f"{m}={v!r}" for m, v in r["query"].items()), r["hits"])
                          for r in results))
    return 0


def _cmd_serve(args) -> int:
    from zoo.retrieval.serve import serve
    serve(indexes=args.index, models=args.models, host=args.host, port=args.port,
          max_upload=int(args.max_upload_mb * 2**20), announce=print)
    return 0
