"""``zoo search``: embed a query with the index's own model and return the k nearest items.

A query of one modality is searched by inner product. A query of two or more modalities (a Symile
model with three or more towers) is answered by the multilinear inner product
``Σ_d a_d·b_d·c_d``: the elementwise product of the query embeddings ``a ⊙ b`` (not re-normalised)
searched by inner product against the third field's index gives exactly that score.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from zoo.errors import CheckpointError, DataError, UnknownNameError, ZooError
from zoo.retrieval import store
from zoo.retrieval.embed import _encode_raw


class Searcher:
    """An embedding directory opened for queries: its manifest, model, row metadata and FAISS indexes."""

    def __init__(self, out: str | os.PathLike, model=None):
        self.out = Path(out)
        self.manifest = store.read_manifest(self.out)
        recorded = self.manifest["model"]
        if model is None:
            if not recorded.get("name"):
                raise DataError(f"{out} was embedded with an in-memory model that has no catalog name; pass "
                                f"model= to search it.")
            model, _ = store.load_model(recorded["name"])
        model.eval()
        digest = store.model_hash(model)
        if digest != recorded["sha256"]:
            raise CheckpointError(
                f"{out} was embedded by model {recorded.get('name')!r} with weights sha256 {recorded['sha256'][:12]}…, "
                f"but the model given now has weights {digest[:12]}…: its embeddings would not be comparable. Search "
                f"with the model that made the index, or re-embed with this one (`zoo embed MODEL --out NEW_DIR`, "
                f"then `zoo index NEW_DIR`).")
        self.model = model
        self.meta = store.read_meta(self.out, self.manifest)
        self._indexes: dict[str, Any] = {}

    # -- what can be asked ----------------------------------------------------------------
    @property
    def fields(self) -> dict[str, dict]:
        return self.manifest["fields"]

    def query_modalities(self) -> list[str]:
        """The tower keys and modalities a query may name."""
        towers = {k: t.config.modality for k, t in self.model.towers.items()}
        return sorted(set(towers) | set(towers.values()))

    def tower(self, modality: str) -> str:
        """The model tower that encodes a query named by a tower key or a modality."""
        towers = {k: t.config.modality for k, t in self.model.towers.items()}
        if modality in towers:
            return modality
        same = [k for k, m in towers.items() if m == modality]
        if len(same) == 1:
            return same[0]
        if not same:
            raise UnknownNameError(
                "query modality", modality, self.query_modalities(),
                hint=f"The model of {self.out} encodes {', '.join(f'{m} (tower {k})' for k, m in towers.items())}; "
                     f"query with one of those, or search an index made by a model with a tower for {modality}.")
        raise DataError(f"modality {modality!r} is encoded by several towers {same}; name the tower instead.")

    def target_field(self, towers: list[str], field: str | None) -> str:
        if field is not None:
            if field not in self.fields:
                raise UnknownNameError("embedded field", field, self.fields,
                                       hint=f"{self.out} holds the fields {list(self.fields)}.")
            return field
        others = [f for f, spec in self.fields.items() if spec["tower"] not in towers]
        if others:
            return others[0]
        return next(f for f, spec in self.fields.items() if spec["tower"] in towers)

    def index_of(self, field: str):
        if field not in self._indexes:
            entry = self.manifest.get("indexes", {}).get(field)
            if entry is None:
                raise DataError(f"field {field!r} of {self.out} has no index yet; build it with `zoo index {self.out}`.")
            from zoo.retrieval.index import faiss
            fa = faiss()
            path = self.out / entry["file"]
            try:
                idx = fa.read_index(os.fspath(path))
            except RuntimeError as exc:
                raise DataError(f"the index {path} is missing or unreadable ({str(exc).splitlines()[0]}); rebuild "
                                f"it with `zoo index {self.out}`.") from exc
            if entry.get("params"):
                fa.ParameterSpace().set_index_parameters(idx, entry["params"])
            self._indexes[field] = idx
        return self._indexes[field]

    # -- queries ----------------------------------------------------------------------------
    def embed_queries(self, queries: Mapping[str, list[Any]]) -> tuple[list[str], np.ndarray]:
        """``{modality: [raw, …]}`` (equal lengths) → the towers used and the ``(q, D)`` query vectors
        (the elementwise product over modalities when there are several)."""
        if not queries:
            raise DataError("a search needs at least one query (modality and value).")
        lengths = {len(v) for v in queries.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise DataError(f"each query modality needs the same, non-zero number of queries; got "
                            f"{ {m: len(v) for m, v in queries.items()} }.")
        towers = [self.tower(m) for m in queries]
        if len(towers) > 1 and len(self.model.towers) < 3:
            raise DataError(f"a query of several modalities ({', '.join(queries)}) needs a model with three or more "
                            f"towers (Symile's multilinear inner product); this model has {list(self.model.towers)}. "
                            f"Query one modality at a time.")
        if len(set(towers)) != len(towers):
            raise DataError(f"two query modalities map to the same tower ({towers}); give each modality once.")
        vec = None
        for tower, raws in zip(towers, queries.values()):
            try:
                z = _encode_raw(self.model, tower, list(raws)).float().cpu().numpy()  # (q, D)
            except ZooError:
                raise
            except Exception as exc:  # noqa: BLE001 - a query the tower cannot read is the user's input
                raise DataError(f"cannot embed the {tower} query {list(raws)[:1]!r}…: {type(exc).__name__}: {exc}. "
                                f"Give a value the {tower} modality reads (see `zoo info {tower}`).") from exc
            vec = z if vec is None else vec * z
        return towers, np.ascontiguousarray(vec, dtype=np.float32)

    def search(self, queries: Mapping[str, list[Any]], k: int = 10, field: str | None = None) -> list[list[dict]]:
        """The ``k`` nearest items of ``field`` for each query: ``[[{rank, score, row, id, labels, pointer}…]…]``."""
        if k < 1:
            raise DataError(f"k must be ≥ 1, got {k}.")
        towers, q = self.embed_queries(queries)
        target = self.target_field(towers, field)
        if len(towers) > 1 and self.manifest.get("indexes", {}).get(target, {}).get("metric", "ip") != "ip":
            raise DataError("a multi-modality (Symile) query needs an inner-product index: `zoo index DIR --metric ip`.")
        scores, rows = self.index_of(target).search(q, min(k, self.manifest["count"]))
        return [[self.hit(target, rank, float(s), int(r)) for rank, (s, r) in enumerate(zip(ss, rr)) if r >= 0]
                for ss, rr in zip(scores, rows)]

    def hit(self, field: str, rank: int, score: float, row: int) -> dict[str, Any]:
        m = self.meta[row]
        labels = dict(m["labels"])
        names = self.manifest["dataset"].get("class_names")
        lf = self.manifest["dataset"].get("label_fields") or []
        if names and lf and lf[0] in labels and 0 <= labels[lf[0]] < len(names):
            labels[f"{lf[0]}_name"] = names[labels[lf[0]]]
        return {"rank": rank + 1, "score": score, "field": field, "row": row, "id": m["id"], "labels": labels,
                "pointer": m["pointer"]}


def search(out: str | os.PathLike, modality: str | Mapping[str, Any], query: Any = None, *, k: int = 10,
           field: str | None = None, model=None) -> list[dict]:
    """One query → its k nearest items. ``modality`` is a modality or tower name with ``query`` its raw value,
    or ``{modality: raw, …}`` for a multi-modality (Symile) query."""
    queries = {modality: [query]} if isinstance(modality, str) else {m: [v] for m, v in modality.items()}
    return Searcher(out, model=model).search(queries, k=k, field=field)[0]


def format_hits(query: str, hits: list[dict]) -> str:
    lines = [f"query: {query}", f"{'#':>3} {'score':>8}  {'id':<10} {'labels':<28} pointer"]
    for h in hits:
        labels = ", ".join(f"{k}={v}" for k, v in h["labels"].items())
        ptr = ", ".join(f"{k}={v}" for k, v in h["pointer"].items())
        lines.append(f"{h['rank']:>3} {h['score']:>8.4f}  {h['id']:<10} {labels:<28} {ptr}")
    return "\n".join(lines)
