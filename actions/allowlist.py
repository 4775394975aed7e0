"""Keys that are never blocked: IPv4/IPv6 networks and exact keys per key type."""

from __future__ import annotations

import ipaddress

from actions.config import AllowlistConfig


def parse_network(key: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An IP key (``1.2.3.4``, ``2001:db8::/64``) as a network; ``None`` if the key is not an IP."""
    try:
        net = ipaddress.ip_network(key.strip(), strict=False)
    except ValueError:
        return None
    if isinstance(net, ipaddress.IPv6Network):
        mapped = net.network_address.ipv4_mapped
        if mapped is not None and net.prefixlen == 128:
            return ipaddress.ip_network(f"{mapped}/32")
    return net


class Allowlist:
    """``match(key_type, key)`` returns why a key is allowlisted, or ``None``.

    Networks match any key that parses as an address or prefix, whatever its key type: refusing to
    block is the safe direction. A prefix key (an IPv6 /64) *overlapping* an allowlisted network is
    refused too, because blocking the prefix would block the allowlisted address inside it.
    """

    def __init__(self, cfg: AllowlistConfig) -> None:
        self.v4 = [n for n in cfg.networks() if n.version == 4]
        self.v6 = [n for n in cfg.networks() if n.version == 6]
        self.keys = {kt: frozenset(keys) for kt, keys in cfg.keys.items()}
        self._networks: dict[str, str | None] = {}  # key -> network verdict, bounded

    def match(self, key_type: str, key: str) -> str | None:
        exact = self.keys.get(key_type)
        if exact is not None and key in exact:
            return "allowlisted_key"
        if not (self.v4 or self.v6):
            return None
        cache = self._networks
        if key in cache:
            return cache[key]
        verdict = None
        net = parse_network(key)
        if net is not None:
            nets = self.v4 if net.version == 4 else self.v6
            if any(net.overlaps(a) for a in nets):
                verdict = "allowlisted_cidr"
        if len(cache) >= 100_000:
            cache.clear()
        cache[key] = verdict
        return verdict
