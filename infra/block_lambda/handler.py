"""Lambda entry point: validate the event, then block, unblock or expire.

Responses are JSON objects: ``{"ok": true, ...}`` or ``{"ok": false, "error": ..., "retryable": bool}``.
A bad event is answered with ``ok: false, retryable: false`` before anything is written. A failure
after the DynamoDB write (WAF unavailable) answers ``retryable: true``: the retry comes back with the
same idempotency key, finds the block applied and completes the WAF part.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from actions.payload import EVENT, BlockPayload, ExpirePayload, UnblockPayload

from .settings import Settings
from .store import Blocklist, Duplicate, block_pk, plain
from .waf import IPSetFull, IPSets, to_cidr

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)


def _error(message: str, *, retryable: bool, status: int) -> dict[str, Any]:
    return {"ok": False, "status": status, "error": message, "retryable": retryable}


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc or '(event)'}: {err['msg']}")
    return "invalid event: " + "; ".join(parts)


class BlockService:
    def __init__(
        self, settings: Settings, *, dynamodb: Any, wafv2: Any, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.store = Blocklist(dynamodb, settings.table_name)
        self.waf = IPSets(
            wafv2,
            settings.ipv4_set,
            settings.ipv6_set,
            limit=settings.waf_max_addresses,
            lock_retries=settings.waf_lock_retries,
        )
        self.clock = clock

    def handle(self, event: Any) -> dict[str, Any]:
        try:
            ev = EVENT.validate_python(event)
        except ValidationError as exc:
            return _error(_validation_message(exc), retryable=False, status=400)
        try:
            if isinstance(ev, BlockPayload):
                return self.block(ev)
            if isinstance(ev, UnblockPayload):
                return self.unblock(ev)
            assert isinstance(ev, ExpirePayload)
            return self.expire()
        except (ClientError, BotoCoreError) as exc:
            log.exception("AWS call failed")
            return _error(f"{type(exc).__name__}: {exc}", retryable=True, status=503)

    def _cidr(self, key_type: str, key: str) -> tuple[str | None, str | None]:
        """(cidr, error): IP key types must hold an address or prefix."""
        if key_type not in self.settings.ip_key_types:
            return None, None
        cidr = to_cidr(key)
        if cidr is None:
            return None, f"key type {key_type!r} is an IP key type but the key is not an IP address or prefix"
        return cidr, None

    def block(self, p: BlockPayload) -> dict[str, Any]:
        cidr, err = self._cidr(p.key_type, p.key)
        if err:
            return _error(f"invalid event: {err}", retryable=False, status=400)
        now = int(self.clock())
        pk = block_pk(p.key_type, p.key)
        try:
            status, item = self.store.apply_block(
                p, now=now, cidr=cidr, idem_ttl_s=self.settings.idempotency_ttl_s
            )
        except Duplicate:
            status, item = "duplicate", self.store.get(pk) or {}
        current = plain(item) if item else {}
        result: dict[str, Any] = {
            "ok": True,
            "status": status,
            "idempotency_key": p.idempotency_key,
            "expires_at": current.get("expires_at"),
        }
        active = current.get("status") == "active" and int(current.get("expires_at", 0)) > now
        if cidr and active:
            try:
                waf = self.waf.add(cidr)
            except IPSetFull as full:
                log.error("%s: block of %s recorded in DynamoDB only", full, p.idempotency_key)
                waf = "full"
                result["warning"] = str(full)
            if current.get("waf_status") != waf and not (
                waf == "present" and current.get("waf_status") == "added"
            ):
                self.store.set_waf_status(pk, "added" if waf == "present" else waf)
            result["waf"] = waf
        log.info("block %s: %s (waf %s)", p.idempotency_key, status, result.get("waf", "n/a"))
        return result

    def unblock(self, u: UnblockPayload) -> dict[str, Any]:
        _, err = self._cidr(u.key_type, u.key)
        if err:
            return _error(f"invalid event: {err}", retryable=False, status=400)
        now = int(self.clock())
        old = self.store.end_block(block_pk(u.key_type, u.key), now=now, status="unblocked", reason=u.reason)
        if old is None:
            return {"ok": True, "status": "not_found"}
        removed = self._remove_from_waf([plain(old)], now)
        log.info("unblocked a %s key (requested by %s): %s", u.key_type, u.requested_by, u.reason)
        return {"ok": True, "status": "unblocked", "waf_removed": removed}

    def expire(self) -> dict[str, Any]:
        """End every block whose time is up; remove their WAF entries (TTL deletion is too slow)."""
        now = int(self.clock())
        ended = []
        for item in self.store.blocks():
            b = plain(item)
            if b.get("status") == "active" and int(b["expires_at"]) <= now:
                self.store.end_block(b["pk"], now=now, status="expired", reason="block time over")
                ended.append(b)
        removed = self._remove_from_waf(ended, now)
        return {"ok": True, "status": "expired", "expired": len(ended), "waf_removed": removed}

    def _remove_from_waf(self, ended: list[dict[str, Any]], now: int) -> int:
        cidrs = {
            b["waf_cidr"] for b in ended if b.get("waf_cidr") and b.get("waf_status") in ("added", "pending")
        }
        if not cidrs:
            return 0
        # An address another active block (another key type, same IP) still needs stays in the set.
        still = {
            b.get("waf_cidr")
            for b in map(plain, self.store.blocks())
            if b.get("status") == "active" and int(b.get("expires_at", 0)) > now
        }
        removed = self.waf.remove(cidrs - still)
        for b in ended:
            if b.get("waf_cidr") in cidrs - still:
                self.store.set_waf_status(b["pk"], "removed")
        return removed


_service: BlockService | None = None


def _default_service() -> BlockService:
    global _service
    if _service is None:
        _service = BlockService(
            Settings.from_env(), dynamodb=boto3.client("dynamodb"), wafv2=boto3.client("wafv2")
        )
    return _service


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The Lambda handler (``block_lambda.handler.handler``)."""
    try:
        service = _default_service()
    except ValueError as exc:  # a deployment error: say so on every call
        return _error(f"function misconfigured: {exc}", retryable=True, status=500)
    return service.handle(event)
