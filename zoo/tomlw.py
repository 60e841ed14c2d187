"""A small TOML writer for the values recipes hold (tables, arrays of tables, scalars, arrays)."""
from __future__ import annotations

import json
import math
import re
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def dumps(data: dict[str, Any], _prefix: str = "") -> str:
    """Serialise nested dicts to TOML (``None`` values are left out, as TOML has no null)."""
    lines, tables = [], []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, dict) or _is_table_array(v):
            tables.append((k, v))
        else:
            lines.append(f"{_key(k)} = {_value(v)}")
    out = "\n".join(lines)
    for k, v in tables:
        path = f"{_prefix}{_key(k)}"
        if isinstance(v, dict):
            body = dumps(v, path + ".")
            out += f"\n\n[{path}]\n{body}" if any(not isinstance(x, dict) for x in v.values()) or not v else f"\n{body}"
        else:
            for item in v:
                out += f"\n\n[[{path}]]\n{dumps(item, path + '.')}"
    return out.strip() + ("\n" if not _prefix else "")
