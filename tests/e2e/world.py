"""The world a stack is deployed against in the end-to-end tests and `make demo`: fake ARM (also behind the
azure-native test plugin), a Linux guest reached over SSH (the real sshd + waagent sandbox, or a scripted stand-in
without root), the fake WinRM guest; and the stack config a user would write for them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import trustme

from tests.e2e.harness import Workspace
from tests.fakes.arm import DEFAULT_SUBSCRIPTION, FakeArm, FakeVm
from tests.fakes.azure_native_provider import AZURE_NATIVE_VERSION, install_plugin
from tests.fakes.sandbox import ensure_rootfs, running_sandbox
from tests.fakes.wsman import FakeWsman, GuestModel

GALLERY = "e2e_gallery"
GALLERY_RG = "rg-gallery"
PUBLISHER = "2b1d6bff-ff47-4bfa-8861-9ae9a8dc314f"
SSH_KEY_PATH = "sourceVms.ubuntu-build.ssh.privateKey"
WINRM_PASSWORD_PATH = "sourceVms.win-build.winrm.password"


class LinuxGuest(Protocol):
    """An SSH-reachable Linux guest: the waagent sandbox or the scripted stand-in."""

    host: str
    port: int
    username: str
    private_key: str

    @property
    def host_public_key(self) -> str: ...

    def user_exists(self, name: str) -> bool: ...


@dataclass
class World:
    """The peers one stack is deployed against."""

    arm: FakeArm
    sandbox: LinuxGuest
    wsman: FakeWsman
    guest: GuestModel
    linux_vm: FakeVm
    windows_vm: FakeVm

    def plugin_env(self) -> dict[str, str]:
        return {
            **self.arm.env,
            "IMAGE_GALLERY_FAKE_ARM_ENDPOINT": self.arm.endpoint,
            "ARM_SUBSCRIPTION_ID": DEFAULT_SUBSCRIPTION,
        }

    def non_get(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.arm.requests if r.method != "GET"]


@contextlib.contextmanager
def make_world(tmp: Path) -> Iterator[World]:
    """Start every peer; raises SandboxUnavailable (with the reason) when the waagent sandbox cannot run here."""
    tarball = ensure_rootfs()
    arm = FakeArm(tmp / "arm").start()
    guest = GuestModel()
    wsman = FakeWsman(guest, trustme.CA()).start()
    try:
        with running_sandbox(tmp / "sandbox", tarball) as sandbox:
            linux_vm = arm.add_vm("ubuntu-build-01", "rg-build", os_type="Linux", power_state="running")
            windows_vm = arm.add_vm("win-build-01", "rg-build", os_type="Windows", power_state="running")
            yield World(arm, sandbox, wsman, guest, linux_vm, windows_vm)
    finally:
        wsman.stop()
        arm.stop()


def stack_config(world: World, *, linux: bool = True, windows: bool = True) -> dict[str, Any]:
    """The non-secret config of the e2e stack, as a user writes it into Pulumi.<stack>.yaml."""
    images: list[dict[str, Any]] = []
    source_vms: dict[str, Any] = {}
    if linux:
        images.append(
            {
                "name": "ubuntu-2204",
                "osType": "Linux",
                "hyperVGeneration": "V2",
                "securityType": "TrustedLaunch",
                "identifier": {"publisher": "contoso", "offer": "ubuntu", "sku": "22_04-gen2"},
                "versions": [
                    {"version": "1.0.0", "sourceVm": "ubuntu-build", "targetRegions": [{"name": "westeurope"}]}
                ],
            }
        )
        source_vms["ubuntu-build"] = {
            "id": world.linux_vm.id,
            "ssh": {
                "host": world.sandbox.host,
                "port": world.sandbox.port,
                "username": world.sandbox.username,
                "hostKey": world.sandbox.host_public_key,
                "connectTimeoutMinutes": 0.5,
            },
        }
    if windows:
        images.append(
            {
                "name": "win2022",
                "osType": "Windows",
                "hyperVGeneration": "V2",
                "securityType": "TrustedLaunch",
                "identifier": {"publisher": "contoso", "offer": "windows-server", "sku": "2022-gen2"},
                "versions": [{"version": "1.0.0", "sourceVm": "win-build", "targetRegions": [{"name": "westeurope"}]}],
            }
        )
        source_vms["win-build"] = {
            "id": world.windows_vm.id,
            "winrm": {
                "host": world.wsman.host,
                "port": world.wsman.port,
                "username": world.guest.username,
                # NTLM needs a Windows peer; Basic over TLS with a verified CA exercises the same path.
                "transport": "basic",
                "caCertificate": world.wsman.ca_pem,
                "connectTimeoutMinutes": 0.5,
                "sysprep": {"timeoutMinutes": 2, "agentTimeoutMinutes": 0.5, "pollIntervalSeconds": 0.2},
            },
        }
    return {
        "azure-native:subscriptionId": DEFAULT_SUBSCRIPTION,
        "image-gallery:galleryName": GALLERY,
        "image-gallery:galleryResourceGroup": GALLERY_RG,
        "image-gallery:galleryLocation": "westeurope",
        "image-gallery:publisherPrincipalId": PUBLISHER,
        "image-gallery:armEndpoint": world.arm.endpoint,
        "image-gallery:armPollIntervalSeconds": 1,
        "image-gallery:armOperationTimeoutMinutes": 2,
        "image-gallery:images": images,
        "image-gallery:sourceVms": source_vms,
    }


def new_workspace(
    tmp: Path,
    bin_dir: Path,
    world: World,
    stack: str = "e2e",
    source_rev: str | None = None,
    backend: Path | None = None,
    **config: Any,
) -> Workspace:
    """A logged-in workspace with the stack initialised, configured and its secrets set through the CLI.
    `backend`: the file backend directory of another workspace, to share it."""
    ws = Workspace(
        tmp, bin_dir, env_extra=world.plugin_env(), stack=stack, source_rev=source_rev, shared_backend=backend
    )
    install_plugin(ws.home, ws.python, AZURE_NATIVE_VERSION)
    ws.login()
    cfg = stack_config(world, **config)
    ws.init_stack(cfg)
    if "ubuntu-build" in cfg["image-gallery:sourceVms"]:
        ws.set_secret(SSH_KEY_PATH, world.sandbox.private_key)
    if "win-build" in cfg["image-gallery:sourceVms"]:
        ws.set_secret(WINRM_PASSWORD_PATH, world.guest.password)
    return ws
