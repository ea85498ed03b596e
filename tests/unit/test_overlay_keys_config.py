"""WireGuard keys (real X25519) and the gateways' configurations."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from resilin.overlay.gateway_config import render
from resilin.overlay.keys import WireGuardKeys, public_key_of
from resilin.overlay.plan import Member, Permission, choose_gateways, plan_overlay
from resilin.overlay.state import Address, OverlayState, RecordedPermission, RecordedRoute


def test_a_key_pair_is_x25519_in_wireguards_base64():
    keys = WireGuardKeys.generate()
    private, public = base64.b64decode(keys.private), base64.b64decode(keys.public)
    assert len(private) == len(public) == 32
    derived = x25519.X25519PrivateKey.from_private_bytes(private).public_key()
    assert derived.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == public
    assert public_key_of(keys.private) == keys.public
    assert WireGuardKeys.generate().private != keys.private


def test_the_two_sides_of_a_pair_agree_on_a_shared_secret():
    a, b = WireGuardKeys.generate(), WireGuardKeys.generate()

    def secret(private: str, public: str) -> bytes:
        key = x25519.X25519PrivateKey.from_private_bytes(base64.b64decode(private))
        return key.exchange(x25519.X25519PublicKey.from_public_bytes(base64.b64decode(public)))

    assert secret(a.private, b.public) == secret(b.private, a.public)


def test_the_private_key_never_shows_in_a_repr():
    keys = WireGuardKeys.generate()
    assert keys.private not in repr(keys) and keys.public in repr(keys)


def parse(text: str) -> list[tuple[str, dict[str, str]]]:
    """WireGuard's INI as ``wg setconf`` reads it: sections in order, repeated [Peer]s kept apart."""
    sections: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            sections.append((line.strip("[]"), {}))
            continue
        key, _, value = line.partition("=")
        assert key.strip() not in sections[-1][1], f"{key} twice in a section"
        sections[-1][1][key.strip()] = value.strip()
    return sections


def test_a_hubs_configuration_lists_every_peer_with_its_key_and_addresses():
    members = [
        Member("i-m", "east", "MASTER", "10.1.0.10"),
        Member("i-w", "west", "CORE", "10.2.0.20"),
        Member("i-w2", "west", "CORE", "10.2.0.21"),
        Member("i-n", "north", "CORE", "10.3.0.30"),
    ]
    gateways = choose_gateways(members, {})
    public = {"east": "198.51.100.1", "west": "203.0.113.2"}
    gateways = {
        c: Member(g.instance_id, g.cloud, g.role, g.private_ip, public.get(c, ""))
        for c, g in gateways.items()
    }
    plan = plan_overlay(members, gateways)
    keys = {cloud: WireGuardKeys.generate() for cloud in gateways}
    text = render(keys["east"].private, plan.peers["east"], {c: k.public for c, k in keys.items()})
    [(interface, head), *peers] = parse(text)
    assert interface == "Interface"
    assert head == {"PrivateKey": keys["east"].private, "ListenPort": "51820"}
    assert [name for name, _ in peers] == ["Peer", "Peer"]
    by_key = {fields["PublicKey"]: fields for _, fields in peers}
    assert by_key[keys["west"].public] == {
        "PublicKey": keys["west"].public,
        "AllowedIPs": "10.2.0.20/32,10.2.0.21/32",
        "Endpoint": "203.0.113.2:51820",
    }
    assert by_key[keys["north"].public] == {"PublicKey": keys["north"].public, "AllowedIPs": "10.3.0.30/32"}
    spoke = parse(render(keys["north"].private, plan.peers["north"], {c: k.public for c, k in keys.items()}))
    assert [fields.get("PersistentKeepalive") for _, fields in spoke[1:]] == ["25", "25"]
    assert keys["north"].private not in render(
        keys["east"].private, plan.peers["east"], {c: k.public for c, k in keys.items()}
    )


def test_the_state_round_trips_and_hides_its_keys_in_a_repr():
    keys = WireGuardKeys.generate()
    state = OverlayState(
        keys={"i-1": keys},
        gateways={"east": "i-1"},
        addresses=[Address("east", "eipalloc-1", "198.51.100.1", "i-1", "eipassoc-1")],
        routes=[RecordedRoute("west", "rtb-1", "10.1.0.10/32", "i-2")],
        permissions=[RecordedPermission("west", "sg-1", Permission("udp", 51820, "198.51.100.1/32", "g"))],
        configs={"i-1": "abc"},
    )
    assert OverlayState.from_json(state.to_json()) == state
    assert keys.private not in repr(state)
    assert OverlayState().empty and not state.empty
