"""Live threshold tuning: the config is re-read when it changes and swapped in if it is valid.

A source is a local file, ``s3://bucket/key`` or ``ssm:/parameter/name``. ``ConfigWatcher.poll()``
is cheap to call on every batch: it looks at the source at most every ``poll_s`` seconds (or at the
next call after ``request()``, which the processor's SIGHUP handler calls), compares a fingerprint
(file size and mtime, the S3 ETag, the SSM parameter version), and only then reads and validates.
A new config that does not validate, or that changes what cannot change in a running process (the
``kcl`` section: stream, application, endpoints), is refused: the old one stays and one log line
names the reason. Nothing of a refused config is used.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from consumer.config import Config, ConfigError, config_from_data, parse_yaml, read_yaml

log = logging.getLogger(__name__)


class ConfigWatcher:
    def __init__(
        self,
        source: str,
        current: Config,
        *,
        poll_s: float = 10.0,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        client_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.source = source
        self.current = current
        self.poll_s = poll_s
        self.environ = dict(os.environ if environ is None else environ)
        self.clock = clock
        self._client_factory = client_factory or _default_client
        self._forced = False
        self._next = clock() + poll_s
        self._seen = self._fingerprint()
        self.reloads = 0
        self.refused = 0

    def request(self) -> None:
        """Check at the next poll, whatever the interval (SIGHUP)."""
        self._forced = True

    def poll(self) -> Config | None:
        """A new valid config when the source changed since the last one; else None."""
        now = self.clock()
        if not self._forced and now < self._next:
            return None
        self._forced, self._next = False, now + self.poll_s
        try:
            seen = self._fingerprint()
        except Exception as exc:  # a source that can't be reached now: keep running, try again later
            log.warning(
                "config source %s: cannot check for changes (%s); keeping the current config",
                self.source,
                exc,
            )
            return None
        if seen == self._seen:
            return None
        previous, self._seen = self._seen, seen
        try:
            new = self._load()
        except ConfigError as exc:
            self.refused += 1
            log.error("new config from %s refused, the current one stays: %s", self.source, exc)
            return None
        except ConfigSourceError as exc:  # S3/SSM unreachable between the check and the read: retry
            self._seen = previous
            log.warning("config source %s: cannot read the new version (%s); will retry", self.source, exc)
            return None
        fixed = [name for name in ("kcl", "topology") if getattr(new, name) != getattr(self.current, name)]
        if fixed:
            self.refused += 1
            log.error(
                "new config from %s refused, the current one stays: the %s section changed "
                "(stream, application, endpoints and the topology need a restart)",
                self.source,
                " and ".join(fixed),
            )
            return None
        if new == self.current:
            return None
        self.current = new
        self.reloads += 1
        log.info("new config from %s validated and applied (reload %d)", self.source, self.reloads)
        return new

    # -- sources ---------------------------------------------------------------------------------

    def _fingerprint(self) -> str:
        if self.source.startswith("s3://"):
            bucket, _, key = self.source[5:].partition("/")
            return str(self._client_factory("s3").head_object(Bucket=bucket, Key=key)["ETag"])
        if self.source.startswith("ssm:"):
            name = self.source[4:]
            param = self._client_factory("ssm").get_parameter(Name=name)["Parameter"]
            return str(param["Version"])
        st = Path(self.source).stat()
        return f"{st.st_size}:{st.st_mtime_ns}"

    def _load(self) -> Config:
        return load_from(self.source, self.environ, self._client_factory)


def is_remote(source: str) -> bool:
    return source.startswith(("s3://", "ssm:"))


def load_from(
    source: str,
    environ: Mapping[str, str] | None = None,
    client_factory: Callable[[str], Any] | None = None,
) -> Config:
    """The validated config of a file, ``s3://bucket/key`` or ``ssm:/name`` (plus env overrides)."""
    factory = client_factory or _default_client
    try:
        if source.startswith("s3://"):
            bucket, _, key = source[5:].partition("/")
            body = factory("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
            data = parse_yaml(_text(body, source), source)
        elif source.startswith("ssm:"):
            param = factory("ssm").get_parameter(Name=source[4:], WithDecryption=True)
            data = parse_yaml(param["Parameter"]["Value"], source)
        else:
            data = read_yaml(source)
    except ConfigError:
        raise
    except Exception as exc:
        if not is_remote(source):
            raise
        raise ConfigSourceError(f"cannot read the config from {source}: {exc}") from None
    return config_from_data(data, source, environ)


class ConfigSourceError(Exception):
    """The config source could not be read (network, permissions): not a verdict on the config."""


def _text(body: bytes, origin: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{origin}: not UTF-8 text ({exc})") from None


def _default_client(service: str) -> Any:
    import boto3

    return boto3.client(service)
