"""The test stand-in for the azure-native plugin, started the way the engine starts it (launcher + engine address,
port on the first stdout line) and driven over gRPC against the fake ARM; plus the fake ARM's write routes."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from tests.fakes.arm import FakeArm
from tests.fakes.azure_native_provider import (
    AZURE_NATIVE_VERSION,
    LENIENT_ENV,
    SECRET_SIG,
    SIG,
    UNKNOWN,
    Leniency,
    install_plugin,
    write_launcher,
)

GALLERY = "azure-native:compute:Gallery"
IMAGE = "azure-native:compute:GalleryImage"
VERSION = "azure-native:compute:GalleryImageVersion"
ROLE = "azure-native:authorization:RoleAssignment"
SUB = "00000000-0000-0000-0000-00000000aaaa"
RG = "rg-gallery"
GALLERY_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/galleries/gal"
PRINCIPAL = "11111111-2222-3333-4444-555555555555"
OWNER = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
READER = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/cf7c76d2-98a3-4358-a134-615aa78bf44d"
ASSIGNMENT = "6f0a2c55-0000-4000-8000-000000000001"


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def python(s: struct_pb2.Struct) -> dict[str, Any]:
    values: dict[str, Any] = json_format.MessageToDict(s)
    return values


class Plugin:
    """A running plugin process and a client for it, speaking as the engine does."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    @staticmethod
    def urn(token: str, name: str) -> str:
        return f"urn:pulumi:dev::image-gallery::{token}::{name}"

    def check(self, token: str, news: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
        name = "res"
        answer = self.stub.Check(
            provider_pb2.CheckRequest(
                urn=self.urn(token, name), name=name, type=token, olds=struct(olds or {}), news=struct(news)
            )
        )
        assert not answer.failures, answer.failures
        return python(answer.inputs)

    def create(self, token: str, inputs: dict[str, Any], timeout: float = 0) -> tuple[str, dict[str, Any]]:
        checked = self.check(token, inputs)
        answer = self.stub.Create(
            provider_pb2.CreateRequest(
                urn=self.urn(token, "res"), name="res", type=token, properties=struct(checked), timeout=timeout
            )
        )
        return answer.id, python(answer.properties)

    def diff(
        self, token: str, rid: str, old_inputs: dict[str, Any], outputs: dict[str, Any], news: dict[str, Any]
    ) -> provider_pb2.DiffResponse:
        answer: provider_pb2.DiffResponse = self.stub.Diff(
            provider_pb2.DiffRequest(
                id=rid,
                urn=self.urn(token, "res"),
                name="res",
                type=token,
                olds=struct(outputs),
                old_inputs=struct(old_inputs),
                news=struct(news),
            )
        )
        return answer

    def update(self, token: str, rid: str, outputs: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        answer = self.stub.Update(
            provider_pb2.UpdateRequest(
                id=rid, urn=self.urn(token, "res"), name="res", type=token, olds=struct(outputs), news=struct(news)
            )
        )
        return python(answer.properties)

    def read(self, token: str, rid: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> provider_pb2.ReadResponse:
        answer: provider_pb2.ReadResponse = self.stub.Read(
            provider_pb2.ReadRequest(
                id=rid,
                urn=self.urn(token, "res"),
                name="res",
                type=token,
                inputs=struct(inputs),
                properties=struct(outputs),
            )
        )
        return answer

    def delete(self, token: str, rid: str, outputs: dict[str, Any]) -> None:
        self.stub.Delete(
            provider_pb2.DeleteRequest(
                id=rid, urn=self.urn(token, "res"), name="res", type=token, properties=struct(outputs)
            )
        )


def start_plugin(launcher: Path, env: dict[str, str], stderr: Path) -> tuple[subprocess.Popen[bytes], int]:
    with stderr.open("wb") as err:
        # As the engine does: flags, then the engine's address (only used for logging; nothing listens there).
        process = subprocess.Popen(
            [str(launcher), "--logtostderr", "-v=9", "127.0.0.1:1"], stdout=subprocess.PIPE, stderr=err, env=env
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip().isdigit(), f"first stdout line is not a port: {line!r}; stderr: {stderr.read_text()}"
    return process, int(line)


@pytest.fixture(scope="module")
def shared_arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeArm]:
    """One fake ARM for the module: starting a plugin costs a Python start-up with the Pulumi SDK (~1 s)."""
    fake = FakeArm(tmp_path_factory.mktemp("fake-arm")).start()
    try:
        yield fake
    finally:
        fake.stop()


@contextlib.contextmanager
def started_plugin(arm: FakeArm, workdir: Path, lenient: frozenset[Leniency] = frozenset()) -> Iterator[Plugin]:
    """The plugin, started as the engine starts it, handshaken and configured as the engine does."""
    launcher = write_launcher(workdir / "bin", sys.executable)
    env = {
        **os.environ,
        **arm.env,
        "IMAGE_GALLERY_FAKE_ARM_ENDPOINT": arm.endpoint,
        "IMAGE_GALLERY_FAKE_PROVIDER_POLL_SECONDS": "0.02",
    }
    env.pop("ARM_SUBSCRIPTION_ID", None)
    env.pop(LENIENT_ENV, None)
    if lenient:
        env[LENIENT_ENV] = ",".join(sorted(x.value for x in lenient))
    process, port = start_plugin(launcher, env, workdir / "plugin.stderr")
    client = Plugin(process, port)
    try:
        handshake = client.stub.Handshake(provider_pb2.ProviderHandshakeRequest(engine_address="127.0.0.1:1"))
        assert handshake.accept_secrets and handshake.accept_resources
        configured = client.stub.Configure(
            provider_pb2.ConfigureRequest(
                variables={"azure-native:config:subscriptionId": SUB},
                args=struct({"subscriptionId": SUB, "version": AZURE_NATIVE_VERSION}),
                acceptSecrets=True,
                acceptResources=True,
            )
        )
        assert configured.acceptSecrets and configured.supportsPreview  # preview support is a must with Handshake
        yield client
    finally:
        client.channel.close()
        process.terminate()
        rest, _ = process.communicate(timeout=5)
        assert rest == b"", f"the plugin wrote to stdout after the port: {rest!r}"


@pytest.fixture(scope="module")
def running_plugin(shared_arm: FakeArm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plugin]:
    with started_plugin(shared_arm, tmp_path_factory.mktemp("plugin")) as client:
        yield client


@pytest.fixture
def fake_arm(shared_arm: FakeArm) -> Iterator[FakeArm]:
    """The module's fake ARM, emptied for each test."""
    shared_arm.reset()
    yield shared_arm
    shared_arm.reset()


@pytest.fixture
def plugin(running_plugin: Plugin, fake_arm: FakeArm) -> Plugin:
    return running_plugin


def gallery_inputs(**extra: Any) -> dict[str, Any]:
    return {"galleryName": "gal", "resourceGroupName": RG, "location": "westeurope", **extra}


def image_inputs(**extra: Any) -> dict[str, Any]:
    return {
        "galleryName": "gal",
        "galleryImageName": "img",
        "resourceGroupName": RG,
        "location": "westeurope",
        "osType": "Linux",
        "osState": "Generalized",
        "hyperVGeneration": "V2",
        "architecture": "x64",
        "identifier": {"publisher": "contoso", "offer": "webserver", "sku": "2025"},
        "features": [{"name": "SecurityType", "value": "TrustedLaunch"}],
        "recommended": {"vCPUs": {"min": 2, "max": 8}},
        **extra,
    }


def version_inputs(vm_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "galleryName": "gal",
        "galleryImageName": "img",
        "galleryImageVersionName": "1.0.0",
        "resourceGroupName": RG,
        "location": "westeurope",
        "storageProfile": {"source": {"virtualMachineId": vm_id}},
        "publishingProfile": {
            "targetRegions": [{"name": "westeurope", "regionalReplicaCount": 1, "storageAccountType": "Standard_LRS"}],
            "replicaCount": 1,
        },
        "safetyProfile": {"allowDeletionOfReplicatedLocations": True},
        **extra,
    }


def role_inputs(**extra: Any) -> dict[str, Any]:
    return {
        "scope": GALLERY_ID,
        "principalId": PRINCIPAL,
        "principalType": "ServicePrincipal",
        "roleDefinitionId": OWNER,
        "roleAssignmentName": ASSIGNMENT,
        **extra,
    }


def rpc_error(call: Any, *args: Any, **kw: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kw)
    return caught.value


# --- the plugin ----------------------------------------------------------------------------------------------


def test_plugin_identifies_as_azure_native_and_installs_where_the_engine_looks(plugin: Plugin, tmp_path: Path) -> None:
    assert plugin.stub.GetPluginInfo(empty_pb2.Empty()).version == AZURE_NATIVE_VERSION
    error = rpc_error(plugin.stub.Invoke, provider_pb2.InvokeRequest(tok="azure-native:authorization:getClientConfig"))
    assert "unknown function azure-native:authorization:getClientConfig" in (error.details() or "")

    home = tmp_path / "pulumi-home"
    exe = install_plugin(home, sys.executable)
    assert exe == home / "plugins" / f"resource-azure-native-v{AZURE_NATIVE_VERSION}" / "pulumi-resource-azure-native"
    assert os.access(exe, os.X_OK)
    assert not (home / "plugins" / f"resource-azure-native-v{AZURE_NATIVE_VERSION}.partial").exists()


def test_gallery_create_update_replace_refresh_delete(plugin: Plugin, fake_arm: FakeArm) -> None:
    rid, outs = plugin.create(GALLERY, gallery_inputs(description="v1", tags={"env": "test"}))
    assert rid == GALLERY_ID
    assert outs["id"] == GALLERY_ID and outs["name"] == "gal" and outs["type"] == "Microsoft.Compute/galleries"
    assert outs["provisioningState"] == "Succeeded" and outs["azureApiVersion"] == "2024-03-03"
    assert outs["description"] == "v1" and outs["identifier"]["uniqueName"] and outs["resourceGroupName"] == RG
    assert fake_arm.bodies("PUT", "/galleries/gal$") == [
        {"location": "westeurope", "tags": {"env": "test"}, "properties": {"description": "v1"}}
    ]

    old_inputs = gallery_inputs(description="v1", tags={"env": "test"})
    diff = plugin.diff(GALLERY, rid, old_inputs, outs, gallery_inputs(description="v2", tags={"env": "test"}))
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and list(diff.replaces) == []
    assert list(diff.diffs) == ["description"]
    assert plugin.diff(GALLERY, rid, old_inputs, outs, old_inputs).changes == provider_pb2.DiffResponse.DIFF_NONE
    for key, value in (("location", "northeurope"), ("galleryName", "gal2"), ("resourceGroupName", "rg2")):
        diff = plugin.diff(GALLERY, rid, old_inputs, outs, {**old_inputs, key: value})
        assert list(diff.replaces) == [key]
    diff = plugin.diff(GALLERY, rid, old_inputs, outs, {**old_inputs, "galleryName": UNKNOWN})
    assert list(diff.replaces) == ["galleryName"]  # preview: an unknown name may change

    outs = plugin.update(GALLERY, rid, outs, plugin.check(GALLERY, gallery_inputs(description="v2")))
    assert outs["description"] == "v2" and fake_arm.galleries[(SUB, RG, "gal")].description == "v2"

    refreshed = plugin.read(GALLERY, rid, gallery_inputs(description="v2"), outs)
    assert refreshed.id == rid and python(refreshed.properties)["description"] == "v2"

    fake_arm.add_gallery_image()  # the gallery is not empty: Azure refuses to delete it
    error = rpc_error(plugin.delete, GALLERY, rid, outs)
    assert 'Status=409 Code="CannotDeleteResource"' in (error.details() or "")
    fake_arm.gallery_images.clear()
    plugin.delete(GALLERY, rid, outs)
    assert not fake_arm.galleries
    plugin.delete(GALLERY, rid, outs)  # already gone: fine
    assert plugin.read(GALLERY, rid, gallery_inputs(), outs).id == ""


def test_gallery_image_needs_its_gallery_and_keeps_immutable_properties(plugin: Plugin, fake_arm: FakeArm) -> None:
    error = rpc_error(plugin.create, IMAGE, image_inputs())
    assert 'Status=404 Code="ParentResourceNotFound"' in (error.details() or "")

    plugin.create(GALLERY, gallery_inputs())
    rid, outs = plugin.create(IMAGE, image_inputs())
    assert rid == f"{GALLERY_ID}/images/img"
    assert outs["osState"] == "Generalized" and outs["identifier"]["publisher"] == "contoso"
    assert outs["features"] == [{"name": "SecurityType", "value": "TrustedLaunch"}]
    assert outs["recommended"] == {"vCPUs": {"min": 2, "max": 8}}
    assert fake_arm.bodies("PUT", "/images/img$")[0]["properties"]["recommended"] == {"vCPUs": {"min": 2, "max": 8}}

    diff = plugin.diff(IMAGE, rid, image_inputs(), outs, image_inputs(galleryImageName="img2", description="x"))
    assert list(diff.replaces) == ["galleryImageName"] and sorted(diff.diffs) == ["description", "galleryImageName"]

    # Not a replacement for azure-native, so it is an update: Azure refuses it, as it does.
    diff = plugin.diff(IMAGE, rid, image_inputs(), outs, image_inputs(osState="Specialized"))
    assert list(diff.replaces) == []
    error = rpc_error(plugin.update, IMAGE, rid, outs, image_inputs(osState="Specialized"))
    details = error.details() or ""
    assert 'Status=409 Code="PropertyChangeNotAllowed"' in details and "Changing property 'osState'" in details

    plugin.update(IMAGE, rid, outs, image_inputs(description="now described"))
    assert fake_arm.gallery_images[(SUB, RG, "gal", "img")].extra == {
        "recommended": {"vCPUs": {"min": 2, "max": 8}},
        "description": "now described",
    }


def test_capture_follows_azures_rules_then_succeeds_once_the_vm_is_generalized(
    plugin: Plugin, fake_arm: FakeArm
) -> None:
    vm = fake_arm.add_vm()  # running, not generalized
    plugin.create(GALLERY, gallery_inputs())
    plugin.create(IMAGE, image_inputs())

    error = rpc_error(plugin.create, VERSION, version_inputs(vm.id))
    details = error.details() or ""
    assert 'Status=400 Code="InvalidParameter"' in details
    assert "different OS state ['Specialized'] than the parent gallery image OS state ['Generalized']" in details
    assert 'Target="galleryImageVersion.properties.storageProfile.source.virtualMachineId"' in details
    assert not fake_arm.image_versions

    vm.generalized = True  # generalized, but not deallocated (stopped only)
    vm.power_state = "stopped"
    error = rpc_error(plugin.create, VERSION, version_inputs(vm.id))
    assert 'Status=409 Code="OperationNotAllowed"' in (error.details() or "")
    assert "since the VM is stopped" in (error.details() or "")

    vm.power_state = "deallocated"
    rid, outs = plugin.create(VERSION, version_inputs(vm.id))
    assert rid == f"{GALLERY_ID}/images/img/versions/1.0.0"
    assert outs["provisioningState"] == "Succeeded"
    assert outs["storageProfile"]["source"] == {"virtualMachineId": vm.id}
    assert outs["publishingProfile"]["targetRegions"][0]["regionalReplicaCount"] == 1
    assert outs["safetyProfile"] == {"allowDeletionOfReplicatedLocations": True}
    # The create was a long-running operation, followed to its end.
    assert fake_arm.count("GET", r"/capsOperations/") >= 2
    sent = fake_arm.bodies("PUT", r"/versions/1\.0\.0$")[-1]
    assert sent["properties"]["publishingProfile"]["targetRegions"][0]["regionalReplicaCount"] == 1  # an int

    # Replace decisions: the source forces a new version, publishing changes are updates.
    olds = version_inputs(vm.id)
    diff = plugin.diff(VERSION, rid, olds, outs, version_inputs("/other/vm"))
    assert list(diff.replaces) == ["storageProfile"]
    diff = plugin.diff(VERSION, rid, olds, outs, version_inputs(vm.id, publishingProfile={"replicaCount": 2}))
    assert list(diff.replaces) == [] and list(diff.diffs) == ["publishingProfile"]
    other = fake_arm.add_vm("other-vm", power_state="deallocated", generalized=True)
    error = rpc_error(plugin.update, VERSION, rid, outs, version_inputs(other.id))
    assert 'Code="PropertyChangeNotAllowed"' in (error.details() or "")

    # The definition cannot go while it has versions; the version goes through its own LRO.
    error = rpc_error(plugin.delete, IMAGE, f"{GALLERY_ID}/images/img", {})
    assert 'Status=409 Code="CannotDeleteResource"' in (error.details() or "")
    plugin.delete(VERSION, rid, outs)
    assert not fake_arm.image_versions
    plugin.delete(IMAGE, f"{GALLERY_ID}/images/img", {})


def test_a_version_blocked_before_its_end_of_life_is_not_deleted_until_unblocked(
    plugin: Plugin, fake_arm: FakeArm
) -> None:
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True)
    plugin.create(GALLERY, gallery_inputs())
    plugin.create(IMAGE, image_inputs())
    eol = (datetime.now(UTC) + timedelta(days=180)).strftime("%Y-%m-%dT00:00:00Z")
    publishing = {**version_inputs(vm.id)["publishingProfile"], "endOfLifeDate": eol}
    blocked = version_inputs(
        vm.id,
        publishingProfile=publishing,
        safetyProfile={"allowDeletionOfReplicatedLocations": False, "blockDeletionBeforeEndOfLife": True},
    )
    rid, outs = plugin.create(VERSION, blocked)

    # What `pulumi destroy` (or a replacement) of such a version meets: Azure's refusal, naming the date.
    error = rpc_error(plugin.delete, VERSION, rid, outs)
    details = error.details() or ""
    assert 'Status=409 Code="OperationNotAllowed"' in details
    assert f"cannot be deleted before its end of life date '{eol}'" in details
    assert "blockDeletionBeforeEndOfLife is true" in details
    assert fake_arm.image_versions, "the version is still there"

    # The documented way out: an update of the safety profile (what `pulumi up` does with the key set false).
    safety = {"allowDeletionOfReplicatedLocations": False, "blockDeletionBeforeEndOfLife": False}
    outs = plugin.update(VERSION, rid, outs, {**blocked, "safetyProfile": safety})
    plugin.delete(VERSION, rid, outs)
    assert not fake_arm.image_versions


def test_a_version_past_its_end_of_life_can_be_deleted_even_when_blocked(plugin: Plugin, fake_arm: FakeArm) -> None:
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True)
    plugin.create(GALLERY, gallery_inputs())
    plugin.create(IMAGE, image_inputs())
    rid, outs = plugin.create(VERSION, version_inputs(vm.id))
    version = next(iter(fake_arm.image_versions.values()))
    # As if created long ago: the end of life has passed, so the block no longer holds.
    version.extra["publishingProfile"] = {"endOfLifeDate": "2020-01-01T00:00:00Z"}
    version.extra["safetyProfile"] = {"blockDeletionBeforeEndOfLife": True}
    plugin.delete(VERSION, rid, outs)
    assert not fake_arm.image_versions


@pytest.mark.parametrize(
    ("vm_fields", "image_fields", "message"),
    [
        (
            {"power_state": "deallocated", "generalized": True},
            {"osState": "Specialized"},
            "different OS state ['Generalized'] than the parent gallery image OS state ['Specialized']",
        ),
        (
            {"power_state": "deallocated", "generalized": True, "hyper_v_generation": "V1"},
            {},
            "different Hypervisor generation ['V1'] than the parent gallery image ['V2']",
        ),
        (
            {"power_state": "deallocated", "generalized": True, "os_type": "Windows"},
            {},
            "different OS type ['Windows'] than the parent gallery image OS type ['Linux']",
        ),
    ],
)
def test_capture_rejects_a_source_that_does_not_match_the_definition(
    plugin: Plugin, fake_arm: FakeArm, vm_fields: dict[str, Any], image_fields: dict[str, Any], message: str
) -> None:
    vm = fake_arm.add_vm(**vm_fields)
    plugin.create(GALLERY, gallery_inputs())
    plugin.create(IMAGE, image_inputs(**image_fields))
    error = rpc_error(plugin.create, VERSION, version_inputs(vm.id))
    assert 'Code="InvalidParameter"' in (error.details() or "") and message in (error.details() or "")


def test_capture_of_a_deleted_vm_fails_and_a_deleted_version_refreshes_to_nothing(
    plugin: Plugin, fake_arm: FakeArm
) -> None:
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True)
    plugin.create(GALLERY, gallery_inputs())
    plugin.create(IMAGE, image_inputs())
    rid, outs = plugin.create(VERSION, version_inputs(vm.id))

    fake_arm.image_versions.clear()  # deleted behind Pulumi's back
    assert plugin.read(VERSION, rid, version_inputs(vm.id), outs).id == ""

    fake_arm.remove_vm()
    assert not fake_arm.vms
    error = rpc_error(plugin.create, VERSION, version_inputs(vm.id))
    assert 'Status=404 Code="NotFound"' in (error.details() or "")


def test_a_capture_that_outlives_its_custom_timeout_is_a_partial_failure(plugin: Plugin, fake_arm: FakeArm) -> None:
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True)
    plugin.create(GALLERY, gallery_inputs())
    plugin.create(IMAGE, image_inputs())
    fake_arm.hang_next_lro()
    error = rpc_error(plugin.create, VERSION, version_inputs(vm.id), timeout=0.3)
    details = error.details() or ""
    assert "timed out waiting for creating GalleryImageVersion" in details and "last status InProgress" in details
    # The version exists in ARM (still Creating): the engine gets it as a partial failure, so it is not orphaned.
    trailers = dict(error.trailing_metadata() or ())
    assert "grpc-status-details-bin" in trailers
    assert f"{GALLERY_ID}/images/img/versions/1.0.0".encode() in trailers["grpc-status-details-bin"]


def test_role_assignment_needs_its_scope_and_cannot_change_principal(plugin: Plugin, fake_arm: FakeArm) -> None:
    error = rpc_error(plugin.create, ROLE, role_inputs())
    assert 'Status=404 Code="ResourceNotFound"' in (error.details() or "")

    plugin.create(GALLERY, gallery_inputs())
    rid, outs = plugin.create(ROLE, role_inputs(description="publisher"))
    assert rid == f"{GALLERY_ID}/providers/Microsoft.Authorization/roleAssignments/{ASSIGNMENT}"
    assert outs["principalId"] == PRINCIPAL and outs["scope"] == GALLERY_ID and outs["roleDefinitionId"] == OWNER
    assert outs["azureApiVersion"] == "2022-04-01" and outs["type"] == "Microsoft.Authorization/roleAssignments"

    olds = role_inputs(description="publisher")
    for key, value in (("principalId", "99999999-2222-3333-4444-555555555555"), ("roleDefinitionId", READER)):
        assert list(plugin.diff(ROLE, rid, olds, outs, {**olds, key: value}).replaces) == [key]
    assert list(plugin.diff(ROLE, rid, olds, outs, {**olds, "description": "x"}).replaces) == []

    error = rpc_error(plugin.update, ROLE, rid, outs, role_inputs(roleDefinitionId=READER))
    assert 'Code="RoleAssignmentUpdateNotPermitted"' in (error.details() or "")
    twin = role_inputs(roleAssignmentName="6f0a2c55-0000-4000-8000-000000000002")
    error = rpc_error(plugin.create, ROLE, twin)
    assert 'Status=409 Code="RoleAssignmentExists"' in (error.details() or "")

    assert plugin.read(ROLE, rid, olds, outs).id == rid
    plugin.delete(ROLE, rid, outs)
    assert not fake_arm.role_assignments
    assert plugin.read(ROLE, rid, olds, outs).id == ""

    # Without a name, Check picks a GUID (and keeps it on later checks).
    named = plugin.check(ROLE, {k: v for k, v in role_inputs().items() if k != "roleAssignmentName"})
    assert len(named["roleAssignmentName"]) == 36
    again = plugin.check(ROLE, {k: v for k, v in role_inputs().items() if k != "roleAssignmentName"}, olds=named)
    assert again["roleAssignmentName"] == named["roleAssignmentName"]


def test_secret_inputs_reach_arm_plain_and_come_back_secret(plugin: Plugin, fake_arm: FakeArm) -> None:
    hidden = {SIG: SECRET_SIG, "value": "s3cret description"}
    _, outs = plugin.create(GALLERY, gallery_inputs(description=hidden))
    assert fake_arm.galleries[(SUB, RG, "gal")].description == "s3cret description"
    assert outs["description"] == hidden
    assert outs["name"] == "gal"  # not secret


def test_preview_calls_nothing_in_arm(plugin: Plugin, fake_arm: FakeArm) -> None:
    inputs = plugin.check(GALLERY, gallery_inputs(galleryName=UNKNOWN))
    answer = plugin.stub.Create(
        provider_pb2.CreateRequest(
            urn=Plugin.urn(GALLERY, "res"), name="res", type=GALLERY, properties=struct(inputs), preview=True
        )
    )
    outs = python(answer.properties)
    assert answer.id == "" and outs["galleryName"] == UNKNOWN and outs["provisioningState"] == UNKNOWN
    assert fake_arm.non_get_requests() == []


# --- as strict as azure-native: each rule, and the lenient stand-in it would let through ---------------------


@pytest.fixture(scope="module")
def lenient_plugin(
    shared_arm: FakeArm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[Leniency], Plugin]]:
    """A stand-in with one strict behaviour turned off (started on first use, kept for the module): what each
    rule's test must tell apart from the strict one."""
    with contextlib.ExitStack() as stack:
        started: dict[Leniency, Plugin] = {}

        def get(leniency: Leniency) -> Plugin:
            if leniency not in started:
                workdir = tmp_path_factory.mktemp(f"lenient-{leniency.value}")
                started[leniency] = stack.enter_context(started_plugin(shared_arm, workdir, frozenset({leniency})))
            return started[leniency]

        yield get


STRICTNESS = pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])


def pick(strict: bool, plugin: Plugin, lenient_plugin: Callable[[Leniency], Plugin], leniency: Leniency) -> Plugin:
    return plugin if strict else lenient_plugin(leniency)


@STRICTNESS
def test_create_refuses_a_resource_that_already_exists(
    strict: bool, plugin: Plugin, lenient_plugin: Callable[[Leniency], Plugin], fake_arm: FakeArm
) -> None:
    """A killed run's version exists in Azure (created from another VM, still Creating): azure-native refuses to
    create it again, with its own message and without a PUT; a lenient stand-in would PUT over it."""
    client = pick(strict, plugin, lenient_plugin, Leniency.CREATE_OVER_EXISTING)
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True)
    other = fake_arm.add_vm("other-vm", power_state="deallocated", generalized=True)
    image = fake_arm.add_gallery_image("gal", "img", RG, SUB, location="westeurope")
    fake_arm.add_image_version(image, "1.0.0", source_vm_id=other.id, provisioning_state="Creating")
    version_id = f"{GALLERY_ID}/images/img/versions/1.0.0"
    if strict:
        error = rpc_error(client.create, VERSION, version_inputs(vm.id))
        assert error.details() == f"cannot create already existing resource '{version_id}'"
        assert fake_arm.count("PUT", "/versions/") == 0
        assert fake_arm.image_versions[(SUB.lower(), RG, "gal", "img", "1.0.0")].source_vm_id == other.id
        # The same for a gallery, a definition and a role assignment.
        for token, inputs, rid in (
            (GALLERY, gallery_inputs(), GALLERY_ID),
            (IMAGE, image_inputs(), f"{GALLERY_ID}/images/img"),
        ):
            assert rpc_error(client.create, token, inputs).details() == (
                f"cannot create already existing resource '{rid}'"
            )
        client.create(ROLE, role_inputs())
        role_id = f"{GALLERY_ID}/providers/Microsoft.Authorization/roleAssignments/{ASSIGNMENT}"
        assert rpc_error(client.create, ROLE, role_inputs()).details() == (
            f"cannot create already existing resource '{role_id}'"
        )
        assert fake_arm.count("PUT") == 1  # only the role assignment's first create
    else:
        error = rpc_error(client.create, VERSION, version_inputs(vm.id))
        # Let through to ARM, which only refuses the change of source here; the PUT was sent.
        assert "already existing" not in (error.details() or "")
        assert fake_arm.count("PUT", "/versions/") == 1


@STRICTNESS
def test_read_of_a_deleted_resource_drops_it(
    strict: bool, plugin: Plugin, lenient_plugin: Callable[[Leniency], Plugin], fake_arm: FakeArm
) -> None:
    client = pick(strict, plugin, lenient_plugin, Leniency.READ_KEEPS_GONE)
    rid, outs = client.create(GALLERY, gallery_inputs())
    fake_arm.galleries.clear()  # deleted behind Pulumi's back
    answer = client.read(GALLERY, rid, gallery_inputs(), outs)
    if strict:
        assert answer.id == ""  # refresh drops it from the state
    else:
        assert answer.id == rid  # refresh would keep a resource Azure no longer has


@STRICTNESS
def test_update_sends_the_whole_body(
    strict: bool, plugin: Plugin, lenient_plugin: Callable[[Leniency], Plugin], fake_arm: FakeArm
) -> None:
    """The program stops setting the description and a tag: after the update Azure has neither."""
    client = pick(strict, plugin, lenient_plugin, Leniency.UPDATE_MERGES)
    first = gallery_inputs(description="old", tags={"env": "test", "team": "a"})
    rid, outs = client.create(GALLERY, first)
    news = client.check(GALLERY, gallery_inputs(tags={"env": "test"}))
    client.stub.Update(
        provider_pb2.UpdateRequest(
            id=rid,
            urn=Plugin.urn(GALLERY, "res"),
            name="res",
            type=GALLERY,
            olds=struct(outs),
            old_inputs=struct(first),
            news=struct(news),
        )
    )
    gallery = fake_arm.galleries[(SUB.lower(), RG, "gal")]
    sent = fake_arm.bodies("PUT", "/galleries/gal$")[-1]
    if strict:
        assert sent == {"location": "westeurope", "tags": {"env": "test"}, "properties": {}}
        assert gallery.description is None and gallery.tags == {"env": "test"}
    else:
        assert gallery.description == "old" and gallery.tags == {"env": "test"}


@STRICTNESS
def test_delete_returns_once_the_resource_is_gone(
    strict: bool, plugin: Plugin, lenient_plugin: Callable[[Leniency], Plugin], fake_arm: FakeArm
) -> None:
    """A version's delete is a long-running operation: azure-native waits for it, so the definition's delete
    right after it (what `pulumi destroy` does next) finds the definition empty."""
    client = pick(strict, plugin, lenient_plugin, Leniency.DELETE_NO_WAIT)
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True)
    client.create(GALLERY, gallery_inputs())
    client.create(IMAGE, image_inputs())
    rid, outs = client.create(VERSION, version_inputs(vm.id))
    fake_arm.lro_polls = 3
    client.delete(VERSION, rid, outs)
    if strict:
        assert not fake_arm.image_versions
        client.delete(IMAGE, f"{GALLERY_ID}/images/img", {})
    else:
        assert next(iter(fake_arm.image_versions.values())).provisioning_state == "Deleting"
        error = rpc_error(client.delete, IMAGE, f"{GALLERY_ID}/images/img", {})
        assert 'Code="CannotDeleteResource"' in (error.details() or "")


@STRICTNESS
def test_delete_counts_not_found_as_deleted(
    strict: bool, plugin: Plugin, lenient_plugin: Callable[[Leniency], Plugin], fake_arm: FakeArm
) -> None:
    """Gone already (ARM answers the DELETE 404), or gone while its operation was followed (the operation URL answers
    404 ResourceNotFound): both are a successful delete for azure-native."""
    client = pick(strict, plugin, lenient_plugin, Leniency.DELETE_NOT_FOUND_FAILS)
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True)
    client.create(GALLERY, gallery_inputs())
    client.create(IMAGE, image_inputs())
    rid, outs = client.create(VERSION, version_inputs(vm.id))
    not_found = {"error": {"code": "ResourceNotFound", "message": f"The Resource '{rid}' was not found."}}
    fake_arm.add_fault(404, method="DELETE", path="/versions/1.0.0", body=not_found)
    if strict:
        client.delete(VERSION, rid, outs)
    else:
        assert 'Status=404 Code="ResourceNotFound"' in (rpc_error(client.delete, VERSION, rid, outs).details() or "")

    polls = fake_arm.count("GET", "/capsOperations/")
    fake_arm.add_fault(404, method="GET", path="/capsOperations/", body=not_found)
    if strict:
        client.delete(VERSION, rid, outs)  # the 202 was followed, and its 404 ended the wait as done
        assert fake_arm.count("GET", "/capsOperations/") == polls + 1
    else:
        assert 'Status=404 Code="ResourceNotFound"' in (rpc_error(client.delete, VERSION, rid, outs).details() or "")


@STRICTNESS
def test_a_replacement_deletes_the_old_resource_first(
    strict: bool, plugin: Plugin, lenient_plugin: Callable[[Leniency], Plugin], fake_arm: FakeArm
) -> None:
    """A replaced gallery keeps its name (the name is the ID): created first, the replacement would meet the old one
    and be refused as already existing. azure-native has the engine delete it first."""
    client = pick(strict, plugin, lenient_plugin, Leniency.REPLACE_CREATES_FIRST)
    rid, outs = client.create(GALLERY, gallery_inputs())
    diff = client.diff(GALLERY, rid, gallery_inputs(), outs, gallery_inputs(location="northeurope"))
    assert list(diff.replaces) == ["location"]
    assert diff.deleteBeforeReplace is strict
    no_change = client.diff(GALLERY, rid, gallery_inputs(), outs, gallery_inputs(description="d"))
    assert not no_change.deleteBeforeReplace


def test_a_second_assignment_of_a_role_under_another_name_is_refused(
    plugin: Plugin, fake_arm: FakeArm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ARM allows one assignment of a role to a principal at a scope: a second one under a new name (a killed run's
    assignment, and a create with a fresh GUID) is 409 RoleAssignmentExists, naming the existing one."""
    plugin.create(GALLERY, gallery_inputs())
    plugin.create(ROLE, role_inputs())
    twin = role_inputs(roleAssignmentName="6f0a2c55-0000-4000-8000-000000000002")
    details = rpc_error(plugin.create, ROLE, twin).details() or ""
    assert 'Status=409 Code="RoleAssignmentExists"' in details
    assert f"The ID of the existing role assignment is {ASSIGNMENT.replace('-', '')}." in details
    assert len(fake_arm.role_assignments) == 1
    # Another role, or another principal, at the same scope is a different assignment.
    plugin.create(ROLE, role_inputs(roleAssignmentName="6f0a2c55-0000-4000-8000-000000000003", roleDefinitionId=READER))
    assert len(fake_arm.role_assignments) == 2

    # A lenient ARM (no uniqueness rule) would have let the twin in.
    monkeypatch.setattr(fake_arm, "_same_assignment", lambda scope, principal, role: None)
    plugin.create(ROLE, twin)
    assert len(fake_arm.role_assignments) == 3


# --- the fake ARM on its own ---------------------------------------------------------------------------------


def arm_call(fake: FakeArm, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    context = ssl.create_default_context(cafile=str(fake.ca_path))
    connection = http.client.HTTPSConnection("127.0.0.1", fake.port, context=context, timeout=5)
    headers = {"Authorization": f"Bearer {fake.token}", "Content-Type": "application/json"}
    connection.request(
        method, f"{path}?api-version=2024-03-03", json.dumps(body) if body is not None else None, headers
    )
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return response.status, json.loads(raw) if raw else None


def test_fake_arm_gallery_routes_answer_like_azure(fake_arm: FakeArm) -> None:
    path = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/galleries/gal"
    status, body = arm_call(fake_arm, "GET", path)
    assert status == 404 and body["error"]["code"] == "ResourceNotFound"
    status, body = arm_call(fake_arm, "PUT", f"{path}/images/img", {"location": "westeurope", "properties": {}})
    assert status == 404 and body["error"]["code"] == "ParentResourceNotFound"
    status, body = arm_call(fake_arm, "PUT", path, {"location": "westeurope", "properties": {}})
    assert status == 201 and body["properties"]["provisioningState"] == "Succeeded"
    status, _ = arm_call(fake_arm, "PUT", path, {"location": "westeurope", "properties": {"description": "d"}})
    assert status == 200
    status, body = arm_call(fake_arm, "PUT", path, {"location": "northeurope", "properties": {}})
    assert status == 400 and body["error"]["code"] == "InvalidResourceLocation"

    image = {
        "location": "westeurope",
        "properties": {
            "osType": "Linux",
            "osState": "Generalized",
            "identifier": {"publisher": "p", "offer": "o", "sku": "s"},
        },
    }
    assert arm_call(fake_arm, "PUT", f"{path}/images/img", image)[0] == 201
    assert fake_arm.gallery_images[(SUB, RG, "gal", "img")].hyper_v_generation == "V1"  # Azure's default
    status, body = arm_call(fake_arm, "PUT", f"{path}/images/img2", image)
    assert status == 409  # the identifier is unique in a gallery

    vm = fake_arm.add_vm(power_state="deallocated", generalized=True, hyper_v_generation="V1")
    version = {"location": "westeurope", "properties": {"storageProfile": {"source": {"id": vm.id}}}}
    fake_arm.lro_polls = 2
    status, body = arm_call(fake_arm, "PUT", f"{path}/images/img/versions/1.0.0", version)
    assert status == 201 and body["properties"]["provisioningState"] == "Creating"
    assert body["properties"]["storageProfile"]["source"] == {"id": vm.id}  # as sent (older API field)
    operation = fake_arm.operations[next(iter(fake_arm.operations))]
    assert operation.vm is None and operation.status == "InProgress"
    assert fake_arm.image_versions[(SUB, RG, "gal", "img", "1.0.0")].provisioning_state == "Creating"
    status, body = arm_call(fake_arm, "PUT", f"{path}/images/img/versions/1.0", version)
    assert status == 400 and body["error"]["target"] == "galleryImageVersionName"

    assert arm_call(fake_arm, "DELETE", path)[0] == 409
    assert arm_call(fake_arm, "DELETE", f"{path}/images/nothing")[0] == 204
    vm_path = vm.id
    assert arm_call(fake_arm, "DELETE", vm_path)[0] == 200 and not fake_arm.vms


def test_fake_arm_serves_standalone_until_sigterm(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps([{"name": "vm1", "power_state": "deallocated", "generalized": True}]))
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.arm", "serve", "--workdir", str(tmp_path / "arm"), "--seed", str(seed)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    info_path = tmp_path / "arm" / "fake-arm.json"
    deadline = time.monotonic() + 10
    while not info_path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        info = json.loads(info_path.read_text())
        assert set(info) == {"endpoint", "ca_path", "bin_dir", "token", "subscription_id", "pid"}
        assert info["pid"] == process.pid
        context = ssl.create_default_context(cafile=info["ca_path"])
        port = int(info["endpoint"].rsplit(":", 1)[1])
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
        rg_path = f"/subscriptions/{info['subscription_id']}/resourceGroups/rg-src"
        vm_path = f"{rg_path}/providers/Microsoft.Compute/virtualMachines/vm1"
        connection.request(
            "GET",
            f"{vm_path}/instanceView?api-version=2024-07-01",
            headers={"Authorization": f"Bearer {info['token']}"},
        )
        view = json.loads(connection.getresponse().read())
        connection.close()
        assert {"code": "OSState/generalized", "level": "Info", "displayStatus": "VM generalized"} in view["statuses"]
        logged = [json.loads(line) for line in (tmp_path / "arm" / "requests.jsonl").read_text().splitlines()]
        assert logged[-1]["path"] == f"{vm_path}/instanceView" and logged[-1]["status"] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err.decode()


def test_a_copy_from_another_tenant_needs_auxiliary_tenant_ids(plugin: Plugin, fake_arm: FakeArm) -> None:
    """Like azure-native since v3.20.0: with auxiliaryTenantIds (stack setting or ARM_AUXILIARY_TENANT_IDS, a JSON
    array) a token of each tenant goes in x-ms-authorization-auxiliary; without it ARM refuses the copy."""
    other_sub, other_tenant = "00000000-0000-0000-0000-00000000bbbb", "99999999-8888-7777-6666-555555555555"
    fake_arm.add_tenant(other_tenant)
    fake_arm.add_subscription(other_sub, other_tenant)
    fake_arm.add_subscription(SUB)
    dev = fake_arm.add_gallery_image("dev_gallery", "img", "rg-dev", other_sub)
    source = fake_arm.add_image_version(dev, "1.0.0", source_vm_id="/subscriptions/x/vm")
    plugin.create(GALLERY, gallery_inputs())
    plugin.create(IMAGE, image_inputs())
    inputs = version_inputs("unused", storageProfile={"source": {"id": source.id}})
    refused = rpc_error(plugin.create, VERSION, inputs)
    assert 'Status=403 Code="LinkedAuthorizationFailed"' in str(refused.details())
    assert f"linked subscription '{other_sub}'" in str(refused.details())

    def configure(variables: dict[str, str]) -> None:
        plugin.stub.Configure(
            provider_pb2.ConfigureRequest(
                variables={"azure-native:config:subscriptionId": SUB, **variables},
                args=struct({"subscriptionId": SUB, "version": AZURE_NATIVE_VERSION}),
                acceptSecrets=True,
                acceptResources=True,
            )
        )

    configure({"azure-native:config:auxiliaryTenantIds": json.dumps([other_tenant])})
    try:
        _, outputs = plugin.create(VERSION, inputs)
    finally:
        configure({})
    assert outputs["storageProfile"]["source"]["id"] == source.id
    assert fake_arm.aux_tokens_accepted >= 1
    assert any(call[-2:] == ["--tenant", other_tenant] for call in fake_arm.az_calls())
