"""WAFv2 IP set updates under optimistic locking, within the IP-set size limit."""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError

from .settings import IPSetRef

log = logging.getLogger(__name__)


def to_cidr(key: str) -> str | None:
    """The WAF form of an IP key: ``1.2.3.4/32``, ``2001:db8::/64``; ``None`` if not an address."""
    try:
        net = ipaddress.ip_network(key.strip(), strict=False)
    except ValueError:
        return None
    if net.version == 6 and net.prefixlen == 128 and net.network_address.ipv4_mapped is not None:
        net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/32")
    return str(net)


class IPSetFull(Exception):
    """The IP set holds ``limit`` addresses already."""


class IPSets:
    def __init__(
        self,
        client: Any,
        v4: IPSetRef | None,
        v6: IPSetRef | None,
        *,
        limit: int,
        lock_retries: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.sets = {4: v4, 6: v6}
        self.limit = limit
        self.lock_retries = lock_retries
        self.sleep = sleep
        self.lock_conflicts = 0

    def ref_for(self, cidr: str) -> IPSetRef | None:
        return self.sets[ipaddress.ip_network(cidr).version]

    def add(self, cidr: str) -> str:
        """``added`` or ``present``; raises IPSetFull, or ClientError on other failures."""
        ref = self.ref_for(cidr)
        if ref is None:
            return "no_ip_set"

        def change(addresses: list[str]) -> list[str] | None:
            if cidr in addresses:
                return None
            if len(addresses) >= self.limit:
                raise IPSetFull(f"WAF IP set {ref.name} is full ({len(addresses)} of {self.limit} addresses)")
            return [*addresses, cidr]

        return "added" if self._update(ref, change) else "present"

    def remove(self, cidrs: Iterable[str]) -> int:
        """Remove addresses (grouped per set); returns how many were present."""
        removed = 0
        by_version: dict[int, set[str]] = {}
        for c in cidrs:
            by_version.setdefault(ipaddress.ip_network(c).version, set()).add(c)
        for version, group in by_version.items():
            ref = self.sets[version]
            if ref is None:
                continue
            hit: list[int] = [0]

            def change(
                addresses: list[str], group: set[str] = group, hit: list[int] = hit
            ) -> list[str] | None:
                keep = [a for a in addresses if a not in group]
                hit[0] = len(addresses) - len(keep)
                return keep if hit[0] else None

            self._update(ref, change)
            removed += hit[0]
        return removed

    def _update(self, ref: IPSetRef, change: Callable[[list[str]], list[str] | None]) -> bool:
        """Read-modify-write with a fresh LockToken on each WAFOptimisticLockException."""
        for attempt in range(self.lock_retries + 1):
            got = self.client.get_ip_set(Name=ref.name, Scope=ref.scope, Id=ref.id)
            new = change(list(got["IPSet"]["Addresses"]))
            if new is None:
                return False
            try:
                self.client.update_ip_set(
                    Name=ref.name, Scope=ref.scope, Id=ref.id, Addresses=new, LockToken=got["LockToken"]
                )
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "WAFOptimisticLockException":
                    raise
                self.lock_conflicts += 1
                if attempt == self.lock_retries:
                    raise
                log.info("WAF IP set %s changed under us (attempt %d); retrying", ref.name, attempt + 1)
                self.sleep(min(1.0, 0.05 * 2**attempt) * random.random())
        raise AssertionError("unreachable")
