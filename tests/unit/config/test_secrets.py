"""Secrets in the stack config: never shown in a spec's repr or str, compared by value, refused when stored in
plaintext (with the command that encrypts them), and held only under the one top-level key the engine encrypts.
The azure-native login secrets are test_login_settings.py's."""

from __future__ import annotations

import pytest

import config
from hooks.errors import ConfigError
from tests.unit import stack_configs as sc
from tests.unit.config.one_change import (
    PASSPHRASE,
    PASSWORD,
    PRIVATE_KEY,
    SSH,
    TODAY,
    WINRM,
    base_config,
    config_with,
    load,
    problems_of,
)


def test_secrets_never_show_in_repr_or_str() -> None:
    stack = load(config_with({f"{SSH}.passphrase": PASSPHRASE}))
    for text in (repr(stack), str(stack), f"{stack}", repr(stack.source_vms), str(stack.images)):
        for value in (PRIVATE_KEY.splitlines()[1], PASSPHRASE, PASSWORD):
            assert value not in text
        assert "SshTarget(host=" in text, "the source VMs' settings are shown, without their secrets"
    secret = config.Secret(PASSWORD)
    assert PASSWORD not in f"{secret} {secret!r} {[secret]}"
    assert secret.reveal() == PASSWORD


def test_secrets_compare_by_value_without_showing_it() -> None:
    assert config.Secret(PASSWORD) == config.Secret(PASSWORD)
    assert config.Secret(PASSWORD) != config.Secret(PASSPHRASE)
    assert config.Secret(PASSWORD) != PASSWORD, "a secret is never equal to its plaintext"


def test_plaintext_secrets_are_reported_with_the_command_that_encrypts_them() -> None:
    found = problems_of(config_with({f"{SSH}.passphrase": PASSPHRASE}), secret_keys=())
    assert found == [
        f"{SSH}.privateKey: is stored in plaintext; store it encrypted with "
        f"`pulumi config set --secret --path '{SSH}.privateKey'`",
        f"{SSH}.passphrase: is stored in plaintext; store it encrypted with "
        f"`pulumi config set --secret --path '{SSH}.passphrase'`",
        f"{WINRM}.password: is stored in plaintext; store it encrypted with "
        f"`pulumi config set --secret --path '{WINRM}.password'`",
    ]
    for secret in (PASSPHRASE, PASSWORD, PRIVATE_KEY):
        assert not any(secret in p for p in found)


def test_a_secret_written_in_plaintext_is_refused_even_when_its_key_is_encrypted() -> None:
    raw = sc.base()
    plain = config.plain_leaf_paths({"image-gallery:sourceVms": {"linux-src": {"ssh": {"privateKey": "x"}}}})
    assert plain == {"sourceVms.linux-src.ssh.privateKey"}
    assert config.plain_leaf_paths({"image-gallery:sourceVms": {"w": {"password": {"secure": "v1:x"}}}}) == set()
    with pytest.raises(ConfigError, match=r"sourceVms\.linux-src\.ssh\.privateKey: is stored in plaintext"):
        config.load(raw, ["sourceVms"], TODAY, plain)


def test_only_the_encrypted_top_level_key_may_hold_secrets() -> None:
    found = problems_of(base_config(), secret_keys=("galleryName", "images"))
    assert [p.split(":")[0] for p in found] == [f"{SSH}.privateKey", f"{WINRM}.password"]


def test_a_blank_secret_is_reported_like_a_missing_one() -> None:
    # An encrypted value that is only whitespace (e.g. `pulumi config set --secret` with an empty paste).
    found = problems_of(config_with({f"{WINRM}.password": config.Secret("  \n")}))
    assert f"{WINRM}.password: is empty" in found, found
