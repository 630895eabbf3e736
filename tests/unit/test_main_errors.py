"""An invalid stack config ends the program with every problem listed and a non-zero exit, never a traceback.

Runs `python -m commands.plan bad` (the offline plan loads the config exactly as the program does) in a copy of the
project, because the plan finds the stack files in the project it belongs to.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VM_ID = (
    "/subscriptions/81bfe33b-d336-4213-9088-9360410b0807/resourceGroups/rg-build"
    "/providers/Microsoft.Compute/virtualMachines/ubuntu-build-01"
)
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nplaintext-private-key-body\n-----END OPENSSH PRIVATE KEY-----\n"


def copy_project(into: Path) -> None:
    for name in ("__main__.py", "Pulumi.yaml", "commands", "components", "config", "hooks"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, into / name)


def test_invalid_config_lists_every_problem_and_exits_2_without_traceback(tmp_path: Path) -> None:
    copy_project(tmp_path)
    bad = {
        "config": {
            "image-gallery:galleryName": ".contoso",
            "image-gallery:galleryResourceGroup": "rg-images",
            "image-gallery:galleryLocation": "westeurope",
            "image-gallery:galery": {"name": "typo"},
            "image-gallery:publisherPrincipalId": "someone@contoso.com",
            "image-gallery:images": [
                {
                    "name": "ubuntu",
                    "osType": "linux",
                    "identifier": {"publisher": "contoso", "offer": "ubuntu", "sku": "22_04"},
                    "versions": [
                        {"version": "1.0", "sourceVm": "ubuntu-build", "targetRegions": [{"name": "westeurope"}]},
                    ],
                }
            ],
            # Set with `pulumi config set --path` but without --secret: the key sits in the file in plaintext.
            "image-gallery:sourceVms": {
                "ubuntu-build": {
                    "id": VM_ID,
                    "ssh": {"host": "10.0.0.4", "username": "azureuser", "privateKey": PRIVATE_KEY, "port": 0},
                }
            },
        }
    }
    (tmp_path / "Pulumi.bad.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))

    run = subprocess.run(
        [sys.executable, "-m", "commands.plan", "bad"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert run.stdout == ""
    expected = [
        "galleryName: '.contoso' is not a valid gallery name",
        "publisherPrincipalId: 'someone@contoso.com' is not a GUID",
        "sourceVms.ubuntu-build.ssh.port: 0 is out of range 1-65535",
        "sourceVms.ubuntu-build.ssh.privateKey: is stored in plaintext; store it encrypted with "
        "`pulumi config set --secret --path 'sourceVms.ubuntu-build.ssh.privateKey'`",
        "sourceVms.ubuntu-build.ssh.hostKey: is required",
        "images[0].osType: 'linux' is not one of 'Linux', 'Windows'",
        "images[0].versions[0].version: '1.0' is not Major.Minor.Patch",
        "galery: unknown key",
    ]
    assert run.stderr.startswith("plan of stack 'bad' failed: invalid stack configuration:\n")
    listed = [line.removeprefix("  - ") for line in run.stderr.splitlines()[1:]]
    assert len(listed) == len(expected), run.stderr
    for line, start in zip(listed, expected, strict=True):
        assert line.startswith(start), (line, start)
    assert "plaintext-private-key-body" not in run.stderr
