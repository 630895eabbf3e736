"""Plain, typed descriptions of what the imperative side talks to: the ARM endpoint, a VM, and a guest reachable
over SSH or WinRM. Built by the dynamic providers from their inputs; usable directly without Pulumi.

Secret fields (passwords, private keys) are excluded from repr so they cannot leak through logs or errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
    """The Azure login the calls use (hooks/login.py; a provider's from its `configure()`); None: the process's
    (`login.current()`)."""

    @property
    def scope(self) -> str:
        return (self.audience or self.endpoint).rstrip("/") + "/.default"


@dataclass(frozen=True)
class VmRef:
    """A virtual machine, by its ARM resource ID."""

    subscription_id: str
    resource_group: str
    name: str

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.name}"
        )

    @classmethod
    def parse(cls, resource_id: str) -> VmRef:
        """Parse a VM resource ID; raises ValueError with the expected shape if malformed."""
        return cls(*_parse_id(_VM_ID, resource_id, "a VM", "virtualMachines"))

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
        return cls(*_parse_id(_GALLERY_ID, resource_id, "a gallery", "galleries"))


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
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/galleries/{self.gallery}/images/{self.image}/versions/{self.version}"
        )

    @classmethod
    def parse(cls, resource_id: str) -> ImageVersionRef:
        """Parse an image version resource ID; raises ValueError with the expected shape if malformed."""
        m = _IMAGE_VERSION_ID.match(resource_id.strip())
        if not m:
            raise ValueError(
                f"{resource_id!r} is not a gallery image version resource ID; expected /subscriptions/<guid>"
                "/resourceGroups/<rg>/providers/Microsoft.Compute/galleries/<gallery>/images/<definition>"
                "/versions/<Major.Minor.Patch>"
            )
        return cls(m["sub"].lower(), m["rg"], m["gallery"], m["image"], m["version"])

    def same_as(self, other: str) -> bool:
        """True when `other` names this version (ARM IDs compare without case)."""
        return other.strip().rstrip("/").lower() == self.id.lower()

    def __str__(self) -> str:
        where = f"gallery {self.gallery} (resource group {self.resource_group})"
        return f"image version {self.version} of {self.image} in {where}"


def _parse_id(pattern: re.Pattern[str], resource_id: str, what: str, collection: str) -> tuple[str, str, str]:
    """(subscription, resource group, name) of a Microsoft.Compute resource ID matching `pattern`."""
    m = pattern.match(resource_id.strip())
    if not m:
        raise ValueError(
            f"{resource_id!r} is not {what} resource ID; expected /subscriptions/<guid>/resourceGroups/<rg>"
            f"/providers/Microsoft.Compute/{collection}/<name>"
        )
    return m["sub"].lower(), m["rg"], m["name"]


@dataclass(frozen=True)
class SshTarget:
    """A Linux guest reachable over SSH."""

    host: str
    username: str
    port: int = 22
    private_key: str | None = field(default=None, repr=False)
    """OpenSSH/PEM private key text (secret)."""
    passphrase: str | None = field(default=None, repr=False)
    """Passphrase of the private key (secret)."""
    password: str | None = field(default=None, repr=False)
    """Password, when no key is used (secret)."""
    host_key: str | None = None
    """Expected host key: `ssh-ed25519 AAAA…` or a known_hosts line. Required unless insecure_ignore_host_key."""
    insecure_ignore_host_key: bool = False
    """Accept any host key (logs a loud warning)."""
    connect_timeout: float = 600.0
    """Bound in seconds for connecting, retrying with backoff while the VM boots."""
    command_timeout: float = 900.0
    """Bound in seconds for the deprovision script."""

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.private_key, self.passphrase, self.password) if s)


@dataclass(frozen=True)
class WinRmTarget:
    """A Windows guest reachable over WinRM (WS-Management)."""

    host: str
    username: str
    password: str = field(repr=False)
    """Password of the local administrator sysprep runs as (secret)."""
    port: int = 5986
    scheme: str = "https"
    transport: str = "ntlm"
    """ntlm | kerberos | credssp | basic."""
    ca_bundle: str | None = None
    """PEM text of the CA (or self-signed certificate) that must have issued the server certificate."""
    cert_sha256: str | None = None
    """Pinned SHA-256 fingerprint (hex) of the server certificate, instead of a CA."""
    insecure_skip_cert_validation: bool = False
    """Accept any server certificate (logs a loud warning)."""
    connect_timeout: float = 600.0
    """Bound in seconds for connecting, retrying with backoff while the VM boots."""

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password,) if self.password else ()


@dataclass(frozen=True)
class SysprepOptions:
    """How sysprep is run and watched."""

    mode: str = "vm"
    """Value of /mode: ("vm"), or "" for no /mode flag."""
    extra_args: tuple[str, ...] = ()
    """Extra sysprep flags, each matching ^/[A-Za-z]+(:[A-Za-z0-9]+)?$."""
    skip_checks: frozenset[str] = frozenset()
    """Names of pre-checks to skip: guest-agent, server-roles, bitlocker, appx, pending-reboot."""
    agent_timeout: float = 600.0
    """Bound in seconds for the Azure guest agent services to be Running."""
    sysprep_timeout: float = 3600.0
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
