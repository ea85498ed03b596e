"""Imported key pairs: check the public key material and fingerprint it as EC2 does."""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from resilin.provisioners.localcloud.errors import EC2Error


def parse_public_key(material: bytes) -> tuple[str, str, str]:
    """(OpenSSH one-line key, key type, fingerprint) for imported material, or InvalidKey.Format."""
    text = material.decode("ascii", "replace").strip()
    try:
        key = serialization.load_ssh_public_key(text.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise EC2Error("InvalidKey.Format", "Key is not in valid OpenSSH public key format") from None
    if isinstance(key, rsa.RSAPublicKey):
        # EC2 fingerprints imported RSA keys as the MD5 of the DER public key.
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        digest = hashlib.md5(der).hexdigest()
        return text, "rsa", ":".join(digest[i : i + 2] for i in range(0, 32, 2))
    if isinstance(key, ed25519.Ed25519PublicKey):
        blob = base64.b64decode(text.split()[1])
        return text, "ed25519", base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    raise EC2Error("InvalidKey.Format", "Only RSA and ED25519 public keys are supported")
