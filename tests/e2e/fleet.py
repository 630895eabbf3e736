"""A fleet of Windows source VMs, each with its own fake WinRM guest whose sysprep takes a while, for the
parallelism test and `make bench` (N chains side by side under the real CLI)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

from tests.e2e.harness import Workspace
from tests.fakes.arm import DEFAULT_SUBSCRIPTION, FakeArm, FakeVm
from tests.fakes.azure_native_provider import AZURE_NATIVE_VERSION, install_plugin
from tests.fakes.wsman import FakeWsman, GuestModel, SysprepBehaviour


@dataclass
class Fleet:
    arm: FakeArm
    guests: list[GuestModel]
    servers: list[FakeWsman]
    vms: list[FakeVm]
    ca_pem: str

    def plugin_env(self) -> dict[str, str]:
        return {
            **self.arm.env,
            "IMAGE_GALLERY_FAKE_ARM_ENDPOINT": self.arm.endpoint,
            "ARM_SUBSCRIPTION_ID": DEFAULT_SUBSCRIPTION,
        }


@contextlib.contextmanager
def windows_fleet(tmp: Path, size: int, sysprep_seconds: float, deallocate_polls: int) -> Iterator[Fleet]:
    """`size` running Windows VMs; sysprep runs `sysprep_seconds`, a deallocation `deallocate_polls` polls."""
    arm = FakeArm(tmp / "arm").start()
    arm.lro_polls = deallocate_polls
    ca = trustme.CA()
    guests = [GuestModel() for _ in range(size)]
    for guest in guests:
        guest.sysprep = SysprepBehaviour(undeployable_after=0.2, runtime=sysprep_seconds)
    servers = [FakeWsman(guest, ca).start() for guest in guests]
    try:
        vms = [arm.add_vm(f"win-{i:02d}", "rg-build", os_type="Windows", power_state="running") for i in range(size)]
        yield Fleet(arm, guests, servers, vms, ca.cert_pem.bytes().decode())
    finally:
        for server in servers:
            server.stop()
        arm.stop()


def fleet_config(fleet: Fleet, parallel_hosts: int | None = None) -> dict[str, Any]:
    versions = [
        {"version": f"1.0.{i}", "sourceVm": f"win-{i:02d}", "targetRegions": [{"name": "westeurope"}]}
        for i in range(len(fleet.vms))
    ]
    sources = {
        f"win-{i:02d}": {
            "id": vm.id,
            "winrm": {
                "host": server.host,
                "port": server.port,
                "username": guest.username,
                "transport": "basic",
                "caCertificate": fleet.ca_pem,
                "connectTimeoutMinutes": 0.5,
                "sysprep": {"timeoutMinutes": 2, "agentTimeoutMinutes": 0.5, "pollIntervalSeconds": 1},
            },
        }
        for i, (vm, server, guest) in enumerate(zip(fleet.vms, fleet.servers, fleet.guests, strict=True))
    }
    config: dict[str, Any] = {
        "azure-native:subscriptionId": DEFAULT_SUBSCRIPTION,
        "image-gallery:galleryName": "fleet_gallery",
        "image-gallery:galleryResourceGroup": "rg-gallery",
        "image-gallery:galleryLocation": "westeurope",
        "image-gallery:armEndpoint": fleet.arm.endpoint,
        "image-gallery:armPollIntervalSeconds": 1,
        "image-gallery:armOperationTimeoutMinutes": 2,
        "image-gallery:images": [
            {
                "name": "win2022",
                "osType": "Windows",
                "hyperVGeneration": "V2",
                "securityType": "TrustedLaunch",
                "identifier": {"publisher": "contoso", "offer": "windows-server", "sku": "2022-gen2"},
                "versions": versions,
            }
        ],
        "image-gallery:sourceVms": sources,
    }
    if parallel_hosts is not None:
        config["image-gallery:parallelHosts"] = parallel_hosts
    return config


def fleet_workspace(tmp: Path, bin_dir: Path, fleet: Fleet, parallel_hosts: int | None = None) -> Workspace:
    ws = Workspace(tmp, bin_dir, env_extra=fleet.plugin_env(), stack="fleet")
    install_plugin(ws.home, ws.python, AZURE_NATIVE_VERSION)
    ws.login()
    ws.init_stack(fleet_config(fleet, parallel_hosts))
    for i, guest in enumerate(fleet.guests):
        ws.set_secret(f"sourceVms.win-{i:02d}.winrm.password", guest.password)
    return ws
