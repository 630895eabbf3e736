"""`sourceVms`: the existing VMs that versions are captured from, and how each guest is reached (`ssh` for Linux,
`winrm` with its `sysprep` options for Windows).

Each guest's settings become hooks.targets' own types, the ones the guest step runs with (`SshTarget`,
`WinRmTarget`, `SysprepOptions`): a field is named as its key, in snake_case (`certificateSha256` is
`certificate_sha256`); here, once, the `...Minutes` durations become seconds and `useHttps` the `scheme`.

What a Windows guest's settings may be is hooks.targets' rules (`winrm_problems`, `sysprep_problems`), the ones
hooks.windows.sysprep.validate applies before it contacts a guest: here they are reported at the stack file's key
paths (STACK_KEYS names each setting as the stack file does). The stack file adds its own policies on top: the
listener's certificate is verified explicitly, and plain http needs an explicit opt-in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from config.constants import HOST_NAME
from config.reader import Node
from config.specs import Secret, SourceVmSpec
from hooks.host_keys import parse_host_key
from hooks.safety_snapshots import DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS
from hooks.targets import (
    SHA256_FINGERPRINT,
    SettingProblem,
    Spelling,
    SshTarget,
    SysprepOptions,
    VmRef,
    WinRmTarget,
    sysprep_problems,
    winrm_problems,
)

STACK_KEYS = Spelling(names={"scheme": "useHttps"}, camel_case=True, https="useHttps: true", http="useHttps: false")
"""The stack file's key of each WinRmTarget / SysprepOptions field: its name in camelCase, but for `scheme`, which
the stack file gives as `useHttps` (true or false)."""
SECONDS_PER_MINUTE = 60.0


def read_source_vms(node: Node | None) -> dict[str, SourceVmSpec | None]:
    """Every declared key; None for an entry whose own problems are already reported."""
    result: dict[str, SourceVmSpec | None] = {}
    if node is None:
        return result
    for key in list(node.value):
        vm_node = node.child(str(key), required=True)
        result[str(key)] = None
        if vm_node is None:
            continue
        vm_id = vm_node.string("id", None, required=True)
        vm: VmRef | None = None
        if vm_id is not None:
            try:
                vm = VmRef.parse(vm_id)
            except ValueError as exc:
                vm_node.problem("id", str(exc))
        ssh_node = vm_node.child("ssh")
        winrm_node = vm_node.child("winrm")
        if ssh_node is not None and winrm_node is not None:
            vm_node.problems.append(f"{vm_node.path}: set ssh (Linux) or winrm (Windows), not both")
        ssh = read_ssh(ssh_node) if ssh_node is not None else None
        winrm, sysprep = read_winrm(winrm_node) if winrm_node is not None else (None, SysprepOptions())
        deallocate = vm_node.boolean("deallocate", True)
        snapshot = vm_node.boolean("safetySnapshot", True)
        retention = vm_node.integer("safetySnapshotRetentionDays", DEFAULT_RETENTION_DAYS, 0, MAX_RETENTION_DAYS)
        vm_node.done()
        if vm is not None and (ssh_node is None or ssh is not None) and (winrm_node is None or winrm is not None):
            result[str(key)] = SourceVmSpec(str(key), vm, ssh, winrm, deallocate, sysprep, snapshot, retention)
    return result


def read_ssh(node: Node) -> SshTarget | None:
    """`ssh`: how the waagent deprovision reaches a Linux guest."""
    host = node.string("host", None, HOST_NAME, "is not a host name or IP address", True)
    username = node.string("username", None, required=True)
    port = node.integer("port", 22, 1, 65535)
    private_key = node.secret("privateKey")
    passphrase = node.secret("passphrase")
    password = node.secret("password")
    if (private_key is None) == (password is None):
        node.problems.append(
            f"{node.path}: set exactly one of privateKey or password (got {'both' if private_key else 'neither'})"
        )
    if passphrase is not None and private_key is None:
        node.problem("passphrase", "is only used with privateKey")
    host_key = node.string("hostKey", None)
    if host_key is not None:
        try:
            parse_host_key(host_key)
        except ValueError as exc:
            node.problem("hostKey", str(exc))
    insecure = node.boolean("insecureIgnoreHostKey", False)
    if insecure and host_key is not None:
        node.problem(
            "insecureIgnoreHostKey", "contradicts hostKey: remove one (verifying the host key is the safe choice)"
        )
    if host_key is None and not insecure:
        node.problem(
            "hostKey",
            "is required: the VM's host key (`ssh-keyscan <host>` from a trusted network, or "
            "`az vm run-command invoke ... cat /etc/ssh/ssh_host_ed25519_key.pub`); "
            "set insecureIgnoreHostKey: true only for throwaway VMs",
        )
    connect = _seconds(node, "connectTimeoutMinutes", SshTarget.connect_timeout)
    command = _seconds(node, "commandTimeoutMinutes", SshTarget.command_timeout)
    keep_machine_id = node.boolean("keepMachineId", SshTarget.keep_machine_id)
    node.done()
    if host is None or username is None:
        return None
    return SshTarget(
        host,
        username,
        port,
        private_key=_reveal(private_key),
        passphrase=_reveal(passphrase),
        password=_reveal(password),
        host_key=host_key,
        insecure_ignore_host_key=insecure,
        connect_timeout=connect,
        command_timeout=command,
        keep_machine_id=keep_machine_id,
    )


def read_sysprep(node: Node | None) -> SysprepOptions:
    """`winrm.sysprep`: how sysprep is run and watched (all optional)."""
    if node is None:
        return SysprepOptions()
    mode = "" if node.raw("mode") == "" else node.string("mode", SysprepOptions.mode)
    extra = node.strings("extraArgs")
    skip = node.strings("skipChecks")
    _report(node, sysprep_problems(mode, extra, skip))
    options = SysprepOptions(
        mode=mode,
        extra_args=extra,
        skip_checks=frozenset(skip),
        agent_timeout=_seconds(node, "agentTimeoutMinutes", SysprepOptions.agent_timeout),
        timeout=_seconds(node, "timeoutMinutes", SysprepOptions.timeout),
        poll_interval=node.positive("pollIntervalSeconds", SysprepOptions.poll_interval),
    )
    node.done()
    return options


def read_winrm(node: Node) -> tuple[WinRmTarget | None, SysprepOptions]:
    """`winrm`: how sysprep reaches a Windows guest, and how the listener's certificate is verified; with
    `winrm.sysprep`, how sysprep is run."""
    host = node.string("host", None, HOST_NAME, "is not a host name or IP address", True)
    username = node.string("username", None, required=True)
    password = node.secret("password")
    if password is None and node.value.get("password") is None:  # an empty or malformed one is reported already
        node.problem("password", "is required (secret: `pulumi config set --secret --path ...`)")
    use_https = node.boolean("useHttps", True)
    allow_http = node.boolean("allowUnencryptedHttp", False)
    if not use_https and not allow_http:
        node.problem(
            "useHttps",
            "false sends WinRM traffic without TLS (only NTLM/Kerberos message encryption protects the password and "
            "the sysprep session); keep useHttps: true, or set allowUnencryptedHttp: true to accept that",
        )
    elif not use_https:
        node.shared.warnings.append(
            f"{node.path}: WinRM over plain http (allowUnencryptedHttp: true): the session is not protected by TLS; "
            "use it only on an isolated network"
        )
    elif allow_http:
        node.problem("allowUnencryptedHttp", "is only used with useHttps: false")
    port = node.integer("port", 5986 if use_https else 5985, 1, 65535)
    transport = node.string("transport", WinRmTarget.transport)
    _check_logon(node, host, username, transport)
    ca = node.string("caCertificate", None)
    pin = node.string("certificateSha256", None)
    insecure = node.boolean("insecureSkipCertificateValidation", False)
    _report(node, winrm_problems(transport, use_https, ca, pin, insecure, STACK_KEYS))
    if pin is not None and not SHA256_FINGERPRINT.fullmatch(pin):
        pin = None  # reported: counts as no pin, so the missing verification is reported too
    if use_https and ca is None and pin is None and not insecure:
        node.problem(
            "caCertificate",
            "set caCertificate or certificateSha256 so the WinRM listener's certificate can be verified "
            "(or insecureSkipCertificateValidation: true for throwaway VMs only)",
        )
    if ca is not None and pin is not None:
        node.problem("certificateSha256", "set caCertificate or certificateSha256, not both")
    connect = _seconds(node, "connectTimeoutMinutes", WinRmTarget.connect_timeout)
    sysprep = read_sysprep(node.child("sysprep"))
    node.done()
    if host is None or username is None or password is None:
        return None, sysprep
    target = WinRmTarget(
        host,
        username,
        password.reveal(),
        port,
        scheme="https" if use_https else "http",
        transport=transport,
        ca_certificate=ca,
        certificate_sha256=pin,
        insecure_skip_certificate_validation=insecure,
        connect_timeout=connect,
    )
    return target, sysprep


def _seconds(node: Node, key: str, default: float) -> float:
    """A `...Minutes` key in seconds, the unit of every duration in hooks.targets (`default` in seconds)."""
    return node.positive(key, default / SECONDS_PER_MINUTE) * SECONDS_PER_MINUTE


def _reveal(secret: Secret | None) -> str | None:
    return secret.reveal() if secret is not None else None


def _check_logon(node: Node, host: str | None, username: str | None, transport: str | None) -> None:
    """Windows logons that cannot work whatever the guest does, each with what was probably meant."""
    if transport == "kerberos" and host is not None and _is_ip_address(host):
        # Kerberos finds the guest by its service principal name (HTTP/<host name>); an IP address has none:
        # https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_remote_troubleshooting
        # ("How to use an IP address in a remote command").
        node.problem(
            "transport",
            f"kerberos cannot authenticate to {host}, an IP address (Kerberos finds the guest by its host name, "
            "HTTP/<host name>): give the VM's DNS name as host, or use transport: ntlm",
        )
    if transport == "basic" and username is not None and ("\\" in username or "@" in username):
        # Basic authentication takes local accounts only:
        # https://learn.microsoft.com/windows/win32/winrm/connectionoptions-username
        node.problem(
            "transport",
            f"basic works with local accounts only, and {username!r} is a domain account: use transport: ntlm "
            "(or kerberos) for it, or a local administrator's name with basic",
        )


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _report(node: Node, problems: Iterable[SettingProblem]) -> None:
    """hooks.targets' problems, each at its stack file key's path."""
    for p in problems:
        node.problems.append(f"{node.at(p.where(STACK_KEYS))}: {p.message}")
