"""Keyed pseudonyms for keys in alerts and logs (never in the block payload: the Lambda needs the key)."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from actions.config import AlertConfig


class Pseudonymiser:
    """``show(key)`` is what alerts print; ``log(key)`` what log messages print.

    With ``pseudonymise`` on, both print ``hmac:<16 hex>`` (HMAC-SHA256 under a secret from the
    environment, so the same key always maps to the same pseudonym and an operator holding the secret
    can check a suspect). Without it, alerts print the key and logs print ``<key>`` unless
    ``log_keys`` allows the clear value: logs end up in places alert files do not.
    """

    def __init__(self, cfg: AlertConfig, environ: Mapping[str, str] | None = None) -> None:
        self.enabled = cfg.pseudonymise
        self.log_keys = cfg.log_keys
        self._secret: bytes | None = None
        if self.enabled:
            env = os.environ if environ is None else environ
            secret = env.get(cfg.hmac_key_env, "")
            if len(secret) < 16:
                raise ValueError(
                    f"actions.alert.pseudonymise is on but environment variable {cfg.hmac_key_env} "
                    "does not hold a secret of at least 16 characters"
                )
            self._secret = secret.encode("utf-8")

    def pseudonym(self, key: str) -> str:
        assert self._secret is not None
        return "hmac:" + hmac.new(self._secret, key.encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    def show(self, key: str) -> str:
        return self.pseudonym(key) if self.enabled else key

    def log(self, key: str) -> str:
        if self.enabled:
            return self.pseudonym(key)
        return printable(key) if self.log_keys else "<key>"


def printable(text: str) -> str:
    """``text`` with control and format characters escaped: a key from a query argument or cookie can
    hold CR/LF, ANSI escapes or bidi overrides, and must not forge or disguise a log line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
