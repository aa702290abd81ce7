"""Where a subscription may deliver: the URL's shape when it is created, and each address its host resolves to
when a delivery goes out (a name may resolve to an internal address: checked again at every delivery)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


class TargetRefused(ValueError):
    """The URL or address may not be delivered to; `code` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TargetPolicy:
    """`allow_private`: loopback, private, link-local and other non-global addresses (local use only);
    `allow_plain_http`: http:// URLs (the signed events would cross networks in clear)."""

    allow_private: bool = False
    allow_plain_http: bool = False


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # lower case; an IPv6 literal without brackets
    port: int


def parse_target(url: str, policy: TargetPolicy) -> Target:
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused("url_too_long", f"a URL has at most {MAX_URL_LENGTH} characters")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise TargetRefused("url_invalid", "a URL has no spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("url_invalid", f"not a URL: {exc}") from None
    if parts.scheme not in ("https", "http"):
        raise TargetRefused("url_scheme_not_allowed", "a URL starts with https://")
    if parts.scheme == "http" and not policy.allow_plain_http:
        raise TargetRefused("url_scheme_not_allowed", "deliveries go over https:// (plain http is off)")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("url_invalid", "credentials do not go in the URL: the signature authenticates us")
    if parts.fragment:
        raise TargetRefused("url_invalid", "a URL without a #fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise TargetRefused("url_invalid", "a URL names a host")
    _check_host(host, policy)
    return Target(url=url, scheme=parts.scheme, host=host, port=port or (443 if parts.scheme == "https" else 80))


def _check_host(host: str, policy: TargetPolicy) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        labels = host.rstrip(".").split(".")
        if not all(_HOST_LABEL.match(label) for label in labels):
            raise TargetRefused("url_invalid", f"{host!r} is not a host name") from None
        if not policy.allow_private and (host.rstrip(".") in _LOCAL_NAMES or labels[-1] == "localhost"):
            raise TargetRefused("address_not_allowed", "local addresses are not delivered to") from None
        return
    check_address(str(address), policy)


def check_address(address: str, policy: TargetPolicy) -> None:
    """TargetRefused unless `address` is a public (global unicast) one, or the policy allows private ones."""
    if policy.allow_private:
        return
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast:
        raise TargetRefused("address_not_allowed",
                            "loopback, private, link-local and reserved addresses are not delivered to")
