"""`sourceVms` (config.source_vms): each source VM's ID and how its guest is reached: `ssh` for Linux, `winrm` with
its `sysprep` options for Windows, with their defaults and bounds, and the logons that cannot work."""

from __future__ import annotations

from typing import Any

import pytest

import config
from hooks.errors import ConfigError
from hooks.targets import SshTarget, WinRmTarget
from tests.unit import stack_configs as sc
from tests.unit.config.one_change import (
    DELETE,
    PASSPHRASE,
    PASSWORD,
    PEM,
    SSH,
    SYSPREP,
    TODAY,
    WINRM,
    Rule,
    assert_reported,
    assert_rule,
    base_config,
    config_with,
    load,
    problems_of,
    rule_cases,
    the_problem,
    vm_id,
)

WIN_SRC = "sourceVms.win-src.winrm"
"""stack_configs.base()'s Windows source VM's winrm block."""


def with_winrm(**fields: Any) -> dict[str, Any]:
    """stack_configs.base() with these fields of the Windows source VM's winrm block set."""
    raw = sc.base()
    raw["sourceVms"]["win-src"]["winrm"].update(fields)
    return raw


RULES: list[Rule] = [
    # source VMs
    ({"sourceVms.linux-build.id": DELETE}, "sourceVms.linux-build.id", "is required"),
    (
        {"sourceVms.linux-build.id": "/subscriptions/x/resourceGroups/rg"},
        "sourceVms.linux-build.id",
        "is not a VM resource ID; expected /subscriptions/<guid>/resourceGroups/<rg>"
        "/providers/Microsoft.Compute/virtualMachines/<name>",
    ),
    (
        {"sourceVms.linux-build.id": vm_id("vm1").replace("virtualMachines", "disks")},
        "sourceVms.linux-build.id",
        "is not a VM resource ID",
    ),
    ({"sourceVms.linux-build.deallocate": "no"}, "sourceVms.linux-build.deallocate", "must be true or false"),
    # ssh
    ({f"{SSH}.host": DELETE}, f"{SSH}.host", "is required"),
    ({f"{SSH}.host": "build vm!"}, f"{SSH}.host", "'build vm!' is not a host name or IP address"),
    ({f"{SSH}.username": DELETE}, f"{SSH}.username", "is required"),
    ({f"{SSH}.port": 0}, f"{SSH}.port", "0 is out of range 1-65535"),
    ({f"{SSH}.port": 65536}, f"{SSH}.port", "65536 is out of range 1-65535"),
    ({f"{SSH}.port": "ssh"}, f"{SSH}.port", "must be an integer, got 'ssh'"),
    ({f"{SSH}.password": PASSWORD}, SSH, "set exactly one of privateKey or password (got both)"),
    ({f"{SSH}.privateKey": DELETE}, SSH, "set exactly one of privateKey or password (got neither)"),
    (
        {f"{SSH}.privateKey": DELETE, f"{SSH}.password": PASSWORD, f"{SSH}.passphrase": PASSPHRASE},
        f"{SSH}.passphrase",
        "is only used with privateKey",
    ),
    ({f"{SSH}.hostKey": DELETE}, f"{SSH}.hostKey", "is required: the VM's host key (`ssh-keyscan <host>`"),
    ({f"{SSH}.hostKey": DELETE}, f"{SSH}.hostKey", "set insecureIgnoreHostKey: true only for throwaway VMs"),
    ({f"{SSH}.hostKey": "ssh-ed25519 not*base64"}, f"{SSH}.hostKey", "is not valid base64 after ssh-ed25519"),
    ({f"{SSH}.hostKey": "ssh-foo AAAAC3Nz"}, f"{SSH}.hostKey", "has no supported key type"),
    ({f"{SSH}.hostKey": "ssh-ed25519"}, f"{SSH}.hostKey", "has no base64 key data after ssh-ed25519"),
    ({f"{SSH}.hostKey": "ssh-ed25519 AAAA"}, f"{SSH}.hostKey", "is not a valid ssh-ed25519 public key"),
    ({f"{SSH}.insecureIgnoreHostKey": "maybe"}, f"{SSH}.insecureIgnoreHostKey", "must be true or false"),
    ({f"{SSH}.connectTimeoutMinutes": 0}, f"{SSH}.connectTimeoutMinutes", "must be a positive number"),
    ({f"{SSH}.commandTimeoutMinutes": -1}, f"{SSH}.commandTimeoutMinutes", "must be a positive number"),
    ({f"{SSH}.keepMachineId": "yes"}, f"{SSH}.keepMachineId", "must be true or false"),
    # winrm
    ({f"{WINRM}.password": DELETE}, f"{WINRM}.password", "is required (secret: `pulumi config set --secret --path"),
    ({f"{WINRM}.password": ""}, f"{WINRM}.password", "must be a non-empty string"),
    ({f"{WINRM}.host": DELETE}, f"{WINRM}.host", "is required"),
    ({f"{WINRM}.username": DELETE}, f"{WINRM}.username", "is required"),
    ({f"{WINRM}.port": 70000}, f"{WINRM}.port", "70000 is out of range 1-65535"),
    (
        {f"{WINRM}.certificateSha256": DELETE},
        f"{WINRM}.caCertificate",
        "set caCertificate or certificateSha256 so the WinRM listener's certificate can be verified",
    ),
    (
        {f"{WINRM}.caCertificate": "MIIB...", f"{WINRM}.certificateSha256": DELETE},
        f"{WINRM}.caCertificate",
        "must be a PEM certificate (-----BEGIN CERTIFICATE----- ...)",
    ),
    (
        {f"{WINRM}.caCertificate": PEM},
        f"{WINRM}.certificateSha256",
        "set caCertificate or certificateSha256, not both",
    ),
    (
        {f"{WINRM}.insecureSkipCertificateValidation": True},
        f"{WINRM}.insecureSkipCertificateValidation",
        "contradicts caCertificate/certificateSha256",
    ),
    (
        {f"{SSH}.insecureIgnoreHostKey": True},
        f"{SSH}.insecureIgnoreHostKey",
        "contradicts hostKey",
    ),
    (
        {
            f"{WINRM}.useHttps": False,
            f"{WINRM}.allowUnencryptedHttp": True,
            f"{WINRM}.transport": "basic",
            f"{WINRM}.certificateSha256": DELETE,
        },
        f"{WINRM}.transport",
        "basic over http would send the password in clear; use useHttps: true",
    ),
    (
        # the same rule as hooks.windows.sysprep.validate's (it used to pass here and fail only at `pulumi up`)
        {
            f"{WINRM}.useHttps": False,
            f"{WINRM}.allowUnencryptedHttp": True,
            f"{WINRM}.certificateSha256": DELETE,
            f"{WINRM}.insecureSkipCertificateValidation": True,
        },
        f"{WINRM}.insecureSkipCertificateValidation",
        "contradicts useHttps: false: there is no certificate to verify over http",
    ),
    (
        {f"{WINRM}.transport": "digest"},
        f"{WINRM}.transport",
        "'digest' is not one of 'ntlm', 'kerberos', 'credssp', 'basic'",
    ),
    ({f"{WINRM}.connectTimeoutMinutes": 0}, f"{WINRM}.connectTimeoutMinutes", "must be a positive number"),
    # sysprep
    ({f"{SYSPREP}.mode": "audit"}, f"{SYSPREP}.mode", "'audit' is not one of 'vm', ''"),
    ({f"{SYSPREP}.extraArgs": "/quiet"}, f"{SYSPREP}.extraArgs", "must be a list of strings"),
    ({f"{SYSPREP}.extraArgs": ["/custom", 1]}, f"{SYSPREP}.extraArgs", "must be a list of strings"),
    (
        {f"{SYSPREP}.extraArgs": ["/custom", "answer.xml"]},
        f"{SYSPREP}.extraArgs[1]",
        "'answer.xml' is not a sysprep flag like /flag or /flag:value",
    ),
    ({f"{SYSPREP}.extraArgs": ["/flag:a b"]}, f"{SYSPREP}.extraArgs[0]", "is not a sysprep flag"),
    ({f"{SYSPREP}.extraArgs": ["/custom\n"]}, f"{SYSPREP}.extraArgs[0]", "is not a sysprep flag"),
    (
        {f"{SYSPREP}.extraArgs": ["/Abcdefghij:Abcdefghij"] * 10},
        f"{SYSPREP}.extraArgs",
        "229 characters together, more than 200",
    ),
    (
        {f"{SYSPREP}.skipChecks": ["appx", "antivirus"]},
        f"{SYSPREP}.skipChecks[1]",
        "'antivirus' is not one of guest-agent, server-roles, bitlocker, appx, pending-reboot",
    ),
    ({f"{SYSPREP}.timeoutMinutes": 0}, f"{SYSPREP}.timeoutMinutes", "must be a positive number"),
    ({f"{SYSPREP}.agentTimeoutMinutes": "x"}, f"{SYSPREP}.agentTimeoutMinutes", "must be a positive number"),
    ({f"{SYSPREP}.pollIntervalSeconds": -1}, f"{SYSPREP}.pollIntervalSeconds", "must be a positive number"),
]


@pytest.mark.parametrize(("changes", "path", "fragment"), rule_cases(RULES))
def test_rule(changes: dict[str, Any], path: str, fragment: str) -> None:
    assert_rule(changes, path, fragment)


def test_ssh_and_winrm_on_one_vm_is_refused() -> None:
    winrm = base_config()["sourceVms"]["win-build"]["winrm"]
    found = problems_of(config_with({"sourceVms.linux-build.winrm": winrm}))
    assert found[0] == "sourceVms.linux-build: set ssh (Linux) or winrm (Windows), not both"


def test_malformed_pin_is_reported_with_the_missing_verification() -> None:
    found = problems_of(config_with({f"{WINRM}.certificateSha256": "3F:9A"}))
    assert_reported(found, f"{WINRM}.certificateSha256", "'3F:9A' is not a SHA-256 fingerprint (64 hex digits)")
    assert_reported(found, f"{WINRM}.caCertificate", "set caCertificate or certificateSha256")


@pytest.mark.parametrize(
    "flag",
    ["/unattend:answer", "/generalize", "/OOBE", "/quiet", "/quit", "/mode:vm", "/shutdown", "/reboot", "/audit"],
)
def test_sysprep_flags_set_by_the_step_are_refused(flag: str) -> None:
    problem = the_problem(config_with({f"{SYSPREP}.extraArgs": ["/custom", flag]}))
    assert problem == f"{SYSPREP}.extraArgs[1]: {flag!r} is set by image-gallery itself; remove it"


# --- timeouts ---------------------------------------------------------------------------------------------------------


def test_connect_timeouts_default_to_ten_minutes() -> None:
    stack = load(base_config())
    linux, win = stack.source_vms["linux-build"], stack.source_vms["win-build"]
    assert linux.ssh is not None and win.winrm is not None
    assert linux.ssh.connect_timeout == 600.0
    assert win.winrm.connect_timeout == 600.0
    assert SshTarget.connect_timeout == WinRmTarget.connect_timeout == 600.0


@pytest.mark.parametrize(("section", "value"), [(SSH, 0), (SSH, -1), (WINRM, 0)])
def test_connect_timeouts_must_be_positive(section: str, value: Any) -> None:
    found = problems_of(config_with({f"{section}.connectTimeoutMinutes": value}))
    assert any(p.startswith(f"{section}.connectTimeoutMinutes: ") for p in found), found


def test_machine_id_is_emptied_unless_the_source_vm_keeps_it() -> None:
    linux = load(base_config()).source_vms["linux-build"]
    assert linux.ssh is not None and linux.ssh.keep_machine_id is False
    kept = load(config_with({f"{SSH}.keepMachineId": True})).source_vms["linux-build"]
    assert kept.ssh is not None and kept.ssh.keep_machine_id is True


# --- Windows logons ---------------------------------------------------------------------------------------------------


def test_winrm_over_http_needs_the_opt_in_and_is_warned() -> None:
    raw = sc.base()
    winrm = raw["sourceVms"]["win-src"]["winrm"]
    winrm.update({"useHttps": False, "insecureSkipCertificateValidation": False})
    with pytest.raises(ConfigError, match="allowUnencryptedHttp: true"):
        config.load(raw, ["sourceVms"], TODAY)
    winrm["allowUnencryptedHttp"] = True
    stack = config.load(raw, ["sourceVms"], TODAY)
    spec = stack.source_vms["win-src"].winrm
    assert spec is not None and spec.scheme == "http" and spec.port == 5985
    assert any("plain http" in w for w in stack.warnings)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"transport": "kerberos"}, "kerberos cannot authenticate to 10.0.0.5, an IP address"),
        ({"transport": "kerberos", "host": "fd00::5"}, "kerberos cannot authenticate to fd00::5, an IP address"),
        (
            {"transport": "basic", "username": "CONTOSO\\imageadmin"},
            "basic works with local accounts only, and 'CONTOSO\\\\imageadmin' is a domain account: use transport: "
            "ntlm",
        ),
        (
            {"transport": "basic", "username": "imageadmin@contoso.com"},
            "basic works with local accounts only, and 'imageadmin@contoso.com' is a domain account",
        ),
    ],
)
def test_a_windows_logon_that_cannot_work_is_refused_with_what_would(fields: dict[str, Any], fragment: str) -> None:
    found = the_problem(with_winrm(**fields))
    assert found.startswith(f"{WIN_SRC}.transport: {fragment}"), found


@pytest.mark.parametrize(
    "fields",
    [
        {"transport": "kerberos", "host": "build01.contoso.local", "username": "imageadmin@CONTOSO.LOCAL"},
        {"transport": "basic", "username": "imageadmin"},
        {"transport": "ntlm", "username": "CONTOSO\\imageadmin"},
        {"transport": "credssp", "username": "imageadmin@contoso.com"},
    ],
)
def test_windows_logons_that_can_work_are_accepted(fields: dict[str, Any]) -> None:
    winrm = load(with_winrm(**fields)).source_vms["win-src"].winrm
    assert winrm is not None and winrm.transport == fields["transport"]
