"""The `VersionTestBoot` dynamic resource: the test boot of a new image version (hooks/version_boot.py does the
work).

`VersionTestBoot` is created after its GalleryImageVersion (its `version_id` input is the version's ID): create
boots a throwaway VM from the version and deletes it again; a failed boot fails this resource, and the version
stays as Azure created it. `check` and `diff` never call Azure, so `pulumi preview` touches nothing. A new version
ID replaces it (a new boot); anything else (size, timeout, subnet) is how to boot, and the boot is done.

No secret is an input or an output: the administrator password is made inside `create`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from hooks.providers.base import DynamicProvider, DynamicResource, arm_settings, known, log_for, same_input, user_facing

TEST_BOOT_OUTPUTS = (
    "version_id",
    "vm_name",
    "provisioning_state",
    "agent_status",
    "seconds",
    "leftovers_removed",
    "resource_name",
)
REQUIRED = ("location", "subscription_id", "resource_group", "subnet_id", "vm_size", "timeout", "tag_value")


def request_from(props: Mapping[str, Any]) -> Any:
    """The hooks.version_boot.TestBootRequest of the resource's inputs."""
    from hooks.version_boot import TestBootRequest

    b = props["boot"]
    return TestBootRequest(
        version_id=str(props["version_id"]),
        os_type=str(b["os_type"]),
        os_state=str(b["os_state"]),
        security_type=str(b["security_type"]),
        location=str(b["location"]),
        subscription_id=str(b["subscription_id"]),
        resource_group=str(b["resource_group"]),
        subnet_id=str(b["subnet_id"]),
        vm_size=str(b["vm_size"]),
        admin_username=str(b["admin_username"]),
        timeout=float(b["timeout"]),
        tag_value=str(b["tag_value"]),
        confidential_vm_encryption_type=b.get("confidential_vm_encryption_type"),
        confidential_disk_encryption_set_id=b.get("confidential_disk_encryption_set_id"),
        disallowed_disk_types=tuple(b.get("disallowed_disk_types") or ()),
        path=str(b.get("path") or "images[?].validation"),
    )


class VersionTestBootProvider(DynamicProvider):
    """Boots a throwaway VM from an image version and deletes it (hooks/version_boot.py)."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        # Inputs only: preview never calls Azure for the test boot.
        boot = news.get("boot")
        if not isinstance(boot, Mapping):
            return CheckResult(news, [CheckFailure("boot", "the test boot settings are missing")])
        missing = [k for k in REQUIRED if boot.get(k) in (None, "")]
        if missing:
            return CheckResult(news, [CheckFailure("boot", f"the test boot needs {', '.join(missing)}")])
        return CheckResult(news, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        new_id = news.get("version_id")
        if not known(new_id):
            return DiffResult(changes=True, replaces=["version_id"], delete_before_replace=False)
        replaces = [] if same_input("vm_id", olds.get("version_id"), new_id) else ["version_id"]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        from hooks import version_boot

        log = log_for(props, "test boot")
        request = request_from(props)
        settings = arm_settings(props, self.login_settings())
        outcome = user_facing(log, lambda: version_boot.boot_and_delete(settings, request, log))
        log.info(
            f"{request.version_id} booted: provisioning {outcome.provisioning_state}, guest agent "
            f"{outcome.agent_status}, in {outcome.seconds:.0f}s; the throwaway VM, its disks and NIC are deleted"
        )
        outs = {
            "version_id": request.version_id,
            "vm_name": outcome.vm_name,
            "provisioning_state": outcome.provisioning_state,
            "agent_status": outcome.agent_status,
            "seconds": round(outcome.seconds, 1),
            "leftovers_removed": list(outcome.leftovers_removed),
            "resource_name": log.resource,
        }
        return CreateResult(id_=f"{request.version_id}/testBoot", outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(
            outs={**{k: olds.get(k) for k in TEST_BOOT_OUTPUTS}, "resource_name": news.get("resource_name")}
        )

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # The record of a boot that happened; the throwaway VM is gone by design.
        return ReadResult(id_=id_, outs={k: props.get(k) for k in TEST_BOOT_OUTPUTS})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        log_for(props, "test boot").info("removed from the stack; the test boot left nothing in Azure to delete")


class VersionTestBoot(DynamicResource, module="validation", name="VersionTestBoot"):
    """Boots a throwaway VM from a new image version once, then deletes it (opt-in: `validate: true`)."""

    PROVIDER = VersionTestBootProvider
    OUTPUTS = TEST_BOOT_OUTPUTS

    agent_status: pulumi.Output[str]
