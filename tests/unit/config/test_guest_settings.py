"""A source VM's guest settings across the props boundary: one type (hooks.targets' SshTarget, WinRmTarget,
SysprepOptions) from the stack file to the guest. The config builds them, the components hand them to the guest half
with `to_props()` and `credentials()`, and its provider rebuilds them with `from_props`; what comes back is what
went in, and the secrets travel only in the secret input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.captured_image_version import guest_props
from config import AzureSpec
from hooks.targets import ProviderInput, SshTarget, SysprepOptions, WinRmTarget
from tests.unit.config.one_change import PASSPHRASE, PASSWORD, PRIVATE_KEY, config_with, load

SSH = SshTarget(
    host="10.0.0.4",
    username="azureuser",
    port=2222,
    private_key=PRIVATE_KEY,
    passphrase=PASSPHRASE,
    host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfTheTestVm",
    connect_timeout=90.0,
    command_timeout=1200.0,
)
WINRM = WinRmTarget(
    host="10.0.0.5",
    username="imageadmin",
    password=PASSWORD,
    port=5985,
    scheme="http",
    transport="kerberos",
    certificate_sha256="ab" * 32,
    connect_timeout=180.0,
)
SYSPREP = SysprepOptions(
    mode="",
    extra_args=("/Custom", "/Flag:Value1"),
    skip_checks=frozenset({"bitlocker", "appx"}),
    agent_timeout=240.0,
    timeout=5400.0,
    poll_interval=0.5,
)

# The props keys the states of existing stacks hold (written before the targets carried to_props): the inputs of a
# resource already deployed keep these names, so its diff stays empty.
STATE_KEYS = {
    SshTarget: {
        "host",
        "port",
        "username",
        "host_key",
        "insecure_ignore_host_key",
        "connect_timeout",
        "command_timeout",
    },
    WinRmTarget: {
        "host",
        "port",
        "scheme",
        "transport",
        "username",
        "ca_certificate",
        "certificate_sha256",
        "insecure_skip_certificate_validation",
        "connect_timeout",
    },
    SysprepOptions: {"mode", "extra_args", "skip_checks", "agent_timeout", "timeout", "poll_interval"},
}
ADDED_KEYS: dict[type, set[str]] = {SshTarget: {"keep_machine_id"}, WinRmTarget: set(), SysprepOptions: set()}
"""Keys added since: existing states lack them and read them as the field's default; the guest half's diff ignores
them (only a different VM is a different job), so adding one changes nothing on a deployed resource."""


def through_the_engine(value: Any) -> Any:
    """A value as the dynamic provider host reads it back: JSON, with every number a float."""
    return json.loads(json.dumps(value), parse_int=float)


@pytest.mark.parametrize(
    "settings",
    [
        SSH,
        WINRM,
        SYSPREP,
        SshTarget("10.0.0.4", "azureuser", password=PASSWORD, insecure_ignore_host_key=True, keep_machine_id=True),
    ],
    ids=["ssh", "winrm", "sysprep", "ssh-password"],
)
def test_from_props_gives_back_what_to_props_and_credentials_gave(settings: ProviderInput) -> None:
    props, credentials = through_the_engine(settings.to_props()), through_the_engine(settings.credentials())
    rebuilt = type(settings).from_props(props, credentials)
    assert rebuilt == settings
    assert {k: type(v) for k, v in vars(rebuilt).items()} == {k: type(v) for k, v in vars(settings).items()}


@pytest.mark.parametrize("settings", [SSH, WINRM, SYSPREP], ids=lambda s: type(s).__name__)
def test_the_props_keys_are_those_existing_states_hold(settings: ProviderInput) -> None:
    assert set(settings.to_props()) == STATE_KEYS[type(settings)] | ADDED_KEYS[type(settings)]


def test_secrets_travel_only_in_the_credentials() -> None:
    assert SSH.credentials() == {"private_key": PRIVATE_KEY, "passphrase": PASSPHRASE}
    assert WINRM.credentials() == {"password": PASSWORD}
    assert SYSPREP.credentials() == {}
    for settings in (SSH, WINRM):
        shown = f"{settings!r} {settings} {json.dumps(settings.to_props())}"
        for secret in (PRIVATE_KEY.splitlines()[1], PASSPHRASE, PASSWORD):
            assert secret not in shown
    assert set(SSH.secrets) == {PRIVATE_KEY, PASSPHRASE}


def test_a_key_missing_or_null_keeps_the_default_and_a_required_one_is_named() -> None:
    older = {"host": "10.0.0.4", "port": 22.0, "username": "azureuser", "host_key": None, "connect_timeout": None}
    assert SshTarget.from_props(older) == SshTarget("10.0.0.4", "azureuser")
    assert SshTarget.from_props(older).keep_machine_id is False, "a state from before keepMachineId empties it"
    with pytest.raises(ValueError, match="WinRmTarget: no password in the credentials"):
        WinRmTarget.from_props(WINRM.to_props(), {})
    with pytest.raises(ValueError, match="SshTarget: no host in the props"):
        SshTarget.from_props({"username": "azureuser"})


def test_the_stack_file_reaches_the_guest_half_unchanged() -> None:
    stack = load(config_with({"sourceVms.win-build.winrm.sysprep": {"timeoutMinutes": 90, "extraArgs": ["/Custom"]}}))
    linux, windows = stack.source_vms["linux-build"], stack.source_vms["win-build"]
    assert linux.ssh is not None and windows.winrm is not None
    definition = stack.images[0]
    props = through_the_engine(guest_props(linux, definition, AzureSpec()))
    assert props["vm_id"] == linux.vm.id
    assert SshTarget.from_props(props["ssh"], linux.ssh.credentials()) == linux.ssh
    props = through_the_engine(guest_props(windows, definition, AzureSpec()))
    assert WinRmTarget.from_props(props["winrm"], windows.winrm.credentials()) == windows.winrm
    assert SysprepOptions.from_props(props["winrm"]["sysprep"]) == windows.sysprep
    assert windows.sysprep.timeout == 90 * 60, "minutes in the stack file, seconds from there on"
    assert windows.sysprep.extra_args == ("/Custom",)
