"""Failing in seconds, not minutes, when the Hugging Face Hub cannot be reached.

Without a network huggingface_hub retries each request for tens of seconds before it gives up.
:func:`hub_offline` answers "can the Hub be reached?" once per process: ``HF_HUB_OFFLINE=1``
says no, else a TCP connection to the Hub endpoint is tried with a short timeout (DNS included).
While a load runs under :func:`offline_while_unreachable`, huggingface_hub (and transformers and
open_clip through it) is put in offline mode, so a name that is not in the cache fails at once.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 2.0
_probe: dict[str, bool] = {}


def _reachable(host: str, port: int, timeout: float) -> bool:
    result: list[bool] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)
    t = threading.Thread(target=attempt, daemon=True)  # getaddrinfo ignores socket timeouts: bound it here
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def hub_offline(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when ``HF_HUB_OFFLINE`` is set or the Hub endpoint does not answer within ``timeout`` s."""
    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE:
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    key = url.netloc
    if key not in _probe:
        _probe[key] = not _reachable(url.hostname or "huggingface.co", url.port or 443, timeout)
    return _probe[key]


@contextlib.contextmanager
def offline_while_unreachable() -> Iterator[bool]:
    """Offline mode for huggingface_hub while the block runs, if the Hub cannot be reached; yields that."""
    offline = hub_offline()
    if not offline:
        yield False
        return
    from huggingface_hub import constants
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield True
    finally:
        constants.HF_HUB_OFFLINE = before


def offline_hint(name: str) -> str:
    from huggingface_hub.constants import HF_HUB_CACHE
    prefix = name.partition(":")[0]
    return (f"The Hugging Face Hub cannot be reached (no network, or HF_HUB_OFFLINE=1), so {name!r} can only come "
            f"from the cache ({HF_HUB_CACHE}) or a local folder. Load it from a folder instead: where there is a "
            f"network run `hf download <repo> --local-dir DIR`, copy DIR here and load '{prefix}:DIR' "
            f"(st:, hf: and open_clip: take a directory; a zoo checkpoint is 'local-dir:DIR').")
