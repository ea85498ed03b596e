"""WireGuard key pairs: X25519, each key as WireGuard writes it (base64 of its 32 raw bytes)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class WireGuardKeys:
    private: str
    public: str

    def __repr__(self) -> str:  # never the private key, in a log or a traceback
        return f"WireGuardKeys(public={self.public!r})"

    @classmethod
    def generate(cls) -> WireGuardKeys:
        key = x25519.X25519PrivateKey.generate()
        raw = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return cls(_b64(raw), _b64(key.public_key().public_bytes(*_RAW)))


def public_key_of(private: str) -> str:
    """The public key of a base64 private key (``wg pubkey``)."""
    raw = base64.b64decode(private, validate=True)
    return _b64(x25519.X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes(*_RAW))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
