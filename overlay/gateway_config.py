"""A gateway's WireGuard configuration (the INI that ``wg setconf`` reads), as text.

It holds the gateway's private key: it is written to the gateway over SSH's standard input and
never logged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from resilin.overlay.plan import WIREGUARD_PORT, Peer


def render(private_key: str, peers: Sequence[Peer], public_keys: Mapping[str, str]) -> str:
    """The configuration of a gateway with ``peers``, given each peer cloud's gateway public key."""
    lines = ["[Interface]", f"PrivateKey = {private_key}", f"ListenPort = {WIREGUARD_PORT}"]
    for peer in peers:
        lines += [
            "",
            "[Peer]",
            f"PublicKey = {public_keys[peer.cloud]}",
            f"AllowedIPs = {','.join(peer.allowed_ips)}",
        ]
        if peer.endpoint:
            lines.append(f"Endpoint = {peer.endpoint}")
        if peer.keepalive:
            lines.append(f"PersistentKeepalive = {peer.keepalive}")
    return "\n".join(lines) + "\n"
