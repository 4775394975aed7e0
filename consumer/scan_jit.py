"""How the parser's kernels are compiled: numba ``njit`` with an on-disk cache that always has a place.

``cache=True`` keeps the compiled code (~5 s to build cold) next to the module (``__pycache__``) or
in the user's cache directory. In a container whose package directory is read-only and whose home
has no cache directory, numba finds no place and refuses to even define the function; the cache then
goes to a per-user directory under the temporary directory instead (``NUMBA_CACHE_DIR`` set in the
environment, as infra/Dockerfile does, takes precedence over all of these).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numba
from numba import njit

log = logging.getLogger(__name__)


def fallback_cache_dir() -> str:
    return os.path.join(tempfile.gettempdir(), f"cfguard-numba-{os.getuid()}")


def kernel(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``njit(cache=True, nogil=True, **options)``, with a cache directory that works."""

    def wrap(fn: Callable[..., Any]) -> Any:
        try:
            return njit(cache=True, nogil=True, **options)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            numba.config.CACHE_DIR = fallback_cache_dir()
            log.info("numba cache: no writable cache location, using %s", numba.config.CACHE_DIR)
            return njit(cache=True, nogil=True, **options)(fn)

    return wrap
