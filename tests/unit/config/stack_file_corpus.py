"""The project's corpus of stack files, read the way `make plan` reads them: each is Pulumi.dev.yaml with one
realistic change, and what must come of it.

- `BAD`: a mistake; `make plan` must refuse it cleanly (non-zero exit, no traceback, nothing on stdout) and name
  the key path (or the file and line for malformed YAML).
- `WARNED`: allowed, but the user's intent is ambiguous; the plan runs and a warning names the key.
- `GOOD`: a legitimate value at an edge of a rule; the plan must accept it (no false positives).

Each case runs `plan.main` in-process: a refusal stops it before the program runs (milliseconds), an accepted
file runs the program under mocks (~0.1 s). `counts()` is what `make bench FORMAT=json` reports as
`bad_configs_accepted` and `good_configs_refused`.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import tempfile
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from commands import plan

ROOT = Path(__file__).resolve().parents[3]
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
    """One stack file of the corpus: Pulumi.dev.yaml with `old` replaced by `new` (once)."""

    id: str
    old: str
    new: str
    names: str
    """What the message (or, for WARNED, the warning) must name: a key path, or the file and line for malformed
    YAML; empty for GOOD."""
    project: tuple[str, str] | None = None
    """A change to Pulumi.yaml instead (old, new)."""


def c(id: str, old: str, new: str, names: str = "") -> Case:
    return Case(id, old, new, names)


def p(id: str, old: str, new: str, names: str) -> Case:
    return Case(id, "", "", names, (old, new))


CONFIG = "config:\n"
"""Where a case adds top-level keys (`CONFIG`, `CONFIG + "  azure-native:clientId: ...\n"`)."""


BAD = [
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
    c("float-replicas", "replicaCount: 2", "replicaCount: 1.5", f"{LV}.targetRegions[0].replicaCount"),
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


# YAML as the Pulumi CLI reads it (go-yaml v3, config.stack_yaml): YAML 1.1's yes/no/on/off are text, Pulumi.yaml's
# declared types are checked as the CLI checks them.
YAML_BAD = [
    c(
        "yaml11-yes",
        "          createTimeoutMinutes: 180",
        "          createTimeoutMinutes: 180\n          excludeFromLatest: yes",
        f"{LV}.excludeFromLatest",
    ),
    c(
        "yaml11-off",
        "virtualMachines/ubuntu-build-01\n",
        "virtualMachines/ubuntu-build-01\n      deallocate: off\n",
        "sourceVms.ubuntu-build.deallocate",
    ),
    c("yaml11-no-declared-boolean", CONFIG, CONFIG + "  image-gallery:marketplace: no\n", "marketplace"),
    c(
        "yaml11-on-declared-boolean",
        CONFIG,
        CONFIG + "  image-gallery:allowUnknownRegions: On\n",
        "allowUnknownRegions",
    ),
    c("quoted-true-declared-boolean", CONFIG, CONFIG + '  image-gallery:marketplace: "True"\n', "marketplace"),
    c(
        "list-for-declared-string",
        CONFIG,
        CONFIG + "  image-gallery:galleryDescription: [a, b]\n",
        "galleryDescription",
    ),
    c("hex-for-declared-integer", CONFIG, CONFIG + '  image-gallery:parallelHosts: "0x4"\n', "parallelHosts"),
    c("one-key-two-spellings", "    owner: platform-team", "    1: a\n    1.0: b", FILE),
    c("bool-tag-on-yes", "          createTimeoutMinutes: 180", "          createTimeoutMinutes: !!bool yes", FILE),
    c("number-for-text", "sku: 22_04-lts-gen2", "sku: 2204", f"{L}.identifier.sku"),
]
YAML_GOOD = [
    # The CLI hands a whole float over as an integer (Go's JSON of 22.0 is 22): preview accepts these.
    c("whole-float-port", "port: 22", "port: 22.0"),
    c("whole-float-declared-integer", CONFIG, CONFIG + "  image-gallery:armOperationTimeoutMinutes: 30.0\n"),
    c("underscore-integer", "createTimeoutMinutes: 180", "createTimeoutMinutes: 1_440"),
    c("exponent-number", "connectTimeoutMinutes: 10", "connectTimeoutMinutes: 1e1"),
    c(
        "capitalised-boolean",
        "          createTimeoutMinutes: 180",
        "          createTimeoutMinutes: 180\n          excludeFromLatest: True",
    ),
    c("upper-case-declared-boolean", CONFIG, CONFIG + "  image-gallery:marketplace: TRUE\n"),
    c("signed-declared-integer", CONFIG, CONFIG + '  image-gallery:parallelHosts: "04"\n'),
    # YAML 1.1 booleans are text to the CLI: a tag value `off` is the text "off" (PyYAML made it false).
    c("tag-value-off", "    owner: platform-team", "    owner: platform-team\n    autoShutdown: off"),
    c("tag-value-no", "    owner: platform-team", "    owner: platform-team\n    backup: no"),
    # An unquoted date is a date to the CLI; the config takes the date it means.
    c("unquoted-end-of-life", 'endOfLifeDate: "2028-12-31"', "endOfLifeDate: 2028-12-31"),
]
YAML_WARNED = [
    c(
        "unquoted-date-description",
        "galleryDescription: Contoso golden images (dev)",
        "galleryDescription: 2026-01-01",
        "galleryDescription",
    ),
    c(
        "unquoted-date-tag",
        "    owner: platform-team",
        "    owner: platform-team\n    created: 2026-01-01",
        "galleryTags.created",
    ),
]

# The azure-native login settings (config.azure_login) and values that are easy to confuse.
TENANT = "62913c05-bccf-437c-868c-53cdabfbe8d4"  # the dev stack's publisherTenantId
PRINCIPAL = "2b1d6bff-ff47-4bfa-8861-9ae9a8dc314f"  # the dev stack's publisherPrincipalId
SUBSCRIPTION = "81bfe33b-d336-4213-9088-9360410b0807"  # the dev stack's source VMs' subscription
CLIENT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
OTHER_TENANT = "5f0d9a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6"


def top(*lines: str) -> str:
    """Top-level keys added to the stack file's config."""
    return CONFIG + "".join(f"  {line}\n" for line in lines)


LOGIN_BAD = [
    c("login-secret-plaintext", CONFIG, top("azure-native:clientSecret: Xy7~Q8.secret"), "azure-native:clientSecret"),
    c("login-oidc-token-plaintext", CONFIG, top("azure-native:oidcToken: eyJhbGciOi.x.y"), "azure-native:oidcToken"),
    c("login-misspelt-secret", CONFIG, top("azure-native:clientSceret: Xy7~Q8"), "azure-native:clientSceret"),
    c("login-use-msi-yes", CONFIG, top("azure-native:useMsi: yes"), "azure-native:useMsi"),
    c("login-client-id-name", CONFIG, top("azure-native:clientId: image-builder-sp"), "azure-native:clientId"),
    c("login-tenant-name", CONFIG, top("azure-native:tenantId: contoso"), "azure-native:tenantId"),
    c(
        "login-subscription-name",
        CONFIG,
        top("azure-native:subscriptionId: contoso-prod"),
        "azure-native:subscriptionId",
    ),
    c(
        "login-auxiliary-semicolons",
        CONFIG,
        top(f"azure-native:auxiliaryTenantIds: {TENANT};{OTHER_TENANT}"),
        "azure-native:auxiliaryTenantIds",
    ),
    c(
        "login-auxiliary-not-json",
        CONFIG,
        top(f"azure-native:auxiliaryTenantIds: '[{TENANT}, {OTHER_TENANT}]'"),
        "azure-native:auxiliaryTenantIds",
    ),
    c(
        "login-auxiliary-four",
        CONFIG,
        top(f"azure-native:auxiliaryTenantIds: [{TENANT}, {OTHER_TENANT}, {CLIENT}, a.onmicrosoft.com]"),
        "azure-native:auxiliaryTenantIds",
    ),
    c(
        "login-environment-unknown",
        CONFIG,
        top("azure-native:environment: AzureGermanCloud"),
        "azure-native:environment",
    ),
    c("login-location-typo", CONFIG, top("azure-native:location: westeurop"), "azure-native:location"),
    c(
        "login-certificate-not-path",
        CONFIG,
        top('azure-native:clientCertificatePath: "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----"'),
        "azure-native:clientCertificatePath",
    ),
    c(
        "login-audience-scope",
        CONFIG,
        top("azure-native:oidcAudience: api://AzureADTokenExchange/.default"),
        "azure-native:oidcAudience",
    ),
    c("login-client-id-list", CONFIG, top(f"azure-native:clientId: [{CLIENT}]"), "azure-native:clientId"),
    c("client-id-as-publisher", CONFIG, top(f"azure-native:clientId: {PRINCIPAL}"), "publisherPrincipalId"),
    c(
        "tenant-as-publisher",
        f"publisherPrincipalId: {PRINCIPAL}",
        f"publisherPrincipalId: {TENANT}",
        "publisherPrincipalId",
    ),
    c(
        "subscription-as-publisher",
        f"publisherPrincipalId: {PRINCIPAL}",
        f"publisherPrincipalId: {SUBSCRIPTION}",
        "publisherPrincipalId",
    ),
    c(
        "partner-center-principal-as-publisher",
        f"publisherPrincipalId: {PRINCIPAL}",
        "publisherPrincipalId: 5e5e5e5e-0000-4000-8000-000000000001\n"
        "  image-gallery:publisherAccess: partnerCenterServicePrincipals\n"
        "  image-gallery:partnerCenterPrincipalIds:\n"
        "    computeImageRegistry: 5e5e5e5e-0000-4000-8000-000000000001",
        "publisherPrincipalId",
    ),
    c(
        "partner-center-principal-id-not-a-guid",
        f"publisherPrincipalId: {PRINCIPAL}",
        f"publisherPrincipalId: {PRINCIPAL}\n"
        "  image-gallery:publisherAccess: partnerCenterServicePrincipals\n"
        "  image-gallery:partnerCenterPrincipalIds:\n"
        "    resourceProvider: 497d76fa",
        "partnerCenterPrincipalIds.resourceProvider",
    ),
    c(
        "role-as-publisher",
        f"publisherPrincipalId: {PRINCIPAL}",
        "publisherPrincipalId: 8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "publisherPrincipalId",
    ),
    c(
        "client-id-as-tenant",
        CONFIG,
        top(f"azure-native:clientId: {TENANT}", f"azure-native:tenantId: {TENANT}"),
        "azure-native:clientId",
    ),
    c(
        "arm-endpoint-resource-path",
        CONFIG,
        top(f"image-gallery:armEndpoint: https://management.azure.com/subscriptions/{SUBSCRIPTION}"),
        "armEndpoint",
    ),
    c(
        "arm-endpoint-api-version",
        CONFIG,
        top("image-gallery:armEndpoint: https://management.azure.com/2024-03-03"),
        "armEndpoint",
    ),
    c(
        "graph-endpoint-version",
        CONFIG,
        top("image-gallery:graphEndpoint: https://graph.microsoft.com/v1.0"),
        "graphEndpoint",
    ),
    c(
        "arm-audience-scope",
        CONFIG,
        top("image-gallery:armAudience: https://management.core.windows.net/.default"),
        "armAudience",
    ),
]
LOGIN_WARNED = [
    c("login-key-case", CONFIG, top(f"azure-native:ClientId: {CLIENT}"), "azure-native:ClientId"),
    c(
        "login-key-snake-case",
        CONFIG,
        top(f"azure-native:subscription_id: {SUBSCRIPTION}"),
        "azure-native:subscription_id",
    ),
    c("login-key-env-name", CONFIG, top(f"azure-native:ARM_TENANT_ID: {TENANT}"), "azure-native:ARM_TENANT_ID"),
    c("login-classic-namespace", CONFIG, top(f"azure:clientId: {CLIENT}"), "azure:clientId"),
    c("login-namespace-typo", CONFIG, top(f"azure-nativ:tenantId: {TENANT}"), "azure-nativ:tenantId"),
    c(
        "arm-endpoint-proxy-path",
        CONFIG,
        top("image-gallery:armEndpoint: https://proxy.contoso.example/arm"),
        "armEndpoint",
    ),
]
LOGIN_GOOD = [
    c("login-secret-encrypted", CONFIG, CONFIG + "  azure-native:clientSecret:\n    secure: v1:bG9naW4=\n"),
    c(
        "login-settings",
        CONFIG,
        top(
            f"azure-native:clientId: {CLIENT}",
            f"azure-native:tenantId: {TENANT}",
            f"azure-native:subscriptionId: {SUBSCRIPTION}",
            "azure-native:location: West Europe",
            "azure-native:environment: public",
            "azure-native:useOidc: true",
            "azure-native:oidcAudience: api://AzureADTokenExchange",
            "azure-native:disableInstanceDiscovery: False",
        ),
    ),
    c("login-tenant-domain", CONFIG, top("azure-native:tenantId: contoso.onmicrosoft.com")),
    c(
        "login-auxiliary-list",
        CONFIG,
        CONFIG + f"  azure-native:auxiliaryTenantIds:\n    - {OTHER_TENANT}\n    - fabrikam.onmicrosoft.com\n",
    ),
    c("login-auxiliary-json-text", CONFIG, top(f"""azure-native:auxiliaryTenantIds: '["{OTHER_TENANT}"]'""")),
    c("login-certificate-path", CONFIG, top("azure-native:clientCertificatePath: C:\\\\keys\\\\login.pfx")),
    c("other-providers-settings", CONFIG, top("aws:region: eu-west-1", "random:seed: 4")),
    c(
        "azure-stack-endpoints",
        CONFIG,
        top(
            "image-gallery:armEndpoint: https://management.local.azurestack.external/",
            "image-gallery:armAudience: https://management.adfs.azurestack.local/4de154de-f8a8-4017-af41-df619da68155",
        ),
    ),
    c("sovereign-graph", CONFIG, top("image-gallery:graphEndpoint: https://graph.microsoft.us/")),
]

# Rules across fields where Azure would refuse later (the test boot's size, disk encryption sets, Marketplace data
# disks), and administrator names by OS.
LINUX_HEAD = (
    "      hyperVGeneration: V2\n      architecture: x64\n      securityType: TrustedLaunch\n      identifier:\n"
)
LINUX_HEAD += "        publisher: contoso\n        offer: ubuntu-hardened\n"
LINUX_TAIL = "      description: Ubuntu 22.04 LTS, CIS hardened, Trusted Launch\n"
WINDOWS_TAIL = "      description: Windows Server 2022 Datacenter with the Contoso baseline\n"
SUBNET = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-build"
    "/subnets/validate"
)
DES = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-keys/providers/Microsoft.Compute/diskEncryptionSets/{{}}"
REGIONS = (
    "            - name: westeurope\n              replicaCount: 2\n              storageAccountType: Standard_ZRS\n"
    "            - name: northeurope\n              replicaCount: 1\n"
)


def validation(tail: str, **settings: str) -> str:
    """The definition that ends its head with `tail`, with `validate: true` and these validation settings."""
    lines = "".join(f"        {k}: {v}\n" for k, v in settings.items())
    block = f"      validate: true\n      validation:\n        resourceGroup: rg-validate\n        subnetId: {SUBNET}\n"
    return tail + block + lines


def booted_linux(
    id: str, names: str = "", architecture: str = "x64", security: str = "TrustedLaunch", **v: str
) -> Case:
    """images[0] (Linux) with another architecture or security type and a test boot."""
    head = LINUX_HEAD.replace("architecture: x64", f"architecture: {architecture}")
    head = head.replace("securityType: TrustedLaunch", f"securityType: {security}")
    old = LINUX_HEAD + "        sku: 22_04-lts-gen2\n" + LINUX_TAIL
    return c(id, old, validation(head + "        sku: 22_04-lts-gen2\n" + LINUX_TAIL, **v), names)


def booted_windows(id: str, names: str = "", **v: str) -> Case:
    return c(id, WINDOWS_TAIL, validation(WINDOWS_TAIL, **v), names)


def encrypted(id: str, first: str, second: str, names: str = "") -> Case:
    regions = REGIONS.replace(
        "storageAccountType: Standard_ZRS\n",
        f"storageAccountType: Standard_ZRS\n              diskEncryptionSetId: {DES.format(first)}\n",
    )
    regions += f"              diskEncryptionSetId: {DES.format(second)}\n"
    return c(id, REGIONS, regions, names)


def luns(id: str, count: int, names: str = "") -> Case:
    listed = ", ".join(str(n) for n in range(count))
    return c(
        id,
        "          createTimeoutMinutes: 180\n",
        f"          createTimeoutMinutes: 180\n          dataDiskLuns: [{listed}]\n",
        names,
    )


BOOT = f"{L}.validation"
CROSS_BAD = [
    booted_linux("boot-x64-size-arm64-image", f"{BOOT}.vmSize", architecture="Arm64", vmSize="Standard_D2s_v5"),
    booted_linux("boot-arm64-size-x64-image", f"{BOOT}.vmSize", vmSize="Standard_D2ps_v5"),
    booted_linux("boot-sgx-size-cvm-image", f"{BOOT}.vmSize", security="ConfidentialVM", vmSize="Standard_DC2s_v3"),
    booted_linux("boot-plain-size-cvm-image", f"{BOOT}.vmSize", security="ConfidentialVM", vmSize="Standard_D2s_v5"),
    booted_linux("boot-gen1-size-gen2-image", f"{BOOT}.vmSize", vmSize="Standard_A2_v2"),
    booted_linux("arm64-confidential-definition", f"{L}.securityType", architecture="Arm64", security="ConfidentialVM"),
    booted_linux("linux-admin-upper-case", f"{BOOT}.adminUsername", adminUsername="ImageAdmin"),
    booted_linux("linux-admin-65", f"{BOOT}.adminUsername", adminUsername="v" * 65),
    booted_windows("windows-admin-21", f"{W}.validation.adminUsername", adminUsername="a" * 21),
    booted_windows("windows-admin-ends-dot", f"{W}.validation.adminUsername", adminUsername="Admin."),
    booted_windows("windows-admin-reserved-case", f"{W}.validation.adminUsername", adminUsername="Administrator"),
    booted_windows("windows-admin-domain", f"{W}.validation.adminUsername", adminUsername="'CONTOSO\\igvalidate'"),
    encrypted("des-in-two-regions", "des-images", "des-images", f"{LV}.targetRegions[1].diskEncryptionSetId"),
    luns("marketplace-17-data-disks", 17, f"{LV}.dataDiskLuns"),
]
CROSS_WARNED = [
    encrypted("des-named-for-other-region", "des-westeurope", "des-westeurope-2", f"{LV}.targetRegions[1]"),
    booted_linux("boot-size-above-recommended", f"{BOOT}.vmSize", vmSize="Standard_D32s_v5"),
    booted_linux("linux-admin-33", f"{BOOT}.adminUsername", adminUsername="v" * 33),
]
CROSS_GOOD = [
    booted_linux("boot-arm64", architecture="Arm64", vmSize="Standard_D2ps_v5"),
    booted_linux("boot-arm64-default-size", architecture="Arm64"),
    booted_linux("boot-confidential", security="ConfidentialVM", vmSize="Standard_DC2as_v5"),
    booted_linux("boot-confidential-tdx", security="ConfidentialVM", vmSize="Standard_EC4es_v5"),
    booted_linux("boot-constrained-vcpus", vmSize="Standard_E4-2ds_v5"),
    booted_linux("linux-admin-32", adminUsername="v" * 32),
    booted_linux("linux-admin-underscore", adminUsername="_image-admin2"),
    booted_windows("windows-admin-upper-case", adminUsername="ImageAdmin"),
    booted_windows("windows-admin-20", adminUsername="Validate.Admin-2026x"),
    encrypted("des-per-region", "des-westeurope", "des-northeurope"),
    luns("marketplace-16-data-disks", 16),
]

# Windows logons that cannot work (config.source_vms).
WINRM_LOGON = "        host: 10.20.0.5\n        port: 5986\n        username: imageadmin\n        transport: ntlm\n"
LOGON_BAD = [
    c("winrm-kerberos-to-ip", WINRM_LOGON, WINRM_LOGON.replace("ntlm", "kerberos"), f"{WR}.transport"),
    c(
        "winrm-basic-domain-account",
        WINRM_LOGON,
        WINRM_LOGON.replace("ntlm", "basic").replace("imageadmin", "CONTOSO\\imageadmin"),
        f"{WR}.transport",
    ),
    c(
        "winrm-basic-upn",
        WINRM_LOGON,
        WINRM_LOGON.replace("ntlm", "basic").replace("imageadmin", "imageadmin@contoso.com"),
        f"{WR}.transport",
    ),
]
LOGON_GOOD = [
    c(
        "winrm-kerberos-to-host-name",
        WINRM_LOGON,
        WINRM_LOGON.replace("ntlm", "kerberos").replace("10.20.0.5", "win2022-build-01.contoso.local"),
    ),
    c("winrm-ntlm-domain-account", WINRM_LOGON, WINRM_LOGON.replace("imageadmin", "CONTOSO\\imageadmin")),
    c("winrm-basic-local-account", WINRM_LOGON, WINRM_LOGON.replace("ntlm", "basic")),
]

BAD += YAML_BAD + LOGIN_BAD + CROSS_BAD + LOGON_BAD
GOOD = [*YAML_GOOD, *LOGIN_GOOD, *CROSS_GOOD, *LOGON_GOOD]
WARNED = [*YAML_WARNED, *LOGIN_WARNED, *CROSS_WARNED]


def run(case: Case, root: Path, expect: str) -> str | None:
    """Run `make plan`'s code on the case in `root` (which holds a copy of Pulumi.yaml); None when the outcome is
    `expect` ("refused", "warned" or "accepted") as the corpus requires, else what went wrong."""
    stack_text = DEV.replace(case.old, case.new, 1) if case.old else DEV
    if case.old and stack_text == DEV:
        return "the change does not apply to Pulumi.dev.yaml"
    project_text = PROJECT_FILE
    if case.project:
        project_text = PROJECT_FILE.replace(*case.project, 1)
        if project_text == PROJECT_FILE:
            return "the change does not apply to Pulumi.yaml"
    (root / "Pulumi.yaml").write_text(project_text)
    (root / "Pulumi.case.yaml").write_text(stack_text)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = plan.main(["case"], root=root)
    except BaseException:  # any escape is a failure the corpus looks for
        return "raised:\n" + traceback.format_exc()
    stdout, stderr = out.getvalue(), err.getvalue()
    if "Traceback" in stdout + stderr:
        return f"traceback:\n{stderr}"
    if expect == "refused":
        if code == 0:
            return f"exit 0 (accepted); stderr: {stderr!r}"
        if stdout:
            return f"printed a plan: {stdout[:200]!r}"
        if case.names not in stderr:
            return f"message does not name {case.names!r}:\n{stderr}"
        return None
    if code != 0:
        return f"refused (exit {code}):\n{stderr}"
    warnings = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    if expect == "warned" and not any(case.names in w for w in warnings):
        return f"no warning names {case.names!r}; stderr:\n{stderr}"
    if expect == "accepted" and warnings:
        return f"accepted, but warned:\n{stderr}"
    return None


def failures(cases: Iterable[Case], expect: str, root: Path | None = None) -> dict[str, str]:
    """Case id -> what went wrong, for the cases whose outcome is not `expect`."""
    with tempfile.TemporaryDirectory() as tmp:
        where = root or Path(tmp)
        shutil.copy2(ROOT / "Pulumi.yaml", where / "Pulumi.yaml")
        return {case.id: why for case in cases if (why := run(case, where, expect)) is not None}


def counts() -> dict[str, int]:
    """The corpus's two error counts: bad stack files `make plan` lets through without a word (refused or, for the
    ambiguous ones, warned is right), and legitimate ones it refuses."""
    accepted = failures(BAD, "refused")
    unwarned = failures(WARNED, "warned")
    refused = failures(GOOD, "accepted")
    good_refused = [k for k, v in refused.items() if v.startswith(("refused", "raised", "traceback"))]
    return {
        "bad_configs": len(BAD) + len(WARNED),
        "bad_configs_accepted": len(accepted) + len(unwarned),
        "good_configs": len(GOOD),
        "good_configs_refused": len(good_refused),
    }
