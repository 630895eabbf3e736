"""Bad stack files under the real Pulumi CLI give the same clean message as `make plan`, never a traceback.

What the user sees depends on who reads the file first. The engine parses `Pulumi.<stack>.yaml` before the program
runs, so for malformed YAML (a tab, a duplicate key) the CLI's own error is what `pulumi preview` prints: it names
the line, and the program is never started. Everything the engine accepts reaches config/, which gives the
same problem lines under the CLI as under `make plan`.
"""

from __future__ import annotations

import io
import re
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import yaml

from commands import plan
from tests.e2e.harness import Workspace

pytestmark = pytest.mark.e2e

VM = (
    "/subscriptions/81bfe33b-d336-4213-9088-9360410b0807/resourceGroups/rg-build"
    "/providers/Microsoft.Compute/virtualMachines/{}"
)
PASSWORD_PATH = "sourceVms.win-build.winrm.password"


def good_config() -> dict[str, object]:
    return {
        "image-gallery:galleryName": "e2e_gallery",
        "image-gallery:galleryResourceGroup": "rg-gallery",
        "image-gallery:galleryLocation": "westeurope",
        "image-gallery:images": [
            {
                "name": "win2022",
                "osType": "Windows",
                "identifier": {"publisher": "contoso", "offer": "windows", "sku": "2022"},
                "versions": [{"version": "1.0.0", "sourceVm": "win-build", "targetRegions": [{"name": "westeurope"}]}],
            },
            {
                "name": "ubuntu",
                "osType": "Linux",
                "identifier": {"publisher": "contoso", "offer": "ubuntu", "sku": "22_04"},
                "versions": [
                    {"version": "1.0.0", "sourceVm": "linux-build", "targetRegions": [{"name": "westeurope"}]}
                ],
            },
        ],
        "image-gallery:sourceVms": {
            "win-build": {
                "id": VM.format("win-build-01"),
                "winrm": {"host": "10.0.0.5", "username": "imageadmin", "insecureSkipCertificateValidation": True},
            },
            "linux-build": {
                "id": VM.format("linux-build-01"),
                "ssh": {"host": "10.0.0.4", "username": "azureuser", "insecureIgnoreHostKey": True},
            },
        },
    }


def plan_message(ws: Workspace) -> str:
    err = io.StringIO()
    with redirect_stderr(err):
        code = plan.main([ws.stack], root=ws.project)
    assert code == 2, err.getvalue()
    return err.getvalue()


def problems(text: str) -> set[str]:
    """The `  - key.path: message` lines of a ConfigError, wherever they are printed."""
    return {m.strip() for m in re.findall(r"^\s*- ([\w\[\].:-]+: .*)$", text, re.M)}


def test_bad_stack_files_fail_cleanly_and_alike_under_the_cli_and_the_plan(tmp_path: Path, engine: Path) -> None:
    ws = Workspace(tmp_path, engine)
    ws.login()
    ws.init_stack(good_config())
    ws.set_secret(PASSWORD_PATH, "Winrm-Pa55!")  # the whole sourceVms key is now encrypted
    secured = ws.stack_file.read_text()
    doc = yaml.safe_load(secured)

    def write(change: dict[str, object]) -> None:
        data = yaml.safe_load(secured)
        data["config"].update(change)
        ws.stack_file.write_text(yaml.safe_dump(data, sort_keys=False))

    vms = doc["config"]["image-gallery:sourceVms"]
    # A plaintext private key beside the secure WinRM password: Pulumi encrypts the whole key, only the file shows it.
    vms["linux-build"]["ssh"]["privateKey"] = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
    )
    config_cases = {
        "plaintext-secret": {"image-gallery:sourceVms": vms},
        "misspelt-region": {"image-gallery:galleryLocation": "westeurop"},
        "infinite-timeout": {
            "image-gallery:images": [
                {
                    **doc["config"]["image-gallery:images"][0],
                    "versions": [
                        {**doc["config"]["image-gallery:images"][0]["versions"][0], "createTimeoutMinutes": "infinity"}
                    ],
                },
                doc["config"]["image-gallery:images"][1],
            ]
        },
        "empty-value": {"image-gallery:galleryName": ""},
    }
    for name, change in config_cases.items():
        write(change)
        expected = problems(plan_message(ws))
        assert expected, name
        result = ws.pulumi("preview", program=True)
        assert result.returncode != 0, name
        assert "Traceback" not in result.output, f"{name}:\n{result.output}"
        assert expected <= problems(result.output), f"{name}: plan said {expected}, the CLI:\n{result.output}"

    # Malformed YAML: the engine refuses the file before the program runs; both name the line.
    yaml_cases = {
        "tab": secured.replace("  image-gallery:galleryLocation", "\timage-gallery:galleryLocation"),
        "duplicate-key": secured.replace(
            "  image-gallery:galleryLocation: westeurope",
            "  image-gallery:galleryLocation: westeurope\n  image-gallery:galleryLocation: northeurope",
        ),
    }
    for name, text in yaml_cases.items():
        ws.stack_file.write_text(text)
        ours = plan_message(ws)
        result = ws.pulumi("preview", program=True)
        assert result.returncode != 0, name
        assert "Traceback" not in result.output + ours, name
        assert re.search(r"line \d+", ours) and re.search(r"line \d+", result.output), f"{name}: {result.output}"
        assert ws.stack_file.name in ours
    # The duplicate is named at the same line by both (for a tab, the CLI's YAML parser counts one line less).
    duplicate_at = re.search(r"line (\d+), column", ours)
    assert duplicate_at and f"line {duplicate_at[1]}: mapping key" in result.output, result.output
