"""`python -m commands.replication` against the local HTTPS fake of ARM: a stack file in a temporary project
directory, the real azure-mgmt-compute client and DefaultAzureCredential logging in through the fake `az`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from commands import replication
from commands.replication import main
from hooks import arm
from hooks.log import Log
from hooks.targets import ImageVersionRef

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm, FakeGalleryImage

pytest_plugins = ["tests.fakes.arm"]

PROJECT = Path(__file__).resolve().parents[2]
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFaKFZi9htO73Htd10oPJLzAGq+3TezxrfbeWW6DGXDr"
FAST = ["--interval", "0.01"]


def write_stack(
    root: Path,
    fake: FakeArm,
    images: dict[str, list[str]],
    subscription: bool = True,
    create_timeouts: dict[str, float] | None = None,
) -> Path:
    """A project directory with the real Pulumi.yaml and a Pulumi.test.yaml declaring, per image, its versions,
    each replicated to westeurope and northeurope (createTimeoutMinutes per image from `create_timeouts`, else
    180). The SSH key is a `secure:` value nobody can decrypt."""
    root.mkdir(exist_ok=True)
    shutil.copy(PROJECT / "Pulumi.yaml", root / "Pulumi.yaml")
    vm_base = f"/subscriptions/{fake.subscription_id}/resourceGroups/rg-build/providers/Microsoft.Compute"
    config: dict[str, Any] = {
        "image-gallery:galleryName": "gal",
        "image-gallery:galleryResourceGroup": "rg-gallery",
        "image-gallery:galleryLocation": "westeurope",
        "image-gallery:armEndpoint": fake.endpoint,
        "image-gallery:images": [
            {
                "name": name,
                "osType": "Linux",
                "identifier": {"publisher": "contoso", "offer": name, "sku": "1"},
                "versions": [
                    {
                        "version": version,
                        "sourceVm": f"{name}-{version}",
                        "targetRegions": [{"name": "westeurope"}, {"name": "northeurope"}],
                        "createTimeoutMinutes": (create_timeouts or {}).get(name, 180),
                    }
                    for version in versions
                ],
            }
            for name, versions in images.items()
        ],
        "image-gallery:sourceVms": {
            f"{name}-{version}": {
                "id": f"{vm_base}/virtualMachines/{name}-{version.replace('.', '-')}",
                "ssh": {
                    "host": "10.0.0.4",
                    "username": "azureuser",
                    "hostKey": HOST_KEY,
                    "privateKey": {"secure": "v1:x"},
                },
            }
            for name, versions in images.items()
            for version in versions
        },
    }
    if subscription:
        config["azure-native:subscriptionId"] = fake.subscription_id
    (root / "Pulumi.test.yaml").write_text(yaml.safe_dump({"config": config}))
    return root


def run(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["test", *args], root=root)
    out, err = capsys.readouterr()
    return code, out, err


def replicating(fake: FakeArm, image: FakeGalleryImage, **kw: Any) -> None:
    """Version 1.0.0 of `image`, as Azure reports it while the capture call replicates (display region names)."""
    fake.add_image_version(image, "1.0.0", provisioning_state="Creating", **kw)


@pytest.fixture
def image(fake_arm_env: FakeArm) -> FakeGalleryImage:
    return fake_arm_env.add_gallery_image(name="ubuntu")


def test_snapshot_shows_each_region_of_a_replicating_version(
    fake_arm_env: FakeArm, image: FakeGalleryImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_stack(tmp_path / "project", fake_arm_env, {"ubuntu": ["1.0.0"]})
    replicating(
        fake_arm_env,
        image,
        replication={"West Europe": [("Completed", 100)], "North Europe": [("Replicating", 42)]},
    )
    code, out, err = run(root, capsys)
    assert out == (
        f"Replication of stack 'test' in gallery gal (resource group rg-gallery, subscription "
        f"{fake_arm_env.subscription_id})\n"
        "ubuntu 1.0.0: replication InProgress, provisioning Creating\n"
        "  westeurope   Completed   100%\n"
        "  northeurope  Replicating  42%\n"
        "1 version: 1 in progress\n"
    )
    assert code == replication.EXIT_NOT_FINISHED
    assert err == "not finished yet: ubuntu 1.0.0 (northeurope Replicating 42%). Run with --watch to follow it.\n"
    gets = [r for r in fake_arm_env.requests if "/versions/" in r.path]
    assert [r.query.get("$expand") for r in gets] == ["ReplicationStatus"]
    assert fake_arm_env.non_get_requests() == []


def test_snapshot_as_json(
    fake_arm_env: FakeArm, image: FakeGalleryImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_stack(tmp_path / "project", fake_arm_env, {"ubuntu": ["1.0.0"], "debian": ["2.0.0"]})
    fake_arm_env.add_image_version(image, "1.0.0", replication={"West Europe": [("Completed", 100)]})
    code, out, _ = run(root, capsys, "--format", "json")
    doc = json.loads(out)
    assert code == replication.EXIT_NOT_FINISHED  # debian 2.0.0 does not exist yet
    assert (doc["gallery"], doc["resourceGroup"], doc["subscription"]) == (
        "gal",
        "rg-gallery",
        fake_arm_env.subscription_id,
    )
    ubuntu, debian = doc["versions"]
    assert ubuntu["aggregatedState"] == "Completed" and ubuntu["provisioningState"] == "Succeeded"
    assert ubuntu["regions"] == [
        {"region": "westeurope", "state": "Completed", "progress": 100, "details": ""},
        {"region": "northeurope", "state": "Unknown", "progress": None, "details": "not reported by Azure yet"},
    ]
    assert debian == {
        "image": "debian",
        "version": "2.0.0",
        "exists": False,
        "provisioningState": None,
        "aggregatedState": None,
        "regions": [],
    }


def test_watch_follows_progress_to_completed_printing_only_changes(
    fake_arm_env: FakeArm, image: FakeGalleryImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_stack(tmp_path / "project", fake_arm_env, {"ubuntu": ["1.0.0"]})
    replicating(
        fake_arm_env,
        image,
        replication={
            "West Europe": [("Replicating", 50), ("Completed", 100)],
            "North Europe": [("Replicating", 10), ("Replicating", 10), ("Replicating", 60), ("Completed", 100)],
        },
    )
    code, out, err = run(root, capsys, "--watch", *FAST)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert all(re.match(STAMP, line) for line in lines), out
    assert [re.sub(STAMP, "", line) for line in lines] == [
        f"watching the replication of stack 'test' in gallery gal (resource group rg-gallery, subscription "
        f"{fake_arm_env.subscription_id}), every 0.01s",
        "ubuntu 1.0.0: replication InProgress, provisioning Creating",
        "ubuntu 1.0.0 westeurope: Replicating 50%",
        "ubuntu 1.0.0 northeurope: Replicating 10%",
        "ubuntu 1.0.0 westeurope: Completed 100%",
        "ubuntu 1.0.0 northeurope: Replicating 60%",
        "ubuntu 1.0.0: replication Completed, provisioning Succeeded",
        "ubuntu 1.0.0 northeurope: Completed 100%",
        "1 version: 1 completed",
    ]
    assert fake_arm_env.count("GET", "/versions/1.0.0$") == 4
    assert fake_arm_env.non_get_requests() == []


def test_a_failed_region_exits_1_with_azure_details(
    fake_arm_env: FakeArm, image: FakeGalleryImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_stack(tmp_path / "project", fake_arm_env, {"ubuntu": ["1.0.0"]})
    details = "Replication failed: the target storage account in North Europe ran out of quota."
    replicating(
        fake_arm_env,
        image,
        replication={
            "West Europe": [("Replicating", 70), ("Completed", 100)],
            "North Europe": [("Replicating", 30), ("Failed", 30, details)],
        },
    )
    code, out, err = run(root, capsys, "--watch", *FAST)
    assert code == replication.EXIT_FAILED
    assert f"ubuntu 1.0.0 northeurope: Failed 30% - {details}" in out
    assert "ubuntu 1.0.0: replication Failed, provisioning Failed" in out
    assert "1 version: 1 failed" in out
    assert err == f"replication failed: ubuntu 1.0.0 in northeurope: {details}\n"
    assert fake_arm_env.non_get_requests() == []


def test_a_version_not_created_yet_is_reported_then_appears(
    fake_arm_env: FakeArm, image: FakeGalleryImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_stack(tmp_path / "project", fake_arm_env, {"ubuntu": ["1.0.0"]})
    replicating(
        fake_arm_env,
        image,
        absent_reads=2,
        replication={"West Europe": [("Replicating", 5), ("Completed", 100)], "North Europe": [("Completed", 100)]},
    )
    code, out, _ = run(root, capsys, "--watch", *FAST)
    assert code == 0
    assert [re.sub(STAMP, "", line) for line in out.splitlines()[1:]] == [
        "ubuntu 1.0.0: not created yet",  # printed once although read twice
        "ubuntu 1.0.0: replication InProgress, provisioning Creating",
        "ubuntu 1.0.0 westeurope: Replicating 5%",
        "ubuntu 1.0.0 northeurope: Completed 100%",
        "ubuntu 1.0.0: replication Completed, provisioning Succeeded",
        "ubuntu 1.0.0 westeurope: Completed 100%",
        "1 version: 1 completed",
    ]
    assert fake_arm_env.count("GET", "/versions/1.0.0$") == 4


def test_watch_gives_up_at_the_timeout_naming_what_it_waited_for(
    fake_arm_env: FakeArm, image: FakeGalleryImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_stack(tmp_path / "project", fake_arm_env, {"ubuntu": ["1.0.0"], "debian": ["2.0.0"]})
    replicating(
        fake_arm_env, image, replication={"West Europe": [("Completed", 100)], "North Europe": [("Replicating", 42)]}
    )
    code, out, err = run(root, capsys, "--watch", "--interval", "0.05", "--timeout", "0.005")
    assert code == replication.EXIT_NOT_FINISHED
    assert err.count("\n") == 1
    assert err.startswith("replication of stack 'test': gave up after 0.3s waiting for the replication of ")
    assert "ubuntu 1.0.0, debian 2.0.0 in gallery gal (resource group rg-gallery" in err
    assert "(last seen: ubuntu 1.0.0 (northeurope Replicating 42%); debian 2.0.0 (not created yet))" in err
    assert "Nothing was changed in Azure." in err
    assert out.count("northeurope: Replicating 42%") == 1
    assert fake_arm_env.non_get_requests() == []


def test_default_bound_is_the_largest_create_timeout(
    fake_arm_env: FakeArm, image: FakeGalleryImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = {"ubuntu": ["1.0.0"], "debian": ["2.0.0"]}
    root = write_stack(tmp_path / "project", fake_arm_env, images, create_timeouts={"ubuntu": 0.001, "debian": 0.004})
    replicating(fake_arm_env, image, replication={"West Europe": [("Replicating", 1)]})
    code, _, err = run(root, capsys, "--watch", "--interval", "0.05")
    assert code == replication.EXIT_NOT_FINISHED
    assert "gave up after 0.24s" in err and "(0.004 min)" in err


def test_missing_subscription_exits_2_with_the_hint(
    fake_arm_env: FakeArm, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in replication.SUBSCRIPTION_ENV:
        monkeypatch.delenv(name, raising=False)
    root = write_stack(tmp_path / "project", fake_arm_env, {"ubuntu": ["1.0.0"]}, subscription=False)
    code, out, err = run(root, capsys)
    assert (code, out) == (replication.EXIT_ERROR, "")
    assert err == (
        "replication of stack 'test': no subscription for the gallery: pass --subscription ID, or set "
        "`pulumi config set azure-native:subscriptionId ID` in the stack, or export AZURE_SUBSCRIPTION_ID "
        "(or ARM_SUBSCRIPTION_ID)\n"
    )
    assert fake_arm_env.requests == []

    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", fake_arm_env.subscription_id)
    fake_arm_env.add_image_version(fake_arm_env.add_gallery_image(name="ubuntu"), "1.0.0")
    code, out, _ = run(root, capsys)
    assert code == 0 and f"subscription {fake_arm_env.subscription_id})" in out


def test_subscription_comes_from_the_flag_then_the_stack_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flag, stack, env = (f"{n}0000000-0000-0000-0000-000000000000" for n in (1, 2, 3))
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", env)
    values = {"azure-native:subscriptionId": stack}
    assert replication.resolve_subscription("test", flag, values) == flag
    assert replication.resolve_subscription("test", None, values) == stack
    assert replication.resolve_subscription("test", None, {}) == env
    with pytest.raises(replication.UsageError, match="is a secret and is not decrypted here"):
        replication.resolve_subscription("test", None, {"azure-native:subscriptionId": "[secret]"})
    with pytest.raises(replication.UsageError, match=r"--subscription is 'nope', not a subscription id"):
        replication.resolve_subscription("test", "nope", values)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nope"], "replication of stack 'nope': no Pulumi.nope.yaml: known stacks are test\n"),
        (["test", "--interval", "0"], "--interval: '0' is not a positive number"),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(
    fake_arm_env: FakeArm, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    root = write_stack(tmp_path / "project", fake_arm_env, {"ubuntu": ["1.0.0"]})
    assert main(args, root=root) == replication.EXIT_ERROR
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_invalid_config_exits_2_on_one_line(
    fake_arm_env: FakeArm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_stack(tmp_path / "project", fake_arm_env, {"ubuntu": ["1.0"]})
    code, _, err = run(root, capsys)
    assert code == replication.EXIT_ERROR
    assert err == "replication of stack 'test': images[0].versions[0].version: '1.0' is not Major.Minor.Patch\n"


def test_arm_denial_exits_2_naming_the_permission(
    fake_arm_env: FakeArm, image: FakeGalleryImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_stack(tmp_path / "project", fake_arm_env, {"ubuntu": ["1.0.0"]})
    fake_arm_env.deny(403, path="/versions/")
    code, _, err = run(root, capsys, "--watch", *FAST)
    assert code == replication.EXIT_ERROR
    assert err.count("\n") == 1 and "Microsoft.Compute/galleries/images/versions/read" in err
    assert "read the replication status of image version 1.0.0 of ubuntu in gallery gal" in err


def test_a_failed_login_exits_2_on_one_line(
    fake_arm_env: FakeArm, image: FakeGalleryImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_stack(tmp_path / "project", fake_arm_env, {"ubuntu": ["1.0.0"]})
    fake_arm_env.az_logged_out = True
    code, out, err = run(root, capsys, "--watch", *FAST)
    assert (code, out.count("\n")) == (replication.EXIT_ERROR, 1)  # the "watching ..." line only
    assert err.count("\n") == 1 and "no Azure access token could be obtained" in err and "run `az login`" in err
    assert fake_arm_env.requests == []


def test_get_replication_status_reads_azure_shape(fake_arm_env: FakeArm, image: FakeGalleryImage) -> None:
    settings = fake_arm_env.settings()

    def version(number: str) -> ImageVersionRef:
        return ImageVersionRef(fake_arm_env.subscription_id, "rg-gallery", "gal", "ubuntu", number)

    assert arm.get_replication_status(settings, version("1.0.0")) is None
    replicating(
        fake_arm_env,
        image,
        replication={"West Europe": [("Completed", 100)], "East US": [("Failed", 0, "quota")]},
    )
    log = Log("replication", sink=lambda line: None)
    assert arm.get_replication_status(settings, version("1.0.0"), log) == arm.ReplicationStatus(
        provisioning_state="Failed",
        aggregated_state="Failed",
        regions=(
            arm.RegionReplication("West Europe", "Completed", 100, ""),
            arm.RegionReplication("East US", "Failed", 0, "quota"),
        ),
    )
    assert log.lines == [
        "[replication] image version 1.0.0 of ubuntu in gallery gal (resource group rg-gallery): Failed, "
        "replication Failed (West Europe Completed 100%, East US Failed 0%)"
    ]
    # Without a replication script the fake reports, like a finished version, every region Completed.
    fake_arm_env.add_image_version(image, "0.9.0")
    old = arm.get_replication_status(settings, version("0.9.0"))
    assert old is not None and old.aggregated_state == "Completed" and old.provisioning_state == "Succeeded"
    assert fake_arm_env.non_get_requests() == []
