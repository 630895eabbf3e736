"""config.load: every validation rule with its key path and message, the happy path, and the real dev stack.

Each test starts from one valid config (`base_config`) and changes one thing (`config_with`), so a failure names
exactly one rule. `today` is fixed so the end-of-life checks do not rot.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from datetime import date
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import config
from commands import stack_file
from hooks.errors import ConfigError
from hooks.targets import SysprepOptions

TODAY = date(2026, 11, 22)
SUBSCRIPTION = "81bfe33b-d336-4213-9088-9360410b0807"
PRINCIPAL = "2b1d6bff-ff47-4bfa-8861-9ae9a8dc314f"
PIN = "3F:9A:1C:77:0B:5E:D2:48:9C:61:AE:04:B7:33:F0:2D:18:6C:95:E1:4A:0F:C8:73:22:B9:5D:6E:81:07:A4:CC"
PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAA-private-key-text\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
PASSPHRASE = "passphrase-text-4711"
PASSWORD = "winrm-password-text-0815"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
DELETE = object()
"""A value for `config_with` that removes the key."""


@functools.cache
def host_key() -> str:
    """A real `ssh-ed25519 AAAA...` public key (hooks.linux.parse_host_key decodes it)."""
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def vm_id(name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/{name}"


def base_config() -> dict[str, Any]:
    """A valid config: a Linux and a Windows definition, each with one version from its own source VM."""
    return {
        "galleryName": "contoso_images.test",
        "galleryResourceGroup": "rg-images",
        "galleryLocation": "westeurope",
        "publisherPrincipalId": PRINCIPAL,
        "publisherPrincipalType": "User",
        "images": [
            {
                "name": "ubuntu",
                "osType": "Linux",
                "identifier": {"publisher": "contoso", "offer": "ubuntu", "sku": "22_04"},
                "versions": [
                    {"version": "1.0.0", "sourceVm": "linux-build", "targetRegions": [{"name": "westeurope"}]},
                ],
            },
            {
                "name": "windows",
                "osType": "Windows",
                "identifier": {"publisher": "contoso", "offer": "windows", "sku": "2022"},
                "versions": [
                    {
                        "version": "1.0.0",
                        "sourceVm": "win-build",
                        "targetRegions": [{"name": "westeurope"}, {"name": "northeurope"}],
                    },
                ],
            },
        ],
        "sourceVms": {
            "linux-build": {
                "id": vm_id("linux-build-01"),
                "ssh": {"host": "10.0.0.4", "username": "azureuser", "privateKey": PRIVATE_KEY, "hostKey": host_key()},
            },
            "win-build": {
                "id": vm_id("win-build-01"),
                "winrm": {
                    "host": "10.0.0.5",
                    "username": "imageadmin",
                    "password": PASSWORD,
                    "certificateSha256": PIN,
                    "sysprep": {"mode": "vm"},
                },
            },
        },
    }


def config_with(changes: dict[str, Any]) -> dict[str, Any]:
    """The base config with each `key.path[0].like.this` set to its value (DELETE removes it)."""
    raw = base_config()
    for path, value in changes.items():
        tokens = [int(t[1:-1]) if t.startswith("[") else t for t in re.findall(r"\[\d+\]|[^.\[\]]+", path)]
        parent: Any = raw
        for token in tokens[:-1]:
            parent = parent[token]
        last = tokens[-1]
        if value is DELETE:
            del parent[last]
        elif isinstance(parent, list) and last == len(parent):
            parent.append(copy.deepcopy(value))
        else:
            parent[last] = copy.deepcopy(value)
    return raw


def load(raw: dict[str, Any], secret_keys: tuple[str, ...] = ("sourceVms",)) -> config.StackSpec:
    return config.load(raw, secret_keys, TODAY)


def problems_of(raw: dict[str, Any], secret_keys: tuple[str, ...] = ("sourceVms",)) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.load(raw, secret_keys, TODAY)
    assert caught.value.problems, "ConfigError without problems"
    return caught.value.problems


def the_problem(raw: dict[str, Any], secret_keys: tuple[str, ...] = ("sourceVms",)) -> str:
    """The one problem the config has (a second one would be a cascade or a rule firing by mistake)."""
    found = problems_of(raw, secret_keys)
    assert len(found) == 1, found
    return found[0]


def assert_reported(found: list[str], path: str, fragment: str) -> None:
    at_path = [p for p in found if p.startswith(f"{path}: ")]
    assert at_path, f"nothing reported at {path}: {found}"
    assert any(fragment in p for p in at_path), f"{fragment!r} not in {at_path}"


LINUX_SPECIALIZED_SOURCE = {"id": vm_id("linux-golden-01")}
SECOND_LINUX_SOURCE = {
    "id": vm_id("linux-build-02"),
    "ssh": {"host": "10.0.0.6", "username": "azureuser", "password": PASSWORD, "hostKey": host_key()},
}
REGIONS = [{"name": "westeurope"}]
VERSION_0 = "images[0].versions[0]"
SSH = "sourceVms.linux-build.ssh"
WINRM = "sourceVms.win-build.winrm"
SYSPREP = f"{WINRM}.sysprep"


# ------------------------------------------------------------------------------------------------------- happy path


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


# ----------------------------------------------------------------------------------------------------------- secrets


def test_secrets_never_show_in_repr_or_str() -> None:
    stack = load(config_with({f"{SSH}.passphrase": PASSPHRASE}))
    for text in (repr(stack), str(stack), f"{stack}", repr(stack.source_vms), str(stack.images)):
        for value in (PRIVATE_KEY.splitlines()[1], PASSPHRASE, PASSWORD):
            assert value not in text
        assert "SshTarget(host=" in text, "the source VMs' settings are shown, without their secrets"
    secret = config.Secret(PASSWORD)
    assert PASSWORD not in f"{secret} {secret!r} {[secret]}"
    assert secret.reveal() == PASSWORD


def test_plaintext_secrets_are_reported_with_the_command_that_encrypts_them() -> None:
    found = problems_of(config_with({f"{SSH}.passphrase": PASSPHRASE}), secret_keys=())
    assert found == [
        f"{SSH}.privateKey: is stored in plaintext; store it encrypted with "
        f"`pulumi config set --secret --path '{SSH}.privateKey'`",
        f"{SSH}.passphrase: is stored in plaintext; store it encrypted with "
        f"`pulumi config set --secret --path '{SSH}.passphrase'`",
        f"{WINRM}.password: is stored in plaintext; store it encrypted with "
        f"`pulumi config set --secret --path '{WINRM}.password'`",
    ]
    for secret in (PASSPHRASE, PASSWORD, PRIVATE_KEY):
        assert not any(secret in p for p in found)


def test_only_the_encrypted_top_level_key_may_hold_secrets() -> None:
    found = problems_of(base_config(), secret_keys=("galleryName", "images"))
    assert [p.split(":")[0] for p in found] == [f"{SSH}.privateKey", f"{WINRM}.password"]


# ----------------------------------------------------------------------------------------------------- single rules

RULES = [
    # gallery
    ({"galleryName": DELETE}, "galleryName", "is required"),
    ({"galleryName": ""}, "galleryName", "must be a non-empty string"),
    ({"galleryName": "contoso-images"}, "galleryName", "'contoso-images' is not a valid gallery name"),
    ({"galleryName": ".images"}, "galleryName", "starting and ending with a letter or digit"),
    ({"galleryName": "images."}, "galleryName", "starting and ending with a letter or digit"),
    ({"galleryName": "a" * 81}, "galleryName", "1-80 letters, digits, '_' or '.'"),
    ({"galleryName": "images\n"}, "galleryName", "is not a valid gallery name"),
    ({"galleryName": 42}, "galleryName", "must be a non-empty string, got 42"),
    ({"galleryResourceGroup": DELETE}, "galleryResourceGroup", "is required"),
    ({"galleryResourceGroup": "rg/images"}, "galleryResourceGroup", "is not a valid resource group name"),
    ({"galleryLocation": "West_Europe"}, "galleryLocation", "is not an Azure region name like 'westeurope'"),
    ({"galleryLocation": DELETE}, "galleryLocation", "is required"),
    ({"galleryTags": {"env": 1}}, "galleryTags", "must be a map of strings"),
    ({"galleryTags": "contoso"}, "galleryTags", "must be a map of strings"),
    ({"publisherPrincipalId": DELETE, "publisherTenantId": PRINCIPAL}, "publisherTenantId", "set both or neither"),
    # publisher
    ({"publisherPrincipalId": "not-a-guid"}, "publisherPrincipalId", "'not-a-guid' is not a GUID"),
    ({"publisherPrincipalType": ""}, "publisherPrincipalType", "must be a non-empty string"),
    (
        {"publisherPrincipalType": "user"},
        "publisherPrincipalType",
        "'user' is not one of 'User', 'Group', 'ServicePrincipal', 'ForeignGroup', 'Device'",
    ),
    ({"publisherRole": "Contributor"}, "publisherRole", "'Contributor' is not one of 'Owner'"),
    ({"publisherTenantId": "contoso.onmicrosoft.com"}, "publisherTenantId", "is not a GUID"),
    # azure
    ({"armEndpoint": "http://localhost:8443"}, "armEndpoint", "must be an https:// URL"),
    ({"armPollIntervalSeconds": 0}, "armPollIntervalSeconds", "0 is out of range 1-3600"),
    ({"armOperationTimeoutMinutes": -5}, "armOperationTimeoutMinutes", "-5 is out of range"),
    ({"armOperationTimeoutMinutes": "soon"}, "armOperationTimeoutMinutes", "must be an integer"),
    ({"armOperationTimeoutMinutes": True}, "armOperationTimeoutMinutes", "must be an integer"),
    ({"onArmUnreachable": "ignore"}, "onArmUnreachable", "'ignore' is not one of 'fail', 'warn'"),
    # image definitions
    ({"images": DELETE}, "images", "is required and must list at least one entry"),
    ({"images": []}, "images", "must list at least one entry"),
    ({"images": "ubuntu"}, "images", "must be a list, got str"),
    ({"images[1]": "windows"}, "images[1]", "must be an object, got str"),
    ({"images[0].name": DELETE}, "images[0].name", "is required"),
    ({"images[0].name": "-ubuntu"}, "images[0].name", "'-ubuntu' is not a valid image definition name"),
    ({"images[0].name": "ubuntu."}, "images[0].name", "is not a valid image definition name"),
    ({"images[0].name": "ubuntu 22"}, "images[0].name", "is not a valid image definition name"),
    ({"images[0].name": "u" * 81}, "images[0].name", "(1-80 letters, digits, '.', '_', '-')"),
    ({"images[0].osType": DELETE}, "images[0].osType", "is required"),
    ({"images[0].osType": "linux"}, "images[0].osType", "'linux' is not one of 'Linux', 'Windows'"),
    ({"images[0].osState": "Generalised"}, "images[0].osState", "is not one of 'Generalized', 'Specialized'"),
    ({"images[0].hyperVGeneration": "V3"}, "images[0].hyperVGeneration", "'V3' is not one of 'V1', 'V2'"),
    ({"images[0].architecture": "arm64"}, "images[0].architecture", "'arm64' is not one of 'x64', 'Arm64'"),
    ({"images[0].securityType": "Trusted"}, "images[0].securityType", "'Trusted' is not one of 'Standard'"),
    (
        {"images[0].hyperVGeneration": "V1", "images[0].securityType": "TrustedLaunch"},
        "images[0].securityType",
        "TrustedLaunch needs hyperVGeneration V2",
    ),
    (
        {"images[0].hyperVGeneration": "V1", "images[0].architecture": "Arm64"},
        "images[0].architecture",
        "Arm64 images need hyperVGeneration V2",
    ),
    ({"images[0].identifier": DELETE}, "images[0].identifier", "is required"),
    ({"images[0].identifier.sku": DELETE}, "images[0].identifier.sku", "is required"),
    ({"images[0].identifier.offer": "ubuntu server"}, "images[0].identifier.offer", "is not a valid identifier part"),
    ({"images[0].identifier.publisher": "-contoso"}, "images[0].identifier.publisher", "is not a valid identifier"),
    ({"images[0].identifier.sku": "s" * 129}, "images[0].identifier.sku", "up to 128"),
    (
        {"images[0].recommended": {"minVCpus": 16, "maxVCpus": 2}},
        "images[0].recommended.minVCpus",
        "16 is larger than maxVCpus (2)",
    ),
    (
        {"images[0].recommended": {"minMemoryGb": 64, "maxMemoryGb": 8}},
        "images[0].recommended.minMemoryGb",
        "64 is larger than maxMemoryGb (8)",
    ),
    ({"images[0].recommended": {"minVCpus": 0}}, "images[0].recommended.minVCpus", "0 is out of range 1-1024"),
    ({"images[0].recommended": {"maxMemoryGb": "lots"}}, "images[0].recommended.maxMemoryGb", "must be an integer"),
    ({"images[0].endOfLifeDate": "31/12/2028"}, "images[0].endOfLifeDate", "'31/12/2028' is not an ISO date"),
    ({"images[0].endOfLifeDate": "2028-12-31junk"}, "images[0].endOfLifeDate", "is not an ISO date (YYYY-MM-DD)"),
    ({"images[0].endOfLifeDate": 2028}, "images[0].endOfLifeDate", "2028 is not an ISO date"),
    ({"images[0].endOfLifeDate": "2026-11-22"}, "images[0].endOfLifeDate", "2026-11-22 is not in the future"),
    ({"images[0].endOfLifeDate": date(2020, 1, 1)}, "images[0].endOfLifeDate", "2020-01-01 is not in the future"),
    # versions
    ({f"{VERSION_0}.version": DELETE}, f"{VERSION_0}.version", "is required"),
    ({f"{VERSION_0}.version": "1.0"}, f"{VERSION_0}.version", "'1.0' is not Major.Minor.Patch"),
    ({f"{VERSION_0}.version": "1.0.0.0"}, f"{VERSION_0}.version", "is not Major.Minor.Patch"),
    ({f"{VERSION_0}.version": "v1.0.0"}, f"{VERSION_0}.version", "is not Major.Minor.Patch"),
    ({f"{VERSION_0}.version": "1.-1.0"}, f"{VERSION_0}.version", "is not Major.Minor.Patch"),
    ({f"{VERSION_0}.version": "1.0.0-beta"}, f"{VERSION_0}.version", "is not Major.Minor.Patch"),
    ({f"{VERSION_0}.version": "1.0.0\n"}, f"{VERSION_0}.version", "is not Major.Minor.Patch"),
    (
        {f"{VERSION_0}.version": "1.2147483648.0"},
        f"{VERSION_0}.version",
        "'1.2147483648.0': each part must be a non-negative 32-bit integer (<= 2147483647)",
    ),
    ({f"{VERSION_0}.sourceVm": DELETE}, f"{VERSION_0}.sourceVm", "is required"),
    (
        {f"{VERSION_0}.sourceVm": "linux-bulid"},
        f"{VERSION_0}.sourceVm",
        "'linux-bulid' is not a key under sourceVms (defined: linux-build, win-build)",
    ),
    ({f"{VERSION_0}.targetRegions": DELETE}, f"{VERSION_0}.targetRegions", "is required and must list at least one"),
    ({f"{VERSION_0}.targetRegions": []}, f"{VERSION_0}.targetRegions", "must list at least one entry"),
    (
        {f"{VERSION_0}.targetRegions[1]": {"name": "westeurope", "replicaCount": 2}},
        f"{VERSION_0}.targetRegions",
        "region 'westeurope' is listed more than once",
    ),
    ({f"{VERSION_0}.targetRegions[0].name": DELETE}, f"{VERSION_0}.targetRegions[0].name", "is required"),
    ({f"{VERSION_0}.targetRegions[0].name": "West-Europe"}, f"{VERSION_0}.targetRegions[0].name", "not an Azure"),
    ({f"{VERSION_0}.replicaCount": 0}, f"{VERSION_0}.replicaCount", "0 is out of range 1-100"),
    ({f"{VERSION_0}.replicaCount": 101}, f"{VERSION_0}.replicaCount", "101 is out of range 1-100"),
    ({f"{VERSION_0}.replicaCount": "--5"}, f"{VERSION_0}.replicaCount", "must be an integer, got '--5'"),
    ({f"{VERSION_0}.replicaCount": 1.5}, f"{VERSION_0}.replicaCount", "must be an integer, got 1.5"),
    ({f"{VERSION_0}.replicaCount": True}, f"{VERSION_0}.replicaCount", "must be an integer, got True"),
    (
        {f"{VERSION_0}.targetRegions[0].replicaCount": 0},
        f"{VERSION_0}.targetRegions[0].replicaCount",
        "0 is out of range 1-100",
    ),
    (
        {f"{VERSION_0}.storageAccountType": "Premium_ZRS"},
        f"{VERSION_0}.storageAccountType",
        "'Premium_ZRS' is not one of 'Standard_LRS', 'Standard_ZRS', 'Premium_LRS', 'PremiumV2_LRS'",
    ),
    (
        {f"{VERSION_0}.targetRegions[0].storageAccountType": "standard_lrs"},
        f"{VERSION_0}.targetRegions[0].storageAccountType",
        "'standard_lrs' is not one of",
    ),
    (
        {f"{VERSION_0}.replicationMode": "Partial"},
        f"{VERSION_0}.replicationMode",
        "'Partial' is not one of 'Full', 'Shallow'",
    ),
    ({f"{VERSION_0}.endOfLifeDate": "next year"}, f"{VERSION_0}.endOfLifeDate", "'next year' is not an ISO date"),
    ({f"{VERSION_0}.endOfLifeDate": "2025-01-01"}, f"{VERSION_0}.endOfLifeDate", "2025-01-01 is not in the future"),
    ({f"{VERSION_0}.createTimeoutMinutes": 0}, f"{VERSION_0}.createTimeoutMinutes", "must be a positive number"),
    ({f"{VERSION_0}.excludeFromLatest": "yes"}, f"{VERSION_0}.excludeFromLatest", "must be true or false, got 'yes'"),
    ({f"{VERSION_0}.protect": 1}, f"{VERSION_0}.protect", "must be true or false, got 1"),
    # source VMs
    ({"sourceVms.linux-build.id": DELETE}, "sourceVms.linux-build.id", "is required"),
    (
        {"sourceVms.linux-build.id": "/subscriptions/x/resourceGroups/rg"},
        "sourceVms.linux-build.id",
        "is not a VM resource ID; expected /subscriptions/<guid>/resourceGroups/<rg>"
        "/providers/Microsoft.Compute/virtualMachines/<name>",
    ),
    (
        {"sourceVms.linux-build.id": vm_id("vm1").replace("virtualMachines", "disks")},
        "sourceVms.linux-build.id",
        "is not a VM resource ID",
    ),
    ({"sourceVms.linux-build.deallocate": "no"}, "sourceVms.linux-build.deallocate", "must be true or false"),
    # ssh
    ({f"{SSH}.host": DELETE}, f"{SSH}.host", "is required"),
    ({f"{SSH}.host": "build vm!"}, f"{SSH}.host", "'build vm!' is not a host name or IP address"),
    ({f"{SSH}.username": DELETE}, f"{SSH}.username", "is required"),
    ({f"{SSH}.port": 0}, f"{SSH}.port", "0 is out of range 1-65535"),
    ({f"{SSH}.port": 65536}, f"{SSH}.port", "65536 is out of range 1-65535"),
    ({f"{SSH}.port": "ssh"}, f"{SSH}.port", "must be an integer, got 'ssh'"),
    ({f"{SSH}.password": PASSWORD}, SSH, "set exactly one of privateKey or password (got both)"),
    ({f"{SSH}.privateKey": DELETE}, SSH, "set exactly one of privateKey or password (got neither)"),
    (
        {f"{SSH}.privateKey": DELETE, f"{SSH}.password": PASSWORD, f"{SSH}.passphrase": PASSPHRASE},
        f"{SSH}.passphrase",
        "is only used with privateKey",
    ),
    ({f"{SSH}.hostKey": DELETE}, f"{SSH}.hostKey", "is required: the VM's host key (`ssh-keyscan <host>`"),
    ({f"{SSH}.hostKey": DELETE}, f"{SSH}.hostKey", "set insecureIgnoreHostKey: true only for throwaway VMs"),
    ({f"{SSH}.hostKey": "ssh-ed25519 not*base64"}, f"{SSH}.hostKey", "is not valid base64 after ssh-ed25519"),
    ({f"{SSH}.hostKey": "ssh-foo AAAAC3Nz"}, f"{SSH}.hostKey", "has no supported key type"),
    ({f"{SSH}.hostKey": "ssh-ed25519"}, f"{SSH}.hostKey", "has no base64 key data after ssh-ed25519"),
    ({f"{SSH}.hostKey": "ssh-ed25519 AAAA"}, f"{SSH}.hostKey", "is not a valid ssh-ed25519 public key"),
    ({f"{SSH}.insecureIgnoreHostKey": "maybe"}, f"{SSH}.insecureIgnoreHostKey", "must be true or false"),
    ({f"{SSH}.connectTimeoutMinutes": 0}, f"{SSH}.connectTimeoutMinutes", "must be a positive number"),
    ({f"{SSH}.commandTimeoutMinutes": -1}, f"{SSH}.commandTimeoutMinutes", "must be a positive number"),
    # winrm
    ({f"{WINRM}.password": DELETE}, f"{WINRM}.password", "is required (secret: `pulumi config set --secret --path"),
    ({f"{WINRM}.password": ""}, f"{WINRM}.password", "must be a non-empty string"),
    ({f"{WINRM}.host": DELETE}, f"{WINRM}.host", "is required"),
    ({f"{WINRM}.username": DELETE}, f"{WINRM}.username", "is required"),
    ({f"{WINRM}.port": 70000}, f"{WINRM}.port", "70000 is out of range 1-65535"),
    (
        {f"{WINRM}.certificateSha256": DELETE},
        f"{WINRM}.caCertificate",
        "set caCertificate or certificateSha256 so the WinRM listener's certificate can be verified",
    ),
    (
        {f"{WINRM}.caCertificate": "MIIB...", f"{WINRM}.certificateSha256": DELETE},
        f"{WINRM}.caCertificate",
        "must be a PEM certificate (-----BEGIN CERTIFICATE----- ...)",
    ),
    (
        {f"{WINRM}.caCertificate": PEM},
        f"{WINRM}.certificateSha256",
        "set caCertificate or certificateSha256, not both",
    ),
    (
        {f"{WINRM}.insecureSkipCertificateValidation": True},
        f"{WINRM}.insecureSkipCertificateValidation",
        "contradicts caCertificate/certificateSha256",
    ),
    (
        {f"{SSH}.insecureIgnoreHostKey": True},
        f"{SSH}.insecureIgnoreHostKey",
        "contradicts hostKey",
    ),
    (
        {
            f"{WINRM}.useHttps": False,
            f"{WINRM}.allowUnencryptedHttp": True,
            f"{WINRM}.transport": "basic",
            f"{WINRM}.certificateSha256": DELETE,
        },
        f"{WINRM}.transport",
        "basic over http would send the password in clear; use useHttps: true",
    ),
    (
        # the same rule as hooks.windows.sysprep.validate's (it used to pass here and fail only at `pulumi up`)
        {
            f"{WINRM}.useHttps": False,
            f"{WINRM}.allowUnencryptedHttp": True,
            f"{WINRM}.certificateSha256": DELETE,
            f"{WINRM}.insecureSkipCertificateValidation": True,
        },
        f"{WINRM}.insecureSkipCertificateValidation",
        "contradicts useHttps: false: there is no certificate to verify over http",
    ),
    (
        {f"{WINRM}.transport": "digest"},
        f"{WINRM}.transport",
        "'digest' is not one of 'ntlm', 'kerberos', 'credssp', 'basic'",
    ),
    ({f"{WINRM}.connectTimeoutMinutes": 0}, f"{WINRM}.connectTimeoutMinutes", "must be a positive number"),
    # sysprep
    ({f"{SYSPREP}.mode": "audit"}, f"{SYSPREP}.mode", "'audit' is not one of 'vm', ''"),
    ({f"{SYSPREP}.extraArgs": "/quiet"}, f"{SYSPREP}.extraArgs", "must be a list of strings"),
    ({f"{SYSPREP}.extraArgs": ["/custom", 1]}, f"{SYSPREP}.extraArgs", "must be a list of strings"),
    (
        {f"{SYSPREP}.extraArgs": ["/custom", "answer.xml"]},
        f"{SYSPREP}.extraArgs[1]",
        "'answer.xml' is not a sysprep flag like /flag or /flag:value",
    ),
    ({f"{SYSPREP}.extraArgs": ["/flag:a b"]}, f"{SYSPREP}.extraArgs[0]", "is not a sysprep flag"),
    ({f"{SYSPREP}.extraArgs": ["/custom\n"]}, f"{SYSPREP}.extraArgs[0]", "is not a sysprep flag"),
    (
        {f"{SYSPREP}.extraArgs": ["/Abcdefghij:Abcdefghij"] * 10},
        f"{SYSPREP}.extraArgs",
        "229 characters together, more than 200",
    ),
    (
        {f"{SYSPREP}.skipChecks": ["appx", "antivirus"]},
        f"{SYSPREP}.skipChecks[1]",
        "'antivirus' is not one of guest-agent, server-roles, bitlocker, appx, pending-reboot",
    ),
    ({f"{SYSPREP}.timeoutMinutes": 0}, f"{SYSPREP}.timeoutMinutes", "must be a positive number"),
    ({f"{SYSPREP}.agentTimeoutMinutes": "x"}, f"{SYSPREP}.agentTimeoutMinutes", "must be a positive number"),
    ({f"{SYSPREP}.pollIntervalSeconds": -1}, f"{SYSPREP}.pollIntervalSeconds", "must be a positive number"),
    # unknown keys (typos must not be ignored)
    (
        {"galery": {"name": "x"}},
        "galery",
        "unknown key (known keys here: allowUnknownRegions, armAudience, armEndpoint, armOperationTimeoutMinutes",
    ),
    ({"galleryResourcegroup": "rg"}, "galleryResourcegroup", "; did you mean 'galleryResourceGroup'?"),
    ({"publisherPrincipalID": PRINCIPAL}, "publisherPrincipalID", "unknown key"),
    ({"armEndpiont": "https://x"}, "armEndpiont", "unknown key"),
    ({"images[0].osVersion": "22.04"}, "images[0].osVersion", "unknown key"),
    ({"images[0].identifier.plan": "x"}, "images[0].identifier.plan", "unknown key"),
    ({"images[0].recommended": {"minCpus": 2}}, "images[0].recommended.minCpus", "unknown key"),
    ({f"{VERSION_0}.regions": ["westeurope"]}, f"{VERSION_0}.regions", "unknown key"),
    ({f"{VERSION_0}.targetRegions[0].replicas": 2}, f"{VERSION_0}.targetRegions[0].replicas", "unknown key"),
    ({"sourceVms.linux-build.rdp": {}}, "sourceVms.linux-build.rdp", "unknown key"),
    ({f"{SSH}.hostkey": host_key()}, f"{SSH}.hostkey", "unknown key"),
    ({f"{WINRM}.https": True}, f"{WINRM}.https", "unknown key"),
    ({f"{SYSPREP}.skipCheck": ["appx"]}, f"{SYSPREP}.skipCheck", "unknown key"),
]


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [pytest.param(*rule, id=f"{rule[1]}:{rule[2][:40]}") for rule in RULES],
)
def test_rule(changes: dict[str, Any], path: str, fragment: str) -> None:
    problem = the_problem(config_with(changes))
    assert problem.startswith(f"{path}: "), problem
    assert fragment in problem, problem


@pytest.mark.parametrize(
    "flag",
    ["/unattend:answer", "/generalize", "/OOBE", "/quiet", "/quit", "/mode:vm", "/shutdown", "/reboot", "/audit"],
)
def test_sysprep_flags_set_by_the_step_are_refused(flag: str) -> None:
    problem = the_problem(config_with({f"{SYSPREP}.extraArgs": ["/custom", flag]}))
    assert problem == f"{SYSPREP}.extraArgs[1]: {flag!r} is set by image-gallery itself; remove it"


# ------------------------------------------------------------------------------------------------ cross-field rules


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


def test_versions_are_unique_per_definition() -> None:
    second = {"version": "1.0.0", "sourceVm": "linux-build-2", "targetRegions": [{"name": "westeurope"}]}
    raw = config_with({"images[0].versions[1]": second, "sourceVms.linux-build-2": SECOND_LINUX_SOURCE})
    assert the_problem(raw) == "images[0].versions[1].version: '1.0.0' is declared twice in 'ubuntu'"


def test_duplicate_versions_are_reported_at_their_own_index_after_an_invalid_one() -> None:
    raw = config_with(
        {
            "images[0].osState": "Specialized",  # so one VM may feed several versions
            f"{VERSION_0}.version": "2.0",
            "images[0].versions[1]": {"version": "2.0.0", "sourceVm": "linux-build", "targetRegions": REGIONS},
            "images[0].versions[2]": {"version": "2.0.0", "sourceVm": "linux-build", "targetRegions": REGIONS},
        }
    )
    assert problems_of(raw) == [
        f"{VERSION_0}.version: '2.0' is not Major.Minor.Patch",
        "images[0].versions[2].version: '2.0.0' is declared twice in 'ubuntu'",
    ]


def test_one_source_vm_generalized_by_two_versions_is_refused() -> None:
    second = {"version": "1.1.0", "sourceVm": "linux-build", "targetRegions": [{"name": "westeurope"}]}
    assert the_problem(config_with({"images[0].versions[1]": second})) == (
        "sourceVms.linux-build: generalized by more than one version (ubuntu/1.0.0, ubuntu/1.1.0); a VM is "
        "generalized once: capture it into one version, and build a new source VM for the next version"
    )


def test_linux_definition_needs_ssh_and_no_winrm() -> None:
    found = problems_of(config_with({f"{VERSION_0}.sourceVm": "win-build", "images[1].versions": []}))
    assert found == [
        f"{VERSION_0}.sourceVm: sourceVms.win-build needs an ssh block: Linux VMs are deprovisioned with waagent "
        "over SSH",
        f"{VERSION_0}.sourceVm: sourceVms.win-build has a winrm block but the definition's osType is Linux",
    ]


def test_windows_definition_needs_winrm_and_no_ssh() -> None:
    found = problems_of(config_with({"images[1].versions[0].sourceVm": "linux-build", "images[0].versions": []}))
    assert found == [
        "images[1].versions[0].sourceVm: sourceVms.linux-build needs a winrm block: Windows VMs are sysprepped "
        "over WinRM",
        "images[1].versions[0].sourceVm: sourceVms.linux-build has an ssh block but the definition's osType is Windows",
    ]


def test_generalized_definition_with_a_transport_less_vm_is_refused() -> None:
    raw = config_with({"sourceVms.golden": LINUX_SPECIALIZED_SOURCE, f"{VERSION_0}.sourceVm": "golden"})
    assert the_problem(raw).startswith(f"{VERSION_0}.sourceVm: sourceVms.golden needs an ssh block")


def test_ssh_and_winrm_on_one_vm_is_refused() -> None:
    winrm = base_config()["sourceVms"]["win-build"]["winrm"]
    found = problems_of(config_with({"sourceVms.linux-build.winrm": winrm}))
    assert found[0] == "sourceVms.linux-build: set ssh (Linux) or winrm (Windows), not both"


def test_an_invalid_source_vm_is_reported_once_not_again_by_its_versions() -> None:
    """The versions that use a broken source VM must not add 'not a key under sourceVms' or 'needs an ssh block'."""
    assert the_problem(config_with({"sourceVms.linux-build.id": "vm-1"})).startswith("sourceVms.linux-build.id: ")
    assert the_problem(config_with({f"{SSH}.username": DELETE})) == f"{SSH}.username: is required"
    assert the_problem(config_with({f"{WINRM}.password": DELETE})).startswith(f"{WINRM}.password: is required")


def test_no_source_vms_at_all() -> None:
    found = problems_of(config_with({"sourceVms": DELETE}))
    assert found == [
        f"{VERSION_0}.sourceVm: 'linux-build' is not a key under sourceVms (defined: none defined)",
        "images[1].versions[0].sourceVm: 'win-build' is not a key under sourceVms (defined: none defined)",
    ]


def test_malformed_pin_is_reported_with_the_missing_verification() -> None:
    found = problems_of(config_with({f"{WINRM}.certificateSha256": "3F:9A"}))
    assert_reported(found, f"{WINRM}.certificateSha256", "'3F:9A' is not a SHA-256 fingerprint (64 hex digits)")
    assert_reported(found, f"{WINRM}.caCertificate", "set caCertificate or certificateSha256")


# --------------------------------------------------------------------------------------------- everything at once


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


def test_a_blank_secret_is_reported_like_a_missing_one() -> None:
    # An encrypted value that is only whitespace (e.g. `pulumi config set --secret` with an empty paste).
    found = problems_of(config_with({f"{WINRM}.password": config.Secret("  \n")}))
    assert f"{WINRM}.password: is empty" in found, found


def test_secrets_compare_by_value_without_showing_it() -> None:
    assert config.Secret(PASSWORD) == config.Secret(PASSWORD)
    assert config.Secret(PASSWORD) != config.Secret(PASSPHRASE)
    assert config.Secret(PASSWORD) != PASSWORD, "a secret is never equal to its plaintext"


def test_login_settings_reach_the_hosts_as_secrets_when_either_side_says_secret() -> None:
    # clientSecret is a secret even when it was set without --secret (the hosts' inputs are then still encrypted
    # in the state); a setting the stack holds encrypted stays encrypted whatever its kind.
    import contextvars

    from pulumi.runtime import config as runtime_config

    def read() -> dict[str, bool]:
        runtime_config.set_all_config(
            {
                "azure-native:clientSecret": "plain-but-secret",
                "azure-native:clientId": "app",
                "azure-native:tenantId": "t",
            },
            ["azure-native:tenantId"],
        )
        return {i.key: i.secret for i in config.login_from_pulumi()}

    found = contextvars.copy_context().run(read)
    assert found == {"azure-native:clientId": False, "azure-native:tenantId": True, "azure-native:clientSecret": True}
