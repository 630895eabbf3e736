"""SSH host public keys as text (`ssh-ed25519 AAAA…` or a known_hosts line), parsed without paramiko.

Config validation runs in the program process on every `pulumi preview`, which must stay light (no paramiko,
no cryptography): this module checks the text and the key blob's wire format (RFC 4253 §6.6, RFC 5656 §3.1,
RFC 8709 §4) and hands the blob on; hooks/linux.py turns it into a paramiko key inside the provider host.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

HOST_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
_ECDSA_POINT_BYTES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}
_ED25519_KEY_BYTES = 32


@dataclass(frozen=True)
class HostKey:
    """A host public key: its type name and its wire-format blob."""

    key_type: str
    data: bytes


def parse_host_key(text: str) -> HostKey:
    """Parse an SSH host public key: `ssh-ed25519 AAAA… [comment]` or a known_hosts line
    (`host,[host]:2222 ssh-ed25519 AAAA… [comment]`; the host names are not checked, the key is what counts).

    Raises ValueError with a readable message; meant for config validation."""
    fields = text.strip().split()
    shown = _shorten(text.strip())
    expected = f"expected '<type> <base64>' or a known_hosts line, with <type> one of {', '.join(HOST_KEY_TYPES)}"
    if not fields:
        raise ValueError(f"the SSH host key is empty; {expected}")
    if "\n" in text.strip():
        raise ValueError(f"the SSH host key {shown!r} has several lines; give exactly one key")
    if fields[0].startswith("@"):
        raise ValueError(
            f"the SSH host key {shown!r} is a known_hosts line with the marker {fields[0]}, which is not supported; "
            "give the host's own public key"
        )
    if fields[0] in HOST_KEY_TYPES:
        key_type, blob = fields[0], fields[1:2]
    elif len(fields) >= 2 and fields[1] in HOST_KEY_TYPES:
        key_type, blob = fields[1], fields[2:3]
    else:
        raise ValueError(f"the SSH host key {shown!r} has no supported key type; {expected}")
    if not blob:
        raise ValueError(f"the SSH host key {shown!r} has no base64 key data after {key_type}")
    try:
        data = base64.b64decode(blob[0], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the SSH host key {shown!r} is not valid base64 after {key_type}") from None
    embedded = embedded_key_type(data)
    if embedded is not None and embedded != key_type:
        raise ValueError(f"the SSH host key {shown!r} says {key_type} but its data is a {embedded} key")
    if not _well_formed(key_type, data):
        raise ValueError(f"the SSH host key {shown!r} is not a valid {key_type} public key")
    return HostKey(key_type, data)


def embedded_key_type(blob: bytes) -> str | None:
    """The type name an SSH public key blob starts with (a length-prefixed string), if it has one."""
    if len(blob) < 4:
        return None
    length = int.from_bytes(blob[:4], "big")
    name = blob[4 : 4 + length]
    if length > 64 or len(name) != length or not name.isascii():
        return None
    return name.decode()


def _fields(blob: bytes) -> list[bytes] | None:
    """The length-prefixed strings of a wire-format blob, or None when it does not split exactly into them."""
    out: list[bytes] = []
    i = 0
    while i < len(blob):
        if i + 4 > len(blob):
            return None
        length = int.from_bytes(blob[i : i + 4], "big")
        i += 4
        if i + length > len(blob):
            return None
        out.append(blob[i : i + length])
        i += length
    return out


def _well_formed(key_type: str, blob: bytes) -> bool:
    fields = _fields(blob)
    if fields is None or not fields or fields[0] != key_type.encode():
        return False
    if key_type == "ssh-ed25519":
        return len(fields) == 2 and len(fields[1]) == _ED25519_KEY_BYTES
    if key_type == "ssh-rsa":
        # e and n as positive mpints; n of at least 1024 bits (OpenSSH refuses smaller RSA host keys)
        return len(fields) == 3 and all(f and f[0] < 0x80 for f in fields[1:]) and len(fields[2].lstrip(b"\0")) >= 128
    curve = key_type.rsplit("-", 1)[-1]
    return (
        len(fields) == 3
        and fields[1] == curve.encode()
        and len(fields[2]) == _ECDSA_POINT_BYTES[curve]
        and fields[2][0] == 0x04  # an uncompressed point
    )


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
