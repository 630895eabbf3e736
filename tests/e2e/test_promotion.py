"""Promotion dev → prod under the real Pulumi CLI: two stacks of the project on ONE file backend.

`dev` captures a version from a VM; `prod` promotes dev's version through a `pulumi.StackReference` (dev's
`versionIds` output): the prod version is created from dev's version ID, no VM is touched, and a second `up` of
prod changes nothing. A `qa` stack whose definition does not match fails its preview, naming both values.

The source VM is one Azure already reports deallocated and generalized (as in test_a_version_bump_runs_only_the_new
_chain): its guest is never contacted, so no Linux or Windows guest is needed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Workspace
from tests.fakes.arm import DEFAULT_SUBSCRIPTION, FakeArm
from tests.fakes.azure_native_provider import AZURE_NATIVE_VERSION, install_plugin
from tests.unit.stack_configs import HOST_KEY, PRIVATE_KEY

pytestmark = pytest.mark.e2e

DEFINITION = "ubuntu-2204"
PROMOTION_TYPE = "pulumi-python:dynamic/promotion:VersionPromotion"


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeArm]:
    fake = FakeArm(tmp_path_factory.mktemp("arm")).start()
    try:
        yield fake
    finally:
        fake.stop()


def definition(hyper_v_generation: str = "V2") -> dict[str, Any]:
    return {
        "name": DEFINITION,
        "osType": "Linux",
        "hyperVGeneration": hyper_v_generation,
        "securityType": "TrustedLaunch" if hyper_v_generation == "V2" else "Standard",
        "identifier": {"publisher": "contoso", "offer": "ubuntu", "sku": f"22_04-{hyper_v_generation}"},
    }


def base_config(arm: FakeArm, gallery: str) -> dict[str, Any]:
    return {
        "azure-native:subscriptionId": DEFAULT_SUBSCRIPTION,
        "image-gallery:galleryName": gallery,
        "image-gallery:galleryResourceGroup": "rg-gallery",
        "image-gallery:galleryLocation": "westeurope",
        "image-gallery:armEndpoint": arm.endpoint,
        "image-gallery:armPollIntervalSeconds": 1,
        "image-gallery:armOperationTimeoutMinutes": 2,
    }


def workspace(root: Path, engine: Path, arm: FakeArm, stack: str, backend: Path | None = None) -> Workspace:
    env = {**arm.env, "IMAGE_GALLERY_FAKE_ARM_ENDPOINT": arm.endpoint, "ARM_SUBSCRIPTION_ID": DEFAULT_SUBSCRIPTION}
    ws = Workspace(root, engine, env_extra=env, stack=stack, shared_backend=backend)
    install_plugin(ws.home, ws.python, AZURE_NATIVE_VERSION)
    ws.login()
    return ws


def promoting(arm: FakeArm, gallery: str, hyper_v_generation: str = "V2", stack: str = "dev") -> dict[str, Any]:
    version = {
        "version": "1.0.0",
        "sourceVersion": {"stack": stack, "version": f"{DEFINITION}/1.0.0"},
        "targetRegions": [{"name": "westeurope"}],
    }
    return {
        **base_config(arm, gallery),
        "image-gallery:images": [{**definition(hyper_v_generation), "versions": [version]}],
    }


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory, engine: Path, arm: FakeArm) -> Workspace:
    """The dev stack, deployed: version 1.0.0 captured from a VM generalized by an earlier pipeline."""
    vm = arm.add_vm("ubuntu-build-dev", "rg-build", os_type="Linux", power_state="deallocated")
    vm.generalized = True
    ws = workspace(tmp_path_factory.mktemp("dev"), engine, arm, "dev")
    version = {"version": "1.0.0", "sourceVm": "ubuntu-build", "targetRegions": [{"name": "westeurope"}]}
    ssh = {"host": "127.0.0.1", "username": "azureuser", "hostKey": HOST_KEY}  # never contacted
    ws.init_stack(
        {
            **base_config(arm, "dev_gallery"),
            "image-gallery:images": [{**definition(), "versions": [version]}],
            "image-gallery:sourceVms": {"ubuntu-build": {"id": vm.id, "ssh": ssh}},
        }
    )
    ws.set_secret("sourceVms.ubuntu-build.ssh.privateKey", PRIVATE_KEY)
    ws.pulumi("up", "--yes", "--skip-preview", program=True, check=True)
    return ws


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory, engine: Path, arm: FakeArm, dev: Workspace) -> Workspace:
    ws = workspace(tmp_path_factory.mktemp("prod"), engine, arm, "prod", backend=dev.backend)
    ws.init_stack(promoting(arm, "prod_gallery"))
    return ws


def dev_version_id(dev: Workspace) -> str:
    outputs = dev.pulumi("stack", "output", "--json", check=True).json()
    version_id: str = outputs["versionIds"][f"{DEFINITION}/1.0.0"]
    return version_id


def non_get(arm: FakeArm) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in arm.requests if r.method != "GET"]


def test_preview_of_prod_reads_devs_version_and_writes_nothing(prod: Workspace, dev: Workspace, arm: FakeArm) -> None:
    source = dev_version_id(dev)
    arm.requests.clear()
    result = prod.pulumi("preview", "--json", program=True).expect_ok()
    names = {s["urn"].split("::")[-1] for s in result.events()}
    assert {f"{DEFINITION}-1.0.0", f"{DEFINITION}-1.0.0-promotion"} <= names
    assert not any(name.endswith(("-guest", "-vm")) for name in names), "a promoted version has no chain"
    # The promotion checks read dev's version (with its replication) and its definition: GET only.
    reads = [r.path for r in arm.requests if r.method == "GET"]
    assert source in reads and source.rsplit("/versions/", 1)[0] in reads
    assert non_get(arm) == []
    assert not any("/virtualMachines/" in r.path for r in arm.requests)


def test_up_of_prod_copies_devs_version(prod: Workspace, dev: Workspace, arm: FakeArm) -> None:
    source = dev_version_id(dev)
    arm.requests.clear()
    prod.pulumi("up", "--yes", "--skip-preview", program=True).expect_ok()
    puts = arm.bodies("PUT", r"/galleries/prod_gallery/images/ubuntu-2204/versions/1\.0\.0$")
    assert len(puts) == 1
    assert puts[0]["properties"]["storageProfile"] == {"source": {"id": source}}
    assert not any("/virtualMachines/" in r.path for r in arm.requests), "promotion never touches a VM"
    assert not any("dev_gallery" in p for _, p in non_get(arm)), "dev's gallery is only read"
    # Exported like a captured version, so that a further stage can promote it again.
    outputs = prod.pulumi("stack", "output", "--json", check=True).json()
    promoted = outputs["versionIds"][f"{DEFINITION}/1.0.0"]
    assert promoted.endswith("/galleries/prod_gallery/images/ubuntu-2204/versions/1.0.0")
    assert (
        arm.image_versions[(DEFAULT_SUBSCRIPTION, "rg-gallery", "prod_gallery", DEFINITION, "1.0.0")].source_vm_id
        == source
    )


def test_second_up_of_prod_changes_nothing(prod: Workspace, arm: FakeArm) -> None:
    arm.requests.clear()
    prod.pulumi("up", "--yes", "--expect-no-changes", program=True).expect_ok()
    assert non_get(arm) == []


def test_a_mismatched_definition_fails_the_preview_naming_both_values(
    tmp_path_factory: pytest.TempPathFactory, engine: Path, arm: FakeArm, dev: Workspace
) -> None:
    qa = workspace(tmp_path_factory.mktemp("qa"), engine, arm, "qa", backend=dev.backend)
    # The fully qualified name works too (a file backend's organization is `organization`).
    qa.init_stack(promoting(arm, "qa_gallery", hyper_v_generation="V1", stack="organization/image-gallery/dev"))
    arm.requests.clear()
    result = qa.pulumi("preview", program=True)
    assert result.returncode != 0
    assert "images[0].hyperVGeneration" in result.output
    assert "hyperVGeneration V2, but image definition ubuntu-2204 (images[0]) has hyperVGeneration V1" in result.output
    assert non_get(arm) == []


OTHER_SUBSCRIPTION = "00000000-0000-0000-0000-00000000bbbb"
OTHER_TENANT = "99999999-8888-7777-6666-555555555555"


def test_a_version_of_another_tenant_is_promoted_with_its_tenant_as_auxiliary_tenant(
    tmp_path_factory: pytest.TempPathFactory, engine: Path, arm: FakeArm, dev: Workspace
) -> None:
    """A partner's gallery in another tenant (the identity is in both): preview names the missing setting; with
    `azure-native:auxiliaryTenantIds` the checks read the source with a token of its tenant and azure-native sends
    one in x-ms-authorization-auxiliary, which ARM needs for the copy."""
    arm.add_tenant(OTHER_TENANT)
    arm.add_subscription(OTHER_SUBSCRIPTION, OTHER_TENANT)
    arm.add_subscription(DEFAULT_SUBSCRIPTION)
    image = arm.add_gallery_image("partner_gallery", DEFINITION, "rg-partner", OTHER_SUBSCRIPTION)
    source = arm.add_image_version(image, "2.0.0", source_vm_id="/subscriptions/x/vm")
    config = base_config(arm, "xt_gallery")
    version = {"version": "2.0.0", "sourceVersion": {"id": source.id}, "targetRegions": [{"name": "westeurope"}]}
    config["image-gallery:images"] = [{**definition(), "versions": [version]}]
    xt = workspace(tmp_path_factory.mktemp("xt"), engine, arm, "xt", backend=dev.backend)
    xt.init_stack(config)

    def auxiliary(tenants: list[str]) -> None:
        xt.edit_config(lambda c: c.__setitem__("azure-native:auxiliaryTenantIds", tenants))

    arm.requests.clear()
    refused = xt.pulumi("preview", program=True)
    assert refused.returncode != 0
    assert f"of tenant {OTHER_TENANT}" in refused.output and "azure-native:auxiliaryTenantIds" in refused.output
    assert non_get(arm) == []

    auxiliary([OTHER_TENANT])
    accepted = arm.aux_tokens_accepted
    xt.pulumi("up", "--yes", "--skip-preview", program=True).expect_ok()
    puts = arm.bodies("PUT", r"/galleries/xt_gallery/images/ubuntu-2204/versions/2\.0\.0$")
    assert [p["properties"]["storageProfile"] for p in puts] == [{"source": {"id": source.id}}]
    assert arm.aux_tokens_accepted > accepted
    assert not any("partner_gallery" in p for _, p in non_get(arm)), "the partner's gallery is only read"
    state = xt.state_file().read_text()
    assert arm.token not in state and arm.signing_key not in state
