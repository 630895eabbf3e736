"""A corpus of bad stack files: each is Pulumi.dev.yaml with one realistic mistake, and the key path (or file
position) its message must name. Each runs through `make plan`'s code path (`plan.main`, in-process: a config
error stops it before the program runs, so a case takes milliseconds).

Asserted for every case: a non-zero exit, no traceback, nothing on stdout, and the expected key path in the
message. The result line (`N cases: N clean`) is printed in the test summary.
"""

from __future__ import annotations

import re
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from commands import plan

ROOT = Path(__file__).resolve().parents[2]
DEV = (ROOT / "Pulumi.dev.yaml").read_text()
PROJECT_FILE = (ROOT / "Pulumi.yaml").read_text()
PRIVATE_KEY_BLOCK = re.search(r"        privateKey:\n          secure: .*\n", DEV)
PASSWORD_BLOCK = re.search(r"        password:\n          secure: .*\n", DEV)
assert PRIVATE_KEY_BLOCK and PASSWORD_BLOCK, "Pulumi.dev.yaml changed shape: update the corpus"
PLAIN_KEY = (
    '        privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3Blbn...\\n-----END OPENSSH PRIVATE KEY-----\\n"\n'
)

L, W = "images[0]", "images[1]"
LV, WV = f"{L}.versions[0]", f"{W}.versions[0]"
SSH, WR = "sourceVms.ubuntu-build.ssh", "sourceVms.win2022-build.winrm"
FILE = "Pulumi.case.yaml, line"
WIN_REGIONS = "sourceVm: win2022-build\n          targetRegions:\n            - name: westeurope\n"
HTTP = "        port: 5986\n"
PIN_LINE = re.search(r"        certificateSha256: .*\n", DEV)
assert PIN_LINE


@dataclass(frozen=True)
class Case:
    id: str
    old: str
    new: str
    names: str
    """What the message must name: a key path, or the file and line for malformed YAML."""
    project: tuple[str, str] | None = None
    """A change to Pulumi.yaml instead (old, new)."""


def c(id: str, old: str, new: str, names: str) -> Case:
    return Case(id, old, new, names)


def p(id: str, old: str, new: str, names: str) -> Case:
    return Case(id, "", "", names, (old, new))


CASES = [
    # 1. secrets: each field on its own, whatever else is secure
    c("plaintext-key-beside-secure-password", PRIVATE_KEY_BLOCK[0], PLAIN_KEY, f"{SSH}.privateKey"),
    c("plaintext-password-beside-secure-key", PASSWORD_BLOCK[0], "        password: Winrm-Pa55!\n", f"{WR}.password"),
    c(
        "plaintext-passphrase",
        PRIVATE_KEY_BLOCK[0],
        PRIVATE_KEY_BLOCK[0] + "        passphrase: hunter2\n",
        f"{SSH}.passphrase",
    ),
    c("plaintext-ssh-password", PRIVATE_KEY_BLOCK[0], "        password: Ssh-Pa55!\n", f"{SSH}.password"),
    c("no-ssh-credential", PRIVATE_KEY_BLOCK[0], "", SSH),
    c("no-winrm-password", PASSWORD_BLOCK[0], "", f"{WR}.password"),
    c("secure-gallery-name", "galleryName: contoso_images_dev", "galleryName:\n    secure: v1:AAAA", "galleryName"),
    c("key-and-password", PRIVATE_KEY_BLOCK[0], PRIVATE_KEY_BLOCK[0] + "        password: also-this\n", SSH),
    # 2. malformed YAML and wrong shapes: the file, line and column
    c("tab-indent", "  image-gallery:galleryLocation", "\timage-gallery:galleryLocation", FILE),
    c("unbalanced-quote", "galleryLocation: westeurope", 'galleryLocation: "westeurope', FILE),
    c("bad-indentation", "  image-gallery:galleryLocation", "   image-gallery:galleryLocation", FILE),
    c("missing-colon", "image-gallery:galleryLocation: westeurope", "image-gallery:galleryLocation westeurope", FILE),
    c("unclosed-flow-list", "        - version: 1.0.0", "        - version: [1.0.0", FILE),
    c("top-level-list", DEV, "- config\n- image-gallery:galleryName\n", "Pulumi.case.yaml: the top level"),
    c("top-level-string", DEV, "image-gallery:galleryName contoso\n", "Pulumi.case.yaml: the top level"),
    c("config-list", DEV, "config:\n  - image-gallery:galleryName: contoso\n", "Pulumi.case.yaml: config"),
    c("config-string", DEV, "config: image-gallery:galleryName=contoso\n", "Pulumi.case.yaml: config"),
    c("inf-timeout", "createTimeoutMinutes: 180", "createTimeoutMinutes: .inf", f"{LV}.createTimeoutMinutes"),
    c("1e400-timeout", "createTimeoutMinutes: 180", "createTimeoutMinutes: 1e400", f"{LV}.createTimeoutMinutes"),
    c("nan-timeout", "createTimeoutMinutes: 180", "createTimeoutMinutes: .nan", f"{LV}.createTimeoutMinutes"),
    c("infinity-timeout", "createTimeoutMinutes: 180", "createTimeoutMinutes: infinity", f"{LV}.createTimeoutMinutes"),
    c("inf-connect", "connectTimeoutMinutes: 10", "connectTimeoutMinutes: .inf", f"{SSH}.connectTimeoutMinutes"),
    c("1e400-sysprep", "timeoutMinutes: 60", "timeoutMinutes: 1e400", f"{WR}.sysprep.timeoutMinutes"),
    c(
        "inf-arm-timeout",
        "onArmUnreachable: fail",
        "onArmUnreachable: fail\n  image-gallery:armOperationTimeoutMinutes: .inf",
        "armOperationTimeoutMinutes",
    ),
    # 3. silently wrong values
    c(
        "duplicate-top-level",
        "  image-gallery:onArmUnreachable: fail",
        "  image-gallery:onArmUnreachable: fail\n  image-gallery:galleryName: other",
        "'image-gallery:galleryName'",
    ),
    c("duplicate-source-vm", "    win2022-build:\n", "    ubuntu-build:\n", "'ubuntu-build'"),
    c("duplicate-host", "        host: 10.20.0.5\n", "        host: 10.20.0.5\n        host: 10.20.0.6\n", "'host'"),
    c(
        "duplicate-version-key",
        "          sourceVm: ubuntu-build\n",
        "          sourceVm: ubuntu-build\n          sourceVm: ubuntu-build\n",
        "'sourceVm'",
    ),
    c("duplicate-image-key", "      osType: Linux\n", "      osType: Linux\n      osType: Windows\n", "'osType'"),
    c("empty-gallery-name", "galleryName: contoso_images_dev", "galleryName:", "galleryName"),
    c("empty-resource-group", "galleryResourceGroup: rg-images-dev", "galleryResourceGroup:", "galleryResourceGroup"),
    c("empty-location", "galleryLocation: westeurope", "galleryLocation:", "galleryLocation"),
    c("empty-host", "host: 10.20.0.4", "host:", f"{SSH}.host"),
    c("empty-source-vm", "sourceVm: ubuntu-build", "sourceVm:", f"{LV}.sourceVm"),
    c("empty-os-type", "osType: Linux", "osType:", f"{L}.osType"),
    c("empty-port", "port: 5986", "port:", f"{WR}.port"),
    c("empty-sysprep-mode", "mode: vm", "mode:", f"{WR}.sysprep.mode"),
    c(
        "float-poll-interval",
        "onArmUnreachable: fail",
        "onArmUnreachable: fail\n  image-gallery:armPollIntervalSeconds: 2.5",
        "armPollIntervalSeconds",
    ),
    c(
        "float-operation-timeout",
        "onArmUnreachable: fail",
        "onArmUnreachable: fail\n  image-gallery:armOperationTimeoutMinutes: 30.0",
        "armOperationTimeoutMinutes",
    ),
    c("float-replicas", "replicaCount: 2", "replicaCount: 1.5", f"{LV}.targetRegions[0].replicaCount"),
    c("float-port", "port: 22", "port: 22.0", f"{SSH}.port"),
    c("float-vcpus", "minVCpus: 2", "minVCpus: 2.5", f"{L}.recommended.minVCpus"),
    p(
        "project-unknown-type",
        "  armPollIntervalSeconds:\n    type: integer",
        "  armPollIntervalSeconds:\n    type: int",
        "config.armPollIntervalSeconds.type",
    ),
    p(
        "project-misspelt-default",
        "  galleryDescription:\n    type: string\n    default:",
        "  galleryDescription:\n    type: string\n    defualt:",
        "config.galleryDescription",
    ),
    p(
        "project-default-wrong-type",
        "    type: integer\n    default: 15",
        "    type: integer\n    default: fifteen",
        "config.armPollIntervalSeconds.default",
    ),
    # 4. keys that do nothing: a misspelt namespace, unknown keys
    c("namespace-galery", "image-gallery:galleryName:", "image-galery:galleryName:", "image-galery:galleryName"),
    c(
        "namespace-no-dash",
        "image-gallery:galleryResourceGroup:",
        "imagegallery:galleryResourceGroup:",
        "imagegallery:galleryResourceGroup",
    ),
    c(
        "namespace-underscore",
        "image-gallery:galleryLocation:",
        "image_gallery:galleryLocation:",
        "image_gallery:galleryLocation",
    ),
    c("namespace-images", "image-gallery:images:", "image-gallerry:images:", "image-gallerry:images"),
    c("unknown-top-level", "image-gallery:galleryLocation:", "image-gallery:galleryLocaton:", "galleryLocaton"),
    c("unknown-host-key", "hostKey:", "hostkey:", f"{SSH}.hostkey"),
    c(
        "unknown-target-region",
        "          targetRegions:\n            - name: westeurope\n              replicaCount: 2",
        "          targetRegion:\n            - name: westeurope\n              replicaCount: 2",
        f"{LV}.targetRegion",
    ),
    c(
        "unknown-replication-mode",
        "          createTimeoutMinutes: 180",
        "          createTimeoutMinutes: 180\n          replicationMod: Shallow",
        f"{LV}.replicationMod",
    ),
    c(
        "unknown-skip-check",
        "          timeoutMinutes: 60",
        "          timeoutMinutes: 60\n          skipCheck: [appx]",
        f"{WR}.sysprep.skipCheck",
    ),
    c("unknown-use-https", HTTP, HTTP + "        useHTTPS: false\n", f"{WR}.useHTTPS"),
    # 5. Azure's rules
    c("gallery-ends-underscore", "contoso_images_dev", "contoso_images_dev_", "galleryName"),
    c("gallery-starts-underscore", "contoso_images_dev", "_contoso_images_dev", "galleryName"),
    c("gallery-dash", "contoso_images_dev", "contoso-images-dev", "galleryName"),
    c("gallery-too-long", "contoso_images_dev", "c" * 81, "galleryName"),
    c("gallery-ends-period", "contoso_images_dev", "contoso_images_dev.", "galleryName"),
    c("rg-ends-period", "rg-images-dev", "rg-images-dev.", "galleryResourceGroup"),
    c("rg-space", "rg-images-dev", "'rg images dev'", "galleryResourceGroup"),
    c("rg-too-long", "rg-images-dev", "r" * 91, "galleryResourceGroup"),
    c(
        "version-full-width",
        "        - version: 1.0.0\n          sourceVm: ubuntu-build",
        "        - version: \uff11.0.0\n          sourceVm: ubuntu-build",
        f"{LV}.version",
    ),
    c("version-two-parts", "        - version: 1.0.0", "        - version: '1.0'", f"{LV}.version"),
    c("version-float", "        - version: 1.0.0", "        - version: 1.0", f"{LV}.version"),
    c("version-prerelease", "        - version: 1.0.0", "        - version: 1.0.0-beta", f"{LV}.version"),
    c("version-too-big", "        - version: 1.0.0", "        - version: 1.0.4294967296", f"{LV}.version"),
    c("tag-name-slash", "    owner: platform-team", "    cost/center: '4711'", "galleryTags.cost/center"),
    c("tag-name-angle", "    owner: platform-team", "    <owner>: platform-team", "galleryTags.<owner>"),
    c("tag-name-percent", "    owner: platform-team", "    '%owner': platform-team", "galleryTags.%owner"),
    c("tag-name-question", "    owner: platform-team", "    owner?: platform-team", "galleryTags.owner?"),
    c("tag-value-too-long", "    owner: platform-team", "    owner: " + "x" * 257, "galleryTags.owner"),
    c("tag-name-too-long", "    owner: platform-team", "    " + "o" * 513 + ": platform-team", "galleryTags.ooo"),
    c("too-many-tags", "    owner: platform-team", "\n".join(f"    tag{i}: v" for i in range(51)), "galleryTags"),
    c("tags-not-strings", "    owner: platform-team", "    owner: [platform, team]", "galleryTags"),
    c(
        "arm-endpoint-http",
        "onArmUnreachable: fail",
        "onArmUnreachable: fail\n  image-gallery:armEndpoint: http://management.azure.com",
        "armEndpoint",
    ),
    c(
        "arm-endpoint-no-host",
        "onArmUnreachable: fail",
        "onArmUnreachable: fail\n  image-gallery:armEndpoint: https://",
        "armEndpoint",
    ),
    c(
        "arm-endpoint-no-scheme",
        "onArmUnreachable: fail",
        "onArmUnreachable: fail\n  image-gallery:armEndpoint: management.azure.com",
        "armEndpoint",
    ),
    c(
        "arm-endpoint-bad-port",
        "onArmUnreachable: fail",
        "onArmUnreachable: fail\n  image-gallery:armEndpoint: https://management.azure.com:99999",
        "armEndpoint",
    ),
    c(
        "arm-endpoint-path-only",
        "onArmUnreachable: fail",
        "onArmUnreachable: fail\n  image-gallery:armEndpoint: https:///subscriptions",
        "armEndpoint",
    ),
    c(
        "arm-endpoint-space",
        "onArmUnreachable: fail",
        "onArmUnreachable: fail\n  image-gallery:armEndpoint: https://management azure.com",
        "armEndpoint",
    ),
    c(
        "pin-over-http",
        HTTP,
        "        port: 5985\n        useHttps: false\n        allowUnencryptedHttp: true\n",
        f"{WR}.certificateSha256",
    ),
    c("http-without-opt-in", HTTP, "        port: 5985\n        useHttps: false\n", f"{WR}.useHttps"),
    c("opt-in-over-https", HTTP, HTTP + "        allowUnencryptedHttp: true\n", f"{WR}.allowUnencryptedHttp"),
    c(
        "basic-over-http",
        HTTP + "        username: imageadmin\n        transport: ntlm\n" + PIN_LINE[0],
        "        port: 5985\n        useHttps: false\n        allowUnencryptedHttp: true\n"
        "        username: imageadmin\n        transport: basic\n",
        f"{WR}.transport",
    ),
    c("pin-too-short", PIN_LINE[0], "        certificateSha256: 3F:9A:1C\n", f"{WR}.certificateSha256"),
    c("winrm-port-range", "port: 5986", "port: 70000", f"{WR}.port"),
    c("ssh-port-zero", "port: 22", "port: 0", f"{SSH}.port"),
    c("host-key-garbage", "hostKey: ssh-ed25519 AAAA", "hostKey: ssh-ed25519 !!!!", f"{SSH}.hostKey"),
    c("host-with-space", "host: 10.20.0.4", "host: 10.20.0 .4", f"{SSH}.host"),
    c("vm-id-malformed", "virtualMachines/ubuntu-build-01", "vms/ubuntu-build-01", "sourceVms.ubuntu-build.id"),
    c(
        "principal-not-guid",
        "publisherPrincipalId: 2b1d6bff-ff47-4bfa-8861-9ae9a8dc314f",
        "publisherPrincipalId: someone@contoso.com",
        "publisherPrincipalId",
    ),
    c("role-reader", "publisherRole: Owner", "publisherRole: Reader", "publisherRole"),
    c("principal-type-case", "publisherPrincipalType: User", "publisherPrincipalType: user", "publisherPrincipalType"),
    c("arm-unreachable-ignore", "onArmUnreachable: fail", "onArmUnreachable: ignore", "onArmUnreachable"),
    c(
        "tenant-without-principal",
        "  image-gallery:publisherPrincipalId: 2b1d6bff-ff47-4bfa-8861-9ae9a8dc314f\n",
        "",
        "publisherTenantId",
    ),
    c("eol-in-past", 'endOfLifeDate: "2028-12-31"', 'endOfLifeDate: "2020-01-01"', f"{LV}.endOfLifeDate"),
    c("eol-malformed", 'endOfLifeDate: "2028-12-31"', 'endOfLifeDate: "2028-13-01"', f"{LV}.endOfLifeDate"),
    c("os-type-case", "osType: Linux", "osType: linux", f"{L}.osType"),
    c("os-state-case", "      osState: Generalized", "      osState: generalized", f"{L}.osState"),
    c("hyperv-v3", "hyperVGeneration: V2", "hyperVGeneration: V3", f"{L}.hyperVGeneration"),
    c("trusted-launch-gen1", "hyperVGeneration: V2", "hyperVGeneration: V1", f"{L}.securityType"),
    c("architecture-case", "architecture: x64", "architecture: arm64", f"{L}.architecture"),
    c(
        "storage-grs",
        "storageAccountType: Standard_LRS",
        "storageAccountType: Standard_GRS",
        f"{LV}.storageAccountType",
    ),
    c("replicas-zero", "replicaCount: 2", "replicaCount: 0", f"{LV}.targetRegions[0].replicaCount"),
    c("replicas-too-many", "replicaCount: 2", "replicaCount: 101", f"{LV}.targetRegions[0].replicaCount"),
    c("source-vm-typo", "sourceVm: ubuntu-build", "sourceVm: ubuntu-bild", f"{LV}.sourceVm"),
    c("sku-space", "sku: 22_04-lts-gen2", "sku: 22.04 lts", f"{L}.identifier.sku"),
    c("identifier-missing-offer", "        offer: ubuntu-hardened\n", "", f"{L}.identifier.offer"),
    c("duplicate-image-name", "name: win2022-datacenter", "name: ubuntu-2204-hardened", f"{W}.name"),
    c("vcpus-inverted", "minVCpus: 2", "minVCpus: 32", f"{L}.recommended.minVCpus"),
    c("transport-negotiate", "transport: ntlm", "transport: negotiate", f"{WR}.transport"),
    c("sysprep-mode-oobe", "mode: vm", "mode: oobe", f"{WR}.sysprep.mode"),
    c(
        "sysprep-own-flag",
        "          mode: vm",
        "          mode: vm\n          extraArgs: [/generalize]",
        f"{WR}.sysprep.extraArgs[0]",
    ),
    c(
        "sysprep-unknown-check",
        "          mode: vm",
        "          mode: vm\n          skipChecks: [antivirus]",
        f"{WR}.sysprep.skipChecks[0]",
    ),
    c("sysprep-timeout-zero", "timeoutMinutes: 60", "timeoutMinutes: 0", f"{WR}.sysprep.timeoutMinutes"),
    c("create-timeout-negative", "createTimeoutMinutes: 180", "createTimeoutMinutes: -5", f"{LV}.createTimeoutMinutes"),
    c("create-timeout-text", "createTimeoutMinutes: 180", "createTimeoutMinutes: 3h", f"{LV}.createTimeoutMinutes"),
    c(
        "exclude-not-bool",
        "createTimeoutMinutes: 180",
        "createTimeoutMinutes: 180\n          excludeFromLatest: maybe",
        f"{LV}.excludeFromLatest",
    ),
    c(
        "ssh-and-winrm",
        "      winrm:\n",
        "      ssh:\n        host: 10.20.0.5\n      winrm:\n",
        "sourceVms.win2022-build",
    ),
    c(
        "ignore-host-key-with-key",
        "connectTimeoutMinutes: 10",
        "connectTimeoutMinutes: 10\n        insecureIgnoreHostKey: true",
        f"{SSH}.insecureIgnoreHostKey",
    ),
    c(
        "skip-validation-with-pin",
        HTTP,
        HTTP + "        insecureSkipCertificateValidation: true\n",
        f"{WR}.insecureSkipCertificateValidation",
    ),
    c("ca-not-pem", PIN_LINE[0], "        caCertificate: MIIBkTCB+wIJAK\n", f"{WR}.caCertificate"),
    c(
        "images-string",
        "  image-gallery:images:\n",
        "  image-gallery:images: ubuntu-2204-hardened\n  image-gallery:imageList:\n",
        "images: must be a list",
    ),
    c(
        "target-regions-string",
        "          targetRegions:\n            - name: westeurope\n              replicaCount: 2\n"
        "              storageAccountType: Standard_ZRS\n"
        "            - name: northeurope\n              replicaCount: 1\n",
        "          targetRegions: westeurope\n",
        f"{LV}.targetRegions",
    ),
    c(
        "region-twice",
        "            - name: northeurope\n              replicaCount: 1\n          endOfLifeDate",
        "            - name: westeurope\n              replicaCount: 1\n          endOfLifeDate",
        f"{LV}.targetRegions",
    ),
    c(
        "region-twice-display-name",
        "            - name: northeurope\n              replicaCount: 1\n          endOfLifeDate",
        "            - name: West Europe\n              replicaCount: 1\n          endOfLifeDate",
        f"{LV}.targetRegions",
    ),
    # 6. regions
    c("location-typo", "galleryLocation: westeurope", "galleryLocation: westeurop", "galleryLocation"),
    c("location-unknown", "galleryLocation: westeurope", "galleryLocation: germanywest", "galleryLocation"),
    c("location-display-typo", "galleryLocation: westeurope", "galleryLocation: West Eurpe", "galleryLocation"),
    c(
        "region-typo",
        "            - name: northeurope",
        "            - name: northeurpe",
        f"{LV}.targetRegions[1].name",
    ),
    c(
        "region-gcp-style",
        "            - name: northeurope",
        "            - name: europe-west1",
        f"{LV}.targetRegions[1].name",
    ),
    c(
        "region-aws-style",
        "            - name: northeurope",
        "            - name: eu-west-1",
        f"{LV}.targetRegions[1].name",
    ),
    c(
        "region-suffix",
        "            - name: northeurope",
        "            - name: westeurope2",
        f"{LV}.targetRegions[1].name",
    ),
    c(
        "windows-region-typo",
        WIN_REGIONS,
        WIN_REGIONS.replace("westeurope", "wsteurope"),
        f"{WV}.targetRegions[0].name",
    ),
    c(
        "allow-unknown-not-bool",
        "onArmUnreachable: fail",
        "onArmUnreachable: fail\n  image-gallery:allowUnknownRegions: sometimes",
        "allowUnknownRegions",
    ),
]


def run_case(case: Case, root: Path, capsys: pytest.CaptureFixture[str]) -> str | None:
    """None when the case is refused cleanly, else what went wrong."""
    stack_text = DEV.replace(case.old, case.new, 1) if case.old else DEV
    if case.old and stack_text == DEV:
        return "the mutation does not apply to Pulumi.dev.yaml"
    project_text = PROJECT_FILE
    if case.project:
        project_text = PROJECT_FILE.replace(*case.project, 1)
        if project_text == PROJECT_FILE:
            return "the mutation does not apply to Pulumi.yaml"
    (root / "Pulumi.yaml").write_text(project_text)
    (root / "Pulumi.case.yaml").write_text(stack_text)
    capsys.readouterr()
    try:
        code = plan.main(["case"], root=root)
    except BaseException:  # any escape is the failure this corpus looks for
        return "raised:\n" + traceback.format_exc()
    out, err = capsys.readouterr()
    if code == 0:
        return f"exit 0 (accepted); stderr: {err!r}"
    if "Traceback" in out + err:
        return f"traceback:\n{err}"
    if out:
        return f"printed a plan: {out[:200]!r}"
    if case.names not in err:
        return f"message does not name {case.names!r}:\n{err}"
    return None


def test_every_bad_stack_file_is_refused_cleanly_naming_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    assert len(CASES) >= 100
    assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"
    shutil.copy2(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    failures = {case.id: why for case in CASES if (why := run_case(case, tmp_path, capsys)) is not None}
    line = f"{len(CASES)} cases: {len(CASES) - len(failures)} clean"
    request.config.stash[CORPUS_RESULT] = line
    assert not failures, line + "\n" + "\n".join(f"--- {k}: {v}" for k, v in failures.items())


CORPUS_RESULT = pytest.StashKey[str]()
