"""Plain, typed descriptions of what the imperative side talks to: the ARM endpoint, a VM, and a guest reachable
over SSH or WinRM, and the rules a Windows guest's settings follow. Usable directly without Pulumi.

A guest's settings (SshTarget, WinRmTarget, SysprepOptions) are one type from the stack file to the guest: the config
builds them, the components hand them to a dynamic resource with `to_props()` and `credentials()`, and its provider
rebuilds them with `from_props`. Every field keeps its name on the way (the stack file spells it in camelCase, and
gives `scheme` as `useHttps`), and every duration is in seconds (the config converts the stack file's minutes).

Secret fields (passwords, private keys) are excluded from repr and from `to_props()`, so they cannot leak through
logs, errors or the plain inputs; they travel in the dynamic resource's one secret input, `credentials`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from types import UnionType
from typing import TYPE_CHECKING, Any, ClassVar, Self, get_args, get_origin, get_type_hints

if TYPE_CHECKING:
    from hooks.login import LoginSettings

PUBLIC_CLOUD_ARM = "https://management.azure.com"

_VM_ID = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/(?P<rg>[-\w._()]{1,90})"
    r"/providers/Microsoft\.Compute/virtualMachines/(?P<name>[-\w.]{1,64})$",
    re.IGNORECASE,
)

# Lenient on purpose: gallery IDs come from Azure (or, in the offline plan, from the mocks).
_GALLERY_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/galleries/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
_IMAGE_VERSION_ID = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/(?P<rg>[-\w._()]{1,90})/providers/Microsoft\.Compute"
    r"/galleries/(?P<gallery>[A-Za-z0-9_.]{1,80})/images/(?P<image>[-\w.]{1,80})/versions/(?P<version>[0-9]+\.[0-9]+\.[0-9]+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ArmSettings:
    """How to reach Azure Resource Manager."""

    endpoint: str = PUBLIC_CLOUD_ARM
    """Base URL of ARM (sovereign clouds and Azure Stack differ)."""
    audience: str | None = None
    """Token audience; defaults to the endpoint (Azure Stack Hub sets its own)."""
    poll_interval: float = 15.0
    """Seconds between polls of a long-running operation when Azure sends no Retry-After."""
    operation_timeout: float = 1800.0
    """Upper bound in seconds for any single ARM long-running operation or state wait."""
    request_timeout: float = 60.0
    """Upper bound in seconds for one HTTP request to ARM."""
    max_retries: int | None = None
    """Retries of one request on 5xx and connection errors (azure-core's `retry_total`); None keeps azure-core's
    default (10). Throttling (429, Retry-After) does not use these up: it is retried, as ARM asks, until
    `operation_timeout`. The capture-time checks set a small number so that `pulumi preview` stays fast."""
    bound_source: str = "armOperationTimeoutMinutes"
    """Where `operation_timeout` comes from, for messages: the config key that raises it."""
    login: LoginSettings | None = field(default=None, repr=False, compare=False)
    """The Azure login the calls use (hooks/login.py; a provider's from its `configure()`); None: the
    environment's (`login.from_environment()`)."""

    @property
    def scope(self) -> str:
        return (self.audience or self.endpoint).rstrip("/") + "/.default"


ON_ARM_UNREACHABLE = ("fail", "warn")
"""What the capture-time checks in preview do when ARM cannot be reached or the credentials fail (hooks.preflight;
the config's onArmUnreachable)."""


@dataclass(frozen=True)
class VmRef:
    """A virtual machine, by its ARM resource ID."""

    subscription_id: str
    resource_group: str
    name: str

    @property
    def id(self) -> str:
        return _compute_id(self.subscription_id, self.resource_group, f"virtualMachines/{self.name}")

    @classmethod
    def parse(cls, resource_id: str) -> VmRef:
        """Parse a VM resource ID; raises ValueError with the expected shape if malformed."""
        return cls(*_parse_id(_VM_ID, resource_id, "a VM", "virtualMachines/<name>"))

    def __str__(self) -> str:
        return f"VM {self.name} (resource group {self.resource_group})"


@dataclass(frozen=True)
class GalleryRef:
    """A gallery, by its ARM resource ID."""

    subscription_id: str
    resource_group: str
    name: str

    @classmethod
    def parse(cls, resource_id: str) -> GalleryRef:
        """Parse a gallery resource ID; raises ValueError with the expected shape if malformed."""
        return cls(*_parse_id(_GALLERY_ID, resource_id, "a gallery", "galleries/<name>"))


@dataclass(frozen=True)
class ImageVersionRef:
    """A gallery image version, by its ARM resource ID (the source of a promoted version)."""

    subscription_id: str
    resource_group: str
    gallery: str
    image: str
    version: str

    @property
    def id(self) -> str:
        path = f"galleries/{self.gallery}/images/{self.image}/versions/{self.version}"
        return _compute_id(self.subscription_id, self.resource_group, path)

    @classmethod
    def parse(cls, resource_id: str) -> ImageVersionRef:
        """Parse an image version resource ID; raises ValueError with the expected shape if malformed."""
        return cls(
            *_parse_id(
                _IMAGE_VERSION_ID,
                resource_id,
                "a gallery image version",
                "galleries/<gallery>/images/<definition>/versions/<Major.Minor.Patch>",
            )
        )

    def same_as(self, other: str) -> bool:
        """True when `other` names this version (ARM IDs compare without case)."""
        return other.strip().rstrip("/").lower() == self.id.lower()

    def __str__(self) -> str:
        where = f"gallery {self.gallery} (resource group {self.resource_group})"
        return f"image version {self.version} of {self.image} in {where}"


def _compute_id(subscription_id: str, resource_group: str, path: str) -> str:
    """The ARM ID of a Microsoft.Compute resource; `path` is what follows `Microsoft.Compute/`."""
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Compute/{path}"


def _parse_id(pattern: re.Pattern[str], resource_id: str, what: str, path: str) -> tuple[str, ...]:
    """The parts of a Microsoft.Compute resource ID matching `pattern`, in its groups' order, the subscription
    (always the first) in lower case; `path` is the ID's shape after `Microsoft.Compute/`, for the error."""
    m = pattern.match(resource_id.strip())
    if not m:
        raise ValueError(
            f"{resource_id!r} is not {what} resource ID; expected /subscriptions/<guid>/resourceGroups/<rg>"
            f"/providers/Microsoft.Compute/{path}"
        )
    subscription, *rest = m.groups()
    return (subscription.lower(), *rest)


SECRET = {"secret": True}
"""Metadata of a secret field of a ProviderInput (always with repr=False): it travels in `credentials()`."""


class ProviderInput:
    """Settings that cross the props boundary as a dynamic resource's inputs, each field under its own name: the
    components put `to_props()` in the plain inputs and `credentials()` in the secret `credentials` input, and the
    provider rebuilds the settings with `from_props(props, credentials)`."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def to_props(self) -> dict[str, Any]:
        """The fields that are not secret, as plain JSON values (tuples as lists, sets as sorted lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if not f.metadata.get("secret")}

    def credentials(self) -> dict[str, str]:
        """The secret fields that are set."""
        return {
            f.name: value
            for f in fields(self)
            if f.metadata.get("secret") and (value := getattr(self, f.name)) is not None
        }

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values, for redaction."""
        return tuple(value for value in self.credentials().values() if value)

    @classmethod
    def from_props(cls, props: Mapping[str, Any], credentials: Mapping[str, Any] | None = None) -> Self:
        """The settings `to_props()` and `credentials()` gave. A key that is missing or null keeps the field's
        default; values are read back as the field's type (the engine hands numbers over as floats, tuples and sets
        as lists)."""
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = ((credentials or {}) if f.metadata.get("secret") else props).get(f.name)
            if value is not None:
                values[f.name] = _typed(hints[f.name], value)
            elif f.default is MISSING and f.default_factory is MISSING:
                where = "credentials" if f.metadata.get("secret") else "props"
                raise ValueError(f"{cls.__name__}: no {f.name} in the {where}")
        return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _typed(hint: Any, value: Any) -> Any:
    """`value` as the type `hint` of a ProviderInput's field (`X | None` as X: a None never gets here)."""
    if isinstance(hint, UnionType):
        (hint,) = (arg for arg in get_args(hint) if arg is not type(None))
    return (get_origin(hint) or hint)(value)


@dataclass(frozen=True)
class SshTarget(ProviderInput):
    """A Linux guest reachable over SSH (the stack file's `sourceVms.<key>.ssh`)."""

    host: str
    """Address the machine running Pulumi can reach (private IP, DNS name, or a forwarded bastion port)."""
    username: str
    """Admin user with passwordless sudo; waagent deletes this user."""
    port: int = 22
    private_key: str | None = field(default=None, repr=False, metadata=SECRET)
    """OpenSSH/PEM private key text (secret)."""
    passphrase: str | None = field(default=None, repr=False, metadata=SECRET)
    """Passphrase of the private key (secret)."""
    password: str | None = field(default=None, repr=False, metadata=SECRET)
    """Password, when no key is used (secret)."""
    host_key: str | None = None
    """Expected host key: `ssh-ed25519 AAAA…` or a known_hosts line. Required unless insecure_ignore_host_key."""
    insecure_ignore_host_key: bool = False
    """Accept any host key (logs a loud warning); only for throwaway test VMs."""
    connect_timeout: float = 600.0
    """Bound in seconds for connecting, retrying with backoff while the VM boots."""
    command_timeout: float = 900.0
    """Bound in seconds for the deprovision script."""
    keep_machine_id: bool = False
    """Leave /etc/machine-id as it is (the stack file's `keepMachineId`). By default deprovisioning empties it, so
    that systemd gives every VM made from the image its own ID at first boot (machine-id(5))."""


@dataclass(frozen=True)
class WinRmTarget(ProviderInput):
    """A Windows guest reachable over WinRM (WS-Management) (the stack file's `sourceVms.<key>.winrm`)."""

    host: str
    username: str
    """Local administrator sysprep runs as (never SYSTEM)."""
    password: str = field(repr=False, metadata=SECRET)
    """Password of that user (secret)."""
    port: int = 5986
    scheme: str = "https"
    """https, or http (the stack file's `useHttps`, false only with `allowUnencryptedHttp`)."""
    transport: str = "ntlm"
    """One of WINRM_TRANSPORTS."""
    ca_certificate: str | None = None
    """PEM text of the CA (or self-signed certificate) that must have issued the listener's certificate."""
    certificate_sha256: str | None = None
    """Pinned SHA-256 fingerprint (hex) of the listener's certificate, instead of a CA."""
    insecure_skip_certificate_validation: bool = False
    """Accept any server certificate (logs a loud warning); only for throwaway test VMs."""
    connect_timeout: float = 600.0
    """Bound in seconds for connecting, retrying with backoff while the VM boots."""


@dataclass(frozen=True)
class SysprepOptions(ProviderInput):
    """How sysprep is run and watched (the stack file's `sourceVms.<key>.winrm.sysprep`)."""

    mode: str = "vm"
    """One of SYSPREP_MODES: the value of /mode: ("vm"), or "" for no /mode flag."""
    extra_args: tuple[str, ...] = ()
    """Extra sysprep flags, each matching SYSPREP_EXTRA_ARG and none of SYSPREP_REFUSED_FLAGS (such as
    `/unattend:...`)."""
    skip_checks: frozenset[str] = frozenset()
    """Names of pre-checks to skip: any of SYSPREP_CHECKS, the one list of all of them (guest-agent first, then the
    six the guest scripts check), in the order they run; the config and hooks.windows.sysprep accept exactly those."""
    agent_timeout: float = 600.0
    """Bound in seconds for the Azure guest agent services to be Running."""
    timeout: float = 3600.0
    """Bound in seconds for sysprep to reach IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE."""
    poll_interval: float = 5.0
    """Seconds between ImageState polls."""


@dataclass(frozen=True)
class GuestResult:
    """What a guest step did."""

    method: str
    """e.g. "waagent -deprovision+user" or "sysprep /oobe /generalize"."""
    detail: str
    """One line for the user: what happened."""
    output_tail: str = ""
    """Last lines of the guest script's output (never contains secrets)."""


# ----------------------------------------------------------------------------------------------------------------
# What a Windows guest's settings may be. The rules live here, in the lowest layer that needs them, once:
# hooks.windows.sysprep.validate reports them for a WinRmTarget and SysprepOptions, the config for the stack file
# (with its key paths). A rule names a setting by its field here; the caller's `Spelling` names it in messages.
# ----------------------------------------------------------------------------------------------------------------

WINRM_TRANSPORTS = ("ntlm", "kerberos", "credssp", "basic")
"""WinRmTarget.transport: pywinrm's transports (kerberos and credssp need the optional extras, pyproject.toml)."""
SYSPREP_MODES = ("vm", "")
"""SysprepOptions.mode: the value of /mode:, or "" for no /mode flag."""
SYSPREP_CHECKS = (
    "guest-agent",
    "server-roles",
    "bitlocker",
    "appx",
    "pending-reboot",
    "cdrom",
    "removable-storage",
)
"""Names accepted in SysprepOptions.skip_checks, in the order hooks.windows.sysprep runs the pre-checks."""
SYSPREP_EXTRA_ARG = re.compile(r"^/[A-Za-z]+(:[A-Za-z0-9]+)?$")
"""One extra sysprep flag: `/flag` or `/flag:value`; no path, space or quote reaches the guest's command line."""
SYSPREP_REFUSED_FLAGS = (
    "/oobe",
    "/generalize",
    "/quiet",
    "/quit",
    "/mode",
    "/audit",
    "/reboot",
    "/shutdown",
    "/unattend",
)
"""Flags an extra argument must not be: the step sets /oobe /generalize /quiet /quit itself (and /mode from mode);
/audit contradicts /oobe; /reboot and /shutdown contradict /quit, which keeps the VM up so completion is seen;
/unattend would bring back an answer file, which the step's clean-up removes from every place Windows looks."""
SYSPREP_EXTRA_ARGS_MAX_LENGTH = 200
"""Bound on the extra flags joined by spaces: start-sysprep.ps1 must stay one cmd.exe command line (8191
characters) with margin."""
CERTIFICATE_PEM_MARKER = "-----BEGIN CERTIFICATE-----"
SHA256_FINGERPRINT = re.compile(r"^([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$")
"""A SHA-256 fingerprint: 64 hex digits, in pairs that may be separated by colons."""


@dataclass(frozen=True)
class Spelling:
    """How a rule's messages name the settings: by the fields of WinRmTarget and SysprepOptions, or as the caller
    spells them (the config: the stack file's camelCase keys)."""

    names: Mapping[str, str] = field(default_factory=dict)
    """Field -> the caller's name for it, where that is not the field's name in the caller's case."""
    camel_case: bool = False
    """The caller writes the fields' names in camelCase (`certificate_sha256` is `certificateSha256`)."""
    https: str = "scheme: https"
    """How the caller says "use https"."""
    http: str = "scheme: http"
    """How the caller says "plain http was chosen"."""

    def __call__(self, setting: str) -> str:
        if setting in self.names:
            return self.names[setting]
        if not self.camel_case:
            return setting
        head, *rest = setting.split("_")
        return head + "".join(word.capitalize() for word in rest)


FIELD_NAMES = Spelling()
"""The fields' own names (hooks.windows.sysprep.validate)."""


@dataclass(frozen=True)
class SettingProblem:
    """One broken rule: the setting it is about, the position in a list setting, and what is wrong."""

    setting: str
    """The field of WinRmTarget or SysprepOptions."""
    message: str
    index: int | None = None

    def where(self, spelling: Spelling) -> str:
        """The setting as the caller names it, with the position in the list (`extra_args[1]`)."""
        return spelling(self.setting) + ("" if self.index is None else f"[{self.index}]")


def winrm_problems(
    transport: str,
    https: bool,
    ca_certificate: str | None,
    certificate_sha256: str | None,
    insecure_skip_certificate_validation: bool,
    spelling: Spelling = FIELD_NAMES,
) -> list[SettingProblem]:
    """What is wrong with how a WinRM connection is secured (None: the setting is not given)."""
    problems = []
    ca, pin, insecure = ca_certificate, certificate_sha256, insecure_skip_certificate_validation
    if transport not in WINRM_TRANSPORTS:
        problems.append(SettingProblem("transport", f"{transport!r} is not one of {_quoted(WINRM_TRANSPORTS)}"))
    if ca is not None and CERTIFICATE_PEM_MARKER not in ca:
        problems.append(SettingProblem("ca_certificate", f"must be a PEM certificate ({CERTIFICATE_PEM_MARKER} ...)"))
    if pin is not None and not SHA256_FINGERPRINT.fullmatch(pin):
        problems.append(SettingProblem("certificate_sha256", f"{pin!r} is not a SHA-256 fingerprint (64 hex digits)"))
        pin = None  # reported: the rules below see no pin
    if insecure and (ca is not None or pin is not None):
        problems.append(
            SettingProblem(
                "insecure_skip_certificate_validation",
                f"contradicts {spelling('ca_certificate')}/{spelling('certificate_sha256')}: remove one (verification "
                "is the safe choice)",
            )
        )
    if not https and (ca is not None or pin is not None or insecure):
        which = "certificate_sha256" if pin is not None else "ca_certificate" if ca is not None else None
        problems.append(
            SettingProblem(
                which or "insecure_skip_certificate_validation",
                f"contradicts {spelling.http}: there is no certificate to verify over http",
            )
        )
    if not https and transport == "basic":
        problems.append(
            SettingProblem("transport", f"basic over http would send the password in clear; use {spelling.https}")
        )
    return problems


def sysprep_problems(mode: str, extra_args: Sequence[str], skip_checks: Sequence[str]) -> list[SettingProblem]:
    """What is wrong with how sysprep is asked to run: the mode, the extra flags, the checks to skip."""
    problems = []
    if mode not in SYSPREP_MODES:
        problems.append(SettingProblem("mode", f"{mode!r} is not one of {_quoted(SYSPREP_MODES)}"))
    for i, arg in enumerate(extra_args):
        if not SYSPREP_EXTRA_ARG.fullmatch(arg):
            problems.append(SettingProblem("extra_args", f"{arg!r} is not a sysprep flag like /flag or /flag:value", i))
    for i, arg in enumerate(extra_args):
        if arg.split(":", 1)[0].lower() in SYSPREP_REFUSED_FLAGS:
            problems.append(SettingProblem("extra_args", f"{arg!r} is set by image-gallery itself; remove it", i))
    length = len(" ".join(extra_args))
    if length > SYSPREP_EXTRA_ARGS_MAX_LENGTH:
        problems.append(
            SettingProblem(
                "extra_args",
                f"{length} characters together, more than {SYSPREP_EXTRA_ARGS_MAX_LENGTH}: the sysprep command must "
                "fit one Windows command line",
            )
        )
    for i, name in enumerate(skip_checks):
        if name not in SYSPREP_CHECKS:
            problems.append(SettingProblem("skip_checks", f"{name!r} is not one of {', '.join(SYSPREP_CHECKS)}", i))
    return problems


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(repr(v) for v in values)
