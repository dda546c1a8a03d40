"""The check on URLs the service is asked to connect to (webhooks, network streams): a token holder must not be
able to make the service reach loopback, link-local or private addresses (its own host, cloud metadata, the
internal network) unless the operator allows it (``voxwatch serve --allow-private-urls``)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from .errors import Forbidden, UsageError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def internal(address: Address) -> bool:
    """Whether ``address`` is loopback, link-local, private or unspecified (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_link_local or address.is_private or address.is_unspecified


def resolve(host: str, port: int | None) -> list[Address]:
    """Every address ``host`` resolves to (an IP literal is itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"cannot resolve host {host!r} ({exc}); check the URL") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def require_public(url: str, what: str) -> None:
    """Raise :class:`Forbidden` when ``url``'s host is missing or resolves to any internal address."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise UsageError(f"{what} {url!r}: {exc}") from exc
    if not host:
        raise Forbidden(f"{what} {url!r} names no host; the service connects only to named public hosts")
    for address in resolve(host, port):
        if internal(address):
            raise Forbidden(
                f"{what} {url!r}: {host} is an internal address ({address}: loopback, link-local or private);"
                " start the service with --allow-private-urls to allow it"
            )
