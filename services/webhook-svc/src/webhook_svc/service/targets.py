"""Where webhooks may be sent: SSRF protection.

A target URL is http(s) with a host name or address. Every address the host resolves to must be
public (not loopback, private, link-local, carrier-grade NAT, multicast, reserved, unspecified, nor a
cloud metadata address), unless it lies in the operator's allowed networks
(`CRM_WEBHOOK_ALLOWED_NETWORKS`). The check runs when a subscription is saved and again on every
connection (the sender connects only to the addresses it checked), so a name that later
resolves somewhere else (DNS rebinding) is refused at delivery time too.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from crm_common.errors import FieldError

from webhook_svc.service.errors import InvalidWebhookUrl, WebhookTargetForbidden

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Instance metadata endpoints: refused even when an allowed network contains them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "192.0.0.192")
)


class TargetForbidden(Exception):
    """The target is not a place webhooks may go; the message says why."""


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _address(value: str) -> IPAddress:
    address = ipaddress.ip_address(value.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass
class Guard:
    allowed_networks: Sequence[IPNetwork] = ()
    # Replaceable in tests (a name that resolves where the test wants it).
    resolve: Resolver = field(default=system_resolve)

    def why_refused(self, address: IPAddress) -> str | None:
        if address in METADATA_ADDRESSES:
            return "a cloud metadata address"
        if any(address in network for network in self.allowed_networks):
            return None
        if address.is_loopback:
            return "a loopback address"
        if address.is_link_local:
            return "a link-local address"
        if address.is_multicast:
            return "a multicast address"
        if address.is_private:
            return "a private address"
        if not address.is_global:
            return "not a public address"
        return None

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses of `host` to connect to, all checked; TargetForbidden if any is refused
        (a name that resolves to one public and one private address is refused whole)."""
        try:
            literal = _address(host.strip("[]"))
            resolved = [str(literal)]
        except ValueError:
            try:
                resolved = await self.resolve(host, port)
            except OSError as exc:
                raise TargetForbidden(f"{host} does not resolve ({exc})") from None
        if not resolved:
            raise TargetForbidden(f"{host} does not resolve")
        for raw in resolved:
            address = _address(raw)
            reason = self.why_refused(address)
            if reason is not None:
                shown = host if host == raw else f"{host} ({address})"
                raise TargetForbidden(f"{shown} is {reason}")
        return resolved


def split_target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a target URL; ValueError with a reason when it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with https:// or http://")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL are not allowed; authenticate by the signature")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError("the port is not valid") from None
    return parts.scheme, parts.hostname, port


async def check_target(guard: Guard, url: str, *, field: str = "url") -> str:
    """The URL if webhooks may go there now; else a 422 problem naming the rule."""
    try:
        _, host, port = split_target(url)
    except ValueError as exc:
        raise InvalidWebhookUrl(
            f"{url} is not a webhook target: {exc}.",
            errors=[FieldError(field=field, message=str(exc), code="invalid_url")],
        ) from None
    try:
        await guard.addresses(host, port)
    except TargetForbidden as exc:
        raise forbidden(str(exc), field=field) from None
    return url


def forbidden(reason: str, *, field: str = "url") -> WebhookTargetForbidden:
    return WebhookTargetForbidden(
        f"Webhooks are not sent there: {reason}. Only public addresses are allowed, unless the operator "
        "lists the network in CRM_WEBHOOK_ALLOWED_NETWORKS.",
        errors=[FieldError(field=field, message=reason, code="target_forbidden")],
    )
