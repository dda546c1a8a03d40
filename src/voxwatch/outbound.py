"""URLs voxwatch connects to (webhooks, network streams): the check that a token holder cannot make the service reach
loopback, link-local or private addresses (its own host, cloud metadata, the internal network) unless the operator
allows it (``voxwatch serve --allow-private-urls``), and the form of a URL that may be shown: without its secrets."""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit, urlunsplit

from .errors import Forbidden, UsageError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
SECRET_PARAMETER = re.compile(r"pass|pwd|token|key|secret|auth|sig|cred", re.IGNORECASE)  # query names hidden by redact_url


def redact_url(url: str) -> str:
    """``url`` as it may be shown, logged and stored with alerts: the password of its user (``rtsp://user:***@host``)
    and the values of query parameters named like secrets (``?token=***``) replaced; otherwise unchanged."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:***@{host}"
    pieces = []
    for piece in parts.query.split("&") if parts.query else []:
        name, equals, value = piece.partition("=")
        pieces.append(f"{name}=***" if equals and value and SECRET_PARAMETER.search(name) else piece)
    query = "&".join(pieces)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


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
        raise UsageError(f"{what} {redact_url(url)!r}: {exc}") from exc
    if not host:
        raise Forbidden(f"{what} {redact_url(url)!r} names no host; the service connects only to named public hosts")
    for address in resolve(host, port):
        if internal(address):
            raise Forbidden(
                f"{what} {redact_url(url)!r}: {host} is an internal address ({address}: loopback, link-local or private);"
                " start the service with --allow-private-urls to allow it"
            )
