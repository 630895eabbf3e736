"""SSH keys as paramiko needs them: a configured host key to verify the guest against, a private key to log in
with, and how a key is shown to people (`ssh-keygen -lf`'s form). Messages never contain a private key or its
passphrase. The host key's text forms are parsed, without paramiko, in hooks/host_keys.py (the config uses that)."""

from __future__ import annotations

import io

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from hooks import host_keys


def parse_host_key(text: str) -> paramiko.PKey:
    """Parse an SSH host public key (see hooks/host_keys.py for the forms) into a paramiko key.

    Raises ValueError with a readable message."""
    key = host_keys.parse_host_key(text)
    try:
        return paramiko.PKey.from_type_string(key.key_type, key.data)
    except Exception:
        shown = _shorten(text.strip())
        raise ValueError(f"the SSH host key {shown!r} is not a valid {key.key_type} public key") from None


def parse_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """Load an OpenSSH or PEM private key (Ed25519, RSA or ECDSA) from its text.

    Raises ValueError with a readable message that never contains the key or the passphrase."""
    data = text.strip().encode() + b"\n"
    secret = passphrase.encode() if passphrase else None
    try:
        loaded = _load_private_key(data, secret)
    except TypeError:
        if secret is None:
            raise ValueError("the SSH private key is encrypted: set its passphrase") from None
        # A passphrase was given for a key that has none: use the key as it is.
        secret = None
        loaded = _load_private_key(data, None)
    key_class: type[paramiko.PKey]
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        key_class = paramiko.Ed25519Key
    elif isinstance(loaded, rsa.RSAPrivateKey):
        key_class = paramiko.RSAKey
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        # paramiko loads a PEM key on another curve without complaint, then fails mid-connect (AttributeError).
        if loaded.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise ValueError(
                f"SSH private keys on the curve {loaded.curve.name} are not supported; use Ed25519, RSA or ECDSA "
                "on nistp256, nistp384 or nistp521"
            )
        key_class = paramiko.ECDSAKey
    else:
        raise ValueError(
            f"SSH private keys of type {type(loaded).__name__} are not supported; use Ed25519, RSA or ECDSA"
        )
    try:
        return key_class.from_private_key(io.StringIO(data.decode()), password=passphrase if secret else None)
    except Exception:
        raise ValueError(f"the SSH private key could not be loaded as a {key_class.__name__}") from None


def _load_private_key(data: bytes, secret: bytes | None) -> object:
    """Let cryptography tell the key type (OpenSSH format first, like OpenSSH, then PEM)."""
    problem = "it is neither an OpenSSH nor a PEM private key (PuTTY .ppk keys must be converted first)"
    if secret is not None:
        problem = "the passphrase is wrong, or " + problem
    try:
        return serialization.load_ssh_private_key(data, password=secret)
    except TypeError:
        raise
    except Exception:
        pass
    try:
        return serialization.load_pem_private_key(data, password=secret)
    except TypeError:
        raise
    except Exception:
        raise ValueError(f"the SSH private key could not be read: {problem}") from None


def describe_key(key: paramiko.PKey) -> str:
    """`ssh-ed25519 SHA256:…`, as `ssh-keygen -lf` shows it."""
    return f"{key.get_name()} {key.fingerprint}"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
