"""hooks.ssh_keys: parse_host_key and parse_private_key, and messages that never show a secret."""

from __future__ import annotations

import base64
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from hooks.ssh_keys import describe_key, parse_host_key, parse_private_key


def public_line(private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    raw = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode()


ED25519 = public_line(ed25519.Ed25519PrivateKey.generate())
ECDSA = public_line(ec.generate_private_key(ec.SECP256R1()))
RSA = public_line(rsa.generate_private_key(65537, 2048))


@pytest.mark.parametrize(
    "text",
    [
        ED25519,
        f"{ED25519} root@vm",
        f"  {ED25519}\n",
        f"vm.example.com {ED25519}",
        f"[10.0.0.4]:2222 {ED25519} comment with spaces",
        f"vm,10.0.0.4,[vm]:2222 {ED25519}",
        f"|1|c2FsdA==|aGFzaA== {ED25519}",  # hashed known_hosts host field
    ],
)
def test_host_key_forms(text: str) -> None:
    key = parse_host_key(text)
    assert key.get_name() == "ssh-ed25519"
    assert key.get_base64() == ED25519.split()[1]


@pytest.mark.parametrize(("line", "kind"), [(ECDSA, "ecdsa-sha2-nistp256"), (RSA, "ssh-rsa")])
def test_other_host_key_types(line: str, kind: str) -> None:
    key = parse_host_key(f"[vm]:22 {line}")
    assert key.get_name() == kind
    assert describe_key(key).startswith(f"{kind} SHA256:")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ssh-ed25519", "no base64 key data"),
        ("ssh-ed25519 !!!notbase64!!!", "not valid base64"),
        ("ssh-ed25519 AAAA", "not a valid ssh-ed25519 public key"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "no supported key type"),
        ("SHA256:abcdefabcdef", "no supported key type"),
        (f"@cert-authority *.example.com {ED25519}", "marker @cert-authority"),
        (f"{ED25519}\n{ECDSA}", "several lines"),
        (f"ssh-rsa {ED25519.split()[1]}", "says ssh-rsa but its data is a ssh-ed25519 key"),
    ],
)
def test_malformed_host_keys_are_explained(text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_host_key(text)
    assert says in str(caught.value)


def private_text(
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    fmt: serialization.PrivateFormat,
    passphrase: str | None = None,
) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    return private.private_bytes(serialization.Encoding.PEM, fmt, encryption).decode()


OPENSSH = serialization.PrivateFormat.OpenSSH
PEM = serialization.PrivateFormat.TraditionalOpenSSL
PKCS8 = serialization.PrivateFormat.PKCS8


@pytest.mark.parametrize(
    ("private", "fmt", "name"),
    [
        (ed25519.Ed25519PrivateKey.generate(), OPENSSH, "ssh-ed25519"),
        (rsa.generate_private_key(65537, 2048), OPENSSH, "ssh-rsa"),
        (rsa.generate_private_key(65537, 2048), PEM, "ssh-rsa"),
        (ec.generate_private_key(ec.SECP256R1()), PEM, "ecdsa-sha2-nistp256"),
        (ec.generate_private_key(ec.SECP521R1()), OPENSSH, "ecdsa-sha2-nistp521"),
    ],
)
@pytest.mark.parametrize("passphrase", [None, "a passphrase"])
def test_private_key_formats(
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    fmt: serialization.PrivateFormat,
    name: str,
    passphrase: str | None,
) -> None:
    key = parse_private_key(private_text(private, fmt, passphrase), passphrase)
    assert key.get_name() == name
    assert key.can_sign()
    assert key.get_base64() == public_line(private).split()[1]


def test_a_passphrase_for_an_unencrypted_key_is_ignored() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    assert parse_private_key(private_text(private, OPENSSH), "unneeded").get_name() == "ssh-ed25519"


def test_encrypted_key_without_passphrase() -> None:
    text = private_text(ed25519.Ed25519PrivateKey.generate(), OPENSSH, "hunter2-passphrase")
    with pytest.raises(ValueError) as caught:
        parse_private_key(text)
    assert "encrypted: set its passphrase" in str(caught.value)


@pytest.mark.parametrize("fmt", [OPENSSH, PEM])
def test_wrong_passphrase_never_shows_key_or_passphrase(fmt: serialization.PrivateFormat) -> None:
    text = private_text(rsa.generate_private_key(65537, 2048), fmt, "the right one")
    with pytest.raises(ValueError) as caught:
        parse_private_key(text, "the-wrong-passphrase")
    message = str(caught.value)
    assert "passphrase is wrong" in message
    assert "the-wrong-passphrase" not in message
    assert "the right one" not in message
    for line in text.splitlines():
        if line and not line.startswith("-----") and ":" not in line:
            assert line not in message


@pytest.mark.parametrize(
    "text",
    [
        "not a key at all",
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: x\nPublic-Lines: 2\nAAAA\nAAAA\n",
        ED25519,  # a public key where the private one belongs
    ],
)
def test_unreadable_private_keys(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_private_key(text)
    assert "could not be read" in str(caught.value)
    assert "passphrase" not in str(caught.value), "no passphrase was given: it cannot be the wrong one"
    assert text.strip() not in str(caught.value)


def test_an_ed25519_key_in_pkcs8_pem_is_refused_with_a_reason() -> None:
    # What `openssl genpkey -algorithm ed25519` writes: cryptography reads it, paramiko (and OpenSSH) cannot use it.
    text = private_text(ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.PKCS8)
    with pytest.raises(ValueError) as caught:
        parse_private_key(text)
    assert "could not be loaded as a Ed25519Key" in str(caught.value)


@pytest.mark.parametrize("curve", [ec.SECP224R1(), ec.SECP256K1()])
def test_an_ecdsa_key_on_a_curve_ssh_does_not_use_is_refused_up_front(curve: ec.EllipticCurve) -> None:
    # paramiko would load it and then fail in the middle of connecting, with a bare AttributeError.
    text = private_text(ec.generate_private_key(curve), PEM)
    with pytest.raises(ValueError) as caught:
        parse_private_key(text)
    assert f"curve {curve.name} are not supported" in str(caught.value)


def _blob(*fields: bytes) -> str:
    return base64.b64encode(b"".join(struct.pack(">I", len(f)) + f for f in fields)).decode()


def test_a_host_key_off_its_curve_is_refused_quoting_the_key_shortened() -> None:
    # Well-formed (the right fields and lengths), but no point of nistp256: only loading it as a key can tell.
    text = "ecdsa-sha2-nistp256 " + _blob(b"ecdsa-sha2-nistp256", b"nistp256", b"\x04" + b"\x01" * 64)
    with pytest.raises(ValueError) as caught:
        parse_host_key(text)
    shown = text[:59] + "…"
    assert str(caught.value) == f"the SSH host key {shown!r} is not a valid ecdsa-sha2-nistp256 public key"
