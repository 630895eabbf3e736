"""The fake Azure CLI's restore commands (tests/fakes/arm.py's `az` runs this file for them): the four commands a
guest failure after a safety snapshot prints (hooks/safety_snapshots.py restore_commands), sent to the fake ARM as
the real CLI sends them, with the fake's token, and their operations followed until they end.

    az disk create --resource-group G --name N --source SNAPSHOT_ID   (PUT disks/N, createOption Copy)
    az vm deallocate --ids VM_ID                                      (POST .../deallocate)
    az vm update --ids VM_ID --os-disk DISK_ID                        (PATCH the VM's storageProfile.osDisk)
    az vm start --ids VM_ID                                           (POST .../start)

Run as `python az_restore.py <state dir> <az arguments…>`; only the standard library and requests (no repository
imports: it runs outside the test process).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import requests

DISKS_API = "2024-03-02"
VM_API = "2024-07-01"


def _options(args: list[str]) -> dict[str, str]:
    return {args[i].lstrip("-"): args[i + 1] for i in range(0, len(args) - 1, 2) if args[i].startswith("--")}


def main(state: Path, args: list[str]) -> int:
    endpoint = (state / "az-default").read_text().split()[0]
    token = json.loads((state / "az-token.json").read_text())["accessToken"]
    headers = {"Authorization": f"Bearer {token}"}
    subscription = json.loads((state / "az-token.json").read_text())["subscription"]

    def send(method: str, path: str, api: str, body: Any = None) -> Any:
        answer = requests.request(method, f"{endpoint}{path}?api-version={api}", json=body, headers=headers, timeout=30)
        if answer.status_code >= 400:
            error = answer.json().get("error", {})
            print(f"ERROR: ({error.get('code')}) {error.get('message')}", file=sys.stderr)
            raise SystemExit(1)
        operation = answer.headers.get("Azure-AsyncOperation")
        for _ in range(200):
            if not operation:
                break
            status = requests.get(operation, headers=headers, timeout=30).json().get("status")
            if status != "InProgress":
                break
            time.sleep(0.05)
        return answer.json() if answer.content else None

    group, options = args[:2], _options(args[2:])
    if group == ["disk", "create"]:
        path = f"/subscriptions/{subscription}/resourceGroups/{options['resource-group']}"
        path += f"/providers/Microsoft.Compute/disks/{options['name']}"
        snapshot = send("GET", options["source"], DISKS_API)  # az reads the source to learn its kind and region
        body = {
            "location": snapshot["location"],
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": options["source"]}},
        }
        print(json.dumps(send("PUT", path, DISKS_API, body)))
        return 0
    if group == ["vm", "update"] and "os-disk" in options:
        body = {"properties": {"storageProfile": {"osDisk": {"managedDisk": {"id": options["os-disk"]}}}}}
        print(json.dumps(send("PATCH", options["ids"], VM_API, body)))
        return 0
    if group[0] == "vm" and group[1] in ("deallocate", "start"):
        send("POST", f"{options['ids']}/{group[1]}", VM_API)
        return 0
    print(f"ERROR: fake az does not implement: {' '.join(args)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
