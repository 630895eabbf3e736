"""config.load as a whole: a valid config with its documented defaults, every optional field read, the edges that
must load, the real dev stack, every problem reported at once, and the rules across sections (unique definitions,
a source VM generalized by one version only).

Each test starts from one valid config (`base_config`) and changes one thing (`config_with`), so a failure names
exactly one rule. A rule of one section is tested in that section's file (test_gallery.py, test_images.py, ...).
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import date
from typing import Any

import pytest

import config
from commands import stack_file
from hooks.errors import ConfigError
from hooks.targets import SysprepOptions
from tests.unit.config.one_change import (
    DELETE,
    LINUX_SPECIALIZED_SOURCE,
    PASSPHRASE,
    PASSWORD,
    PEM,
    PIN,
    PRINCIPAL,
    PRIVATE_KEY,
    REGIONS,
    SECOND_LINUX_SOURCE,
    SSH,
    SYSPREP,
    TODAY,
    VERSION_0,
    WINRM,
    base_config,
    config_with,
    host_key,
    load,
    problems_of,
    the_problem,
    vm_id,
)

# --- happy path -------------------------------------------------------------------------------------------------------


def test_base_config_loads_with_documented_defaults() -> None:
    stack = load(base_config())

    assert stack.gallery == config.GallerySpec("contoso_images.test", "rg-images", "westeurope")
    assert stack.publisher == config.PublisherSpec(PRINCIPAL, "User", "Owner", None)
    assert stack.publisher.role_definition_guid == config.PUBLISHER_ROLES["Owner"]
    assert stack.azure == config.AzureSpec()
    ubuntu, windows = stack.images
    assert (ubuntu.name, ubuntu.os_type, ubuntu.os_state) == ("ubuntu", "Linux", "Generalized")
    assert (ubuntu.hyper_v_generation, ubuntu.architecture, ubuntu.security_type) == ("V2", "x64", "Standard")
    assert (ubuntu.publisher, ubuntu.offer, ubuntu.sku) == ("contoso", "ubuntu", "22_04")
    (version,) = ubuntu.versions
    assert version.version == "1.0.0"
    assert version.source_vm is stack.source_vms["linux-build"]
    assert version.target_regions == (config.TargetRegionSpec("westeurope", 1, "Standard_LRS", False),)
    assert (version.replica_count, version.storage_account_type, version.replication_mode) == (
        1,
        "Standard_LRS",
        "Full",
    )
    assert (version.protect, version.end_of_life_date, version.create_timeout_minutes) == (True, None, 180.0)

    linux = stack.source_vms["linux-build"]
    assert linux.vm.name == "linux-build-01" and linux.id == vm_id("linux-build-01")
    assert linux.ssh is not None and linux.winrm is None and linux.deallocate
    assert linux.ssh.port == 22 and linux.ssh.host_key == host_key()
    assert linux.ssh.private_key == PRIVATE_KEY and linux.ssh.password is None

    win = stack.source_vms["win-build"].winrm
    assert win is not None and win.password == PASSWORD
    assert (win.port, win.scheme, win.transport, win.certificate_sha256) == (5986, "https", "ntlm", PIN)
    assert stack.source_vms["win-build"].sysprep == SysprepOptions()
    assert [r.name for r in windows.versions[0].target_regions] == ["westeurope", "northeurope"]


def test_specs_are_frozen() -> None:
    stack = load(base_config())
    with pytest.raises(dataclasses.FrozenInstanceError):
        stack.gallery.name = "other"  # type: ignore[misc]


def test_every_optional_field_is_read() -> None:
    stack = load(
        config_with(
            {
                "galleryDescription": "Golden images",
                "galleryTags": {"env": "test"},
                "publisherRole": "ComputeGalleryImageReader",
                "publisherTenantId": "62913C05-BCCF-437C-868C-53CDABFBE8D4",
                "publisherPrincipalType": "ServicePrincipal",
                "armEndpoint": "https://management.usgovcloudapi.net/",
                "armAudience": "https://management.core.usgovcloudapi.net/",
                "armPollIntervalSeconds": 5,
                "armOperationTimeoutMinutes": "45",
                "onArmUnreachable": "warn",
                "images[0].osState": "Generalized",
                "images[0].hyperVGeneration": "V2",
                "images[0].architecture": "Arm64",
                "images[0].securityType": "TrustedLaunchSupported",
                "images[0].description": "Ubuntu",
                "images[0].eula": "https://contoso.example/eula",
                "images[0].privacyStatementUri": "https://contoso.example/privacy",
                "images[0].releaseNoteUri": "https://contoso.example/notes",
                "images[0].endOfLifeDate": "2030-01-01",
                "images[0].recommended": {"minVCpus": 2, "maxVCpus": 2, "minMemoryGb": 4, "maxMemoryGb": "8"},
                f"{VERSION_0}.replicaCount": 3,
                f"{VERSION_0}.storageAccountType": "Premium_LRS",
                f"{VERSION_0}.replicationMode": "Shallow",
                f"{VERSION_0}.excludeFromLatest": "true",
                f"{VERSION_0}.endOfLifeDate": date(2028, 12, 31),
                f"{VERSION_0}.createTimeoutMinutes": 240.5,
                f"{VERSION_0}.protect": False,
                f"{VERSION_0}.allowDeletionOfReplicatedLocations": True,
                f"{VERSION_0}.blockDeletionBeforeEndOfLife": True,
                f"{VERSION_0}.targetRegions[1]": {
                    "name": "northeurope",
                    "replicaCount": 100,
                    "storageAccountType": "Standard_ZRS",
                    "excludeFromLatest": True,
                },
                "sourceVms.linux-build.deallocate": False,
                f"{SSH}.port": 2222,
                f"{SSH}.passphrase": PASSPHRASE,
                f"{SSH}.connectTimeoutMinutes": 1,
                f"{SSH}.commandTimeoutMinutes": 2,
                f"{WINRM}.useHttps": False,
                f"{WINRM}.allowUnencryptedHttp": True,
                f"{WINRM}.transport": "kerberos",
                f"{WINRM}.host": "win-build-01.contoso.local",  # Kerberos needs the host's name, not an IP address
                f"{WINRM}.certificateSha256": DELETE,
                f"{WINRM}.connectTimeoutMinutes": 3,
                f"{SYSPREP}": {
                    "mode": "",
                    "extraArgs": ["/Custom", "/Flag:Value1"],
                    "skipChecks": ["appx", "bitlocker"],
                    "agentTimeoutMinutes": 4,
                    "timeoutMinutes": 90,
                    "pollIntervalSeconds": 0.5,
                },
            }
        )
    )
    assert stack.gallery.tags == {"env": "test"} and stack.gallery.description == "Golden images"
    assert stack.publisher == config.PublisherSpec(
        PRINCIPAL, "ServicePrincipal", "ComputeGalleryImageReader", "62913c05-bccf-437c-868c-53cdabfbe8d4"
    )
    assert stack.azure == config.AzureSpec(
        "https://management.usgovcloudapi.net", "https://management.core.usgovcloudapi.net/", 5.0, 45.0, "warn"
    )
    ubuntu = stack.images[0]
    assert (ubuntu.architecture, ubuntu.security_type, ubuntu.end_of_life_date) == (
        "Arm64",
        "TrustedLaunchSupported",
        "2030-01-01T00:00:00Z",
    )
    assert (ubuntu.min_vcpus, ubuntu.max_vcpus, ubuntu.min_memory_gb, ubuntu.max_memory_gb) == (2, 2, 4, 8)
    assert ubuntu.eula == "https://contoso.example/eula"
    version = ubuntu.versions[0]
    assert version.target_regions == (
        # A region without its own values takes the version's replicaCount and storageAccountType.
        config.TargetRegionSpec("westeurope", 3, "Premium_LRS", False),
        config.TargetRegionSpec("northeurope", 100, "Standard_ZRS", True),
    )
    assert (version.replication_mode, version.exclude_from_latest, version.protect) == ("Shallow", True, False)
    assert version.end_of_life_date == "2028-12-31T00:00:00Z"
    assert version.create_timeout_minutes == 240.5
    assert version.allow_deletion_of_replicated_locations and version.block_deletion_before_end_of_life
    linux = stack.source_vms["linux-build"]
    assert not linux.deallocate
    assert linux.ssh is not None and linux.ssh.port == 2222 and linux.ssh.passphrase == PASSPHRASE
    # Durations are minutes in the stack file, seconds from there on.
    assert (linux.ssh.connect_timeout, linux.ssh.command_timeout) == (60.0, 120.0)
    win = stack.source_vms["win-build"].winrm
    assert win is not None
    assert (win.scheme, win.port, win.transport, win.connect_timeout) == ("http", 5985, "kerberos", 180.0)
    assert stack.source_vms["win-build"].sysprep == SysprepOptions(
        "", ("/Custom", "/Flag:Value1"), frozenset({"appx", "bitlocker"}), 4 * 60, 90 * 60, 0.5
    )


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"galleryName": "a"}, id="gallery-name-1-char"),
        pytest.param({"galleryName": "a" * 80}, id="gallery-name-80-chars"),
        pytest.param({"galleryName": "My.Gallery_2"}, id="gallery-name-period-inside"),
        pytest.param({"images[0].name": "a"}, id="definition-name-1-char"),
        pytest.param({"images[0].name": "U" * 80}, id="definition-name-80-chars"),
        pytest.param({"images[0].name": "Ubuntu_22.04-lts"}, id="definition-name-all-characters"),
        pytest.param({f"{VERSION_0}.version": "0.0.0"}, id="version-zero"),
        pytest.param({f"{VERSION_0}.version": "2147483647.2147483647.2147483647"}, id="version-max"),
        pytest.param({f"{VERSION_0}.replicaCount": 1}, id="replicas-1"),
        pytest.param({f"{VERSION_0}.replicaCount": "100"}, id="replicas-100-as-text"),
        pytest.param({f"{SSH}.port": 1}, id="ssh-port-1"),
        pytest.param({f"{SSH}.port": 65535}, id="ssh-port-65535"),
        pytest.param({f"{SSH}.hostKey": f"10.0.0.4,[bastion]:2222 {host_key()} root@vm"}, id="known-hosts-line"),
        pytest.param({f"{SSH}.hostKey": DELETE, f"{SSH}.insecureIgnoreHostKey": True}, id="insecure-host-key"),
        pytest.param({f"{SSH}.privateKey": DELETE, f"{SSH}.password": PASSWORD}, id="ssh-password"),
        pytest.param({f"{WINRM}.certificateSha256": PIN.replace(":", "").lower()}, id="pin-without-colons"),
        pytest.param({f"{WINRM}.certificateSha256": DELETE, f"{WINRM}.caCertificate": PEM}, id="winrm-ca"),
        pytest.param(
            {f"{WINRM}.certificateSha256": DELETE, f"{WINRM}.insecureSkipCertificateValidation": True},
            id="winrm-insecure",
        ),
        pytest.param(
            {f"{WINRM}.useHttps": False, f"{WINRM}.allowUnencryptedHttp": True, f"{WINRM}.certificateSha256": DELETE},
            id="winrm-http-ntlm",
        ),
        pytest.param({"images[0].hyperVGeneration": "V1", "images[0].securityType": "Standard"}, id="v1-standard"),
        pytest.param({"images[0].endOfLifeDate": "2026-11-23"}, id="eol-tomorrow"),
        pytest.param({"images[0].endOfLifeDate": "2028-12-31T00:00:00Z"}, id="eol-datetime"),
        pytest.param({"armAudience": "", "galleryDescription": ""}, id="blank-optional-strings-are-unset"),
        pytest.param({"publisherPrincipalId": DELETE}, id="no-publisher"),
        pytest.param({"publisherPrincipalId": ""}, id="blank-publisher"),
        pytest.param(
            {
                # A specialized definition captures the VM as it is: no guest transport needed, and the same VM
                # can be captured by several versions.
                "images[0].osState": "Specialized",
                f"{VERSION_0}.sourceVm": "golden",
                "images[0].versions[1]": {"version": "1.0.1", "sourceVm": "golden", "targetRegions": REGIONS},
                "sourceVms.golden": LINUX_SPECIALIZED_SOURCE,
            },
            id="specialized-without-transport",
        ),
        pytest.param(
            {
                "images[0].versions[1]": {
                    "version": "1.1.0",
                    "sourceVm": "linux-build-2",
                    "targetRegions": [{"name": "westeurope"}],
                },
                "sourceVms.linux-build-2": SECOND_LINUX_SOURCE,
            },
            id="two-versions-two-vms",
        ),
        pytest.param(
            # The same version number in two definitions is fine; only within one definition it must be unique.
            {"images[1].versions[0].version": "1.0.0"},
            id="same-version-other-definition",
        ),
    ],
)
def test_accepted(changes: dict[str, Any]) -> None:
    load(config_with(changes))


def test_dev_stack_loads() -> None:
    """The real Pulumi.dev.yaml, read the way `make plan` reads it (secure: leaves masked, never decrypted)."""
    project, values, secret_keys = stack_file.read_stack_config("dev")
    prefix = f"{project}:"
    raw = config.parse_engine_values(values, project)
    secret_top = [k.removeprefix(prefix) for k in secret_keys if k.startswith(prefix)]
    assert secret_top == ["sourceVms"]

    stack = config.load(raw, secret_top, TODAY)

    assert stack.gallery.name == "contoso_images_dev"
    # Keys the stack leaves out take their Pulumi.yaml default, as with the CLI.
    assert stack.azure.arm_endpoint == "https://management.azure.com"
    assert stack.azure.poll_interval_seconds == 15
    assert [d.name for d in stack.images] == ["ubuntu-2204-hardened", "win2022-datacenter"]
    assert [d.security_type for d in stack.images] == ["TrustedLaunch", "TrustedLaunch"]
    assert stack.images[0].versions[0].end_of_life_date == "2028-12-31T00:00:00Z"
    ubuntu = stack.source_vms["ubuntu-build"].ssh
    win = stack.source_vms["win2022-build"].winrm
    assert ubuntu is not None and win is not None
    assert ubuntu.private_key == stack_file.SECRET and win.password == stack_file.SECRET
    assert "v1:" not in repr(stack)  # no ciphertext either


# --- rules across sections --------------------------------------------------------------------------------------------


def test_image_definition_names_are_unique_case_insensitively() -> None:
    raw = base_config()
    raw["images"].append(copy.deepcopy(raw["images"][1]) | {"name": "Windows", "versions": []})
    raw["images"][2]["identifier"]["sku"] = "2025"  # only the name clashes
    assert the_problem(raw) == "images[2].name: 'Windows' is used by images[1] too"


def test_publisher_offer_sku_is_unique_within_the_gallery() -> None:
    raw = base_config()
    raw["images"].append(copy.deepcopy(raw["images"][1]) | {"name": "windows-copy"})
    raw["images"][2]["identifier"] = {"publisher": "Contoso", "offer": "WINDOWS", "sku": "2022"}
    raw["images"][2]["versions"] = []
    assert the_problem(raw) == (
        "images[2].identifier: publisher/offer/sku Contoso/WINDOWS/2022 is already used by 'windows'; "
        "it must be unique within the gallery"
    )


def test_duplicate_definitions_are_reported_at_their_own_index_after_an_invalid_one() -> None:
    raw = base_config()
    raw["images"][0]["osType"] = "Unix"
    raw["images"].append(copy.deepcopy(raw["images"][1]) | {"versions": []})
    found = problems_of(raw)
    assert found[0].startswith("images[0].osType: ")
    assert "images[2].name: 'windows' is used by images[1] too" in found
    assert any(p.startswith("images[2].identifier: ") for p in found)


def test_one_source_vm_generalized_by_two_versions_is_refused() -> None:
    second = {"version": "1.1.0", "sourceVm": "linux-build", "targetRegions": [{"name": "westeurope"}]}
    assert the_problem(config_with({"images[0].versions[1]": second})) == (
        "sourceVms.linux-build: generalized by more than one version (ubuntu/1.0.0, ubuntu/1.1.0); a VM is "
        "generalized once: capture it into one version, and build a new source VM for the next version"
    )


# --- everything at once -----------------------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    raw = config_with(
        {
            "galleryName": "contoso-images",
            "galery": {},
            "publisherPrincipalId": "nobody",
            "armEndpoint": "http://management.azure.com",
            "images[0].osType": "linux",
            f"{VERSION_0}.version": "1.0",
            f"{VERSION_0}.targetRegions": [],
            "images[1].versions[0].replicaCount": 500,
            f"{SSH}.port": 0,
            f"{SSH}.password": PASSWORD,
            f"{WINRM}.sysprep": {"extraArgs": ["/generalize"]},
        }
    )
    found = problems_of(raw)
    assert [p.split(": ")[0] for p in found] == [
        "galleryName",
        "publisherPrincipalId",
        "armEndpoint",
        f"{SSH}.port",
        SSH,
        f"{SYSPREP}.extraArgs[0]",
        "images[0].osType",
        f"{VERSION_0}.version",
        f"{VERSION_0}.targetRegions",
        "images[1].versions[0].replicaCount",
        "galery",
    ]
    message = str(ConfigError(found))
    assert message.startswith("invalid stack configuration:\n  - galleryName: ")
    assert message.count("\n  - ") == len(found)
