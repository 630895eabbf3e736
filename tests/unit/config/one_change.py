"""One valid stack config (`base_config`) and one change to it (`config_with`), so that a failing test names exactly
one rule; `load`, `problems_of` and `the_problem` read any raw config (this one or stack_configs.base()) with `today`
fixed, so the end-of-life checks do not rot. `rule_cases` and `assert_rule` run a table of single rules: the change,
the key path reported, and a fragment of the message.
"""

from __future__ import annotations

import copy
import functools
import re
from datetime import date
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import config
from hooks.errors import ConfigError

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
    """A real `ssh-ed25519 AAAA...` public key (hooks.ssh_keys.parse_host_key decodes it)."""
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

Rule = tuple[dict[str, Any], str, str]
"""A single rule: the change to the base config, the key path it is reported at, and a fragment of the message."""


def rule_cases(table: list[Rule]) -> list[Any]:
    """The table as pytest parameters, each named by its path and the start of its message."""
    return [pytest.param(*rule, id=f"{rule[1]}:{rule[2][:40]}") for rule in table]


def assert_rule(changes: dict[str, Any], path: str, fragment: str) -> None:
    """The change is the config's one problem, reported at `path` with `fragment` in its message."""
    problem = the_problem(config_with(changes))
    assert problem.startswith(f"{path}: "), problem
    assert fragment in problem, problem
