"""Client addresses: public-looking IPv4 and IPv6 (with per-device interface ids inside a /64)."""

from __future__ import annotations

import ipaddress
import socket

import numpy as np

from consumer.traffic.vocab import Region


def ipv4(rng: np.random.Generator, first_octets: tuple[int, ...], n: int) -> list[str]:
    """``n`` addresses whose first octet is one of ``first_octets`` (none in private/reserved space)."""
    a = rng.choice(np.asarray(first_octets), n)
    bcd = rng.integers(0, 256, (n, 3))
    bcd[:, 2] = np.clip(bcd[:, 2], 1, 254)
    return [f"{w}.{x}.{y}.{z}" for w, (x, y, z) in zip(a.tolist(), bcd.tolist(), strict=True)]


def ipv6_prefixes(rng: np.random.Generator, allocations: tuple[int, ...], n: int) -> np.ndarray:
    """``n`` /64 networks (as their upper 64 bits) inside the ISPs' /32 allocations."""
    top = rng.choice(np.asarray(allocations, dtype=np.uint64), n)
    low = rng.integers(0, 2**32, n, dtype=np.uint64)
    return (top << np.uint64(32)) | low


def ipv6(prefix64: int, iid: int) -> str:
    """Canonical text of the address ``prefix64::iid`` (compressed, lower case, as CloudFront logs it)."""
    # inet_ntop gives the same RFC 5952 text as ipaddress, ~10x faster.
    return socket.inet_ntop(socket.AF_INET6, ((int(prefix64) << 64) | int(iid)).to_bytes(16, "big"))


def region_addresses(
    rng: np.random.Generator, region: Region, n: int, v6: np.ndarray
) -> tuple[list[str], list[int]]:
    """One address per client (IPv6 where ``v6``), and for IPv6 the /64 upper bits (else 0)."""
    out = ipv4(rng, region.v4_first_octets, n)
    prefixes = ipv6_prefixes(rng, region.v6_prefixes, n)
    iids = rng.integers(1, 2**63, n, dtype=np.int64)
    upper = [0] * n
    for i in np.flatnonzero(v6).tolist():
        out[i] = ipv6(int(prefixes[i]), int(iids[i]))
        upper[i] = int(prefixes[i])
    return out, upper


def hosting_ipv4(rng: np.random.Generator, n: int) -> list[str]:
    """Addresses in data-centre space (bots, proxies, monitors)."""
    return ipv4(rng, (3, 13, 18, 34, 35, 45, 52, 54, 64, 104, 138, 139, 159, 167, 185, 188, 193, 195), n)


def ip_key(text: str, ipv6_prefix: int = 64) -> str:
    """The key the default ``ip`` key type gives an address: IPv4 as is, IPv6 as ``<network>/64``.

    Same rule as ``consumer.keys.normalise_ip`` (kept here so labels need no parser import).
    """
    addr = ipaddress.ip_address(text.strip())
    if addr.version == 6:
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        net = ipaddress.IPv6Network((int(addr), ipv6_prefix), strict=False)
        return f"{net.network_address}/{ipv6_prefix}"
    return str(addr)
