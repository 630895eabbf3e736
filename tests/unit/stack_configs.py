"""Valid stack configurations for unit tests, as the Pulumi engine hands them to the program."""

from __future__ import annotations

import copy
import json
from typing import Any

SUBSCRIPTION = "81bfe33b-d336-4213-9088-9360410b0807"
PRINCIPAL = "2b1d6bff-ff47-4bfa-8861-9ae9a8dc314f"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFaKFZi9htO73Htd10oPJLzAGq+3TezxrfbeWW6DGXDr"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nUNIT-TEST-KEY-MATERIAL-4711\n-----END OPENSSH PRIVATE KEY-----\n"
WINRM_PASSWORD = "Unit-Test-Password-0815!"


def vm_id(name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/{name}"


def base() -> dict[str, Any]:
    """One Linux and one Windows definition, each with one version; a publisher with a tenant."""
    return copy.deepcopy(
        {
            "galleryName": "unit_gallery",
            "galleryResourceGroup": "rg-images",
            "galleryLocation": "westeurope",
            "publisherPrincipalId": PRINCIPAL,
            "publisherPrincipalType": "User",
            "armPollIntervalSeconds": 5,
            "armOperationTimeoutMinutes": 20,
            "images": [
                {
                    "name": "ubuntu",
                    "osType": "Linux",
                    "osState": "Generalized",
                    "hyperVGeneration": "V2",
                    "architecture": "x64",
                    "securityType": "TrustedLaunch",
                    "identifier": {"publisher": "contoso", "offer": "ubuntu", "sku": "22_04"},
                    "recommended": {"minVCpus": 2, "maxVCpus": 8},
                    "versions": [
                        {
                            "version": "1.2.3",
                            "sourceVm": "linux-src",
                            "replicaCount": 2,
                            "targetRegions": [
                                {"name": "westeurope", "replicaCount": 3, "storageAccountType": "Standard_ZRS"},
                                {"name": "northeurope"},
                            ],
                            "endOfLifeDate": "2030-01-31",
                            "createTimeoutMinutes": 240,
                        }
                    ],
                },
                {
                    "name": "win2022",
                    "osType": "Windows",
                    "hyperVGeneration": "V1",
                    "identifier": {"publisher": "contoso", "offer": "windows", "sku": "2022"},
                    "versions": [
                        {
                            "version": "0.0.1",
                            "sourceVm": "win-src",
                            "targetRegions": [{"name": "westeurope"}],
                            "protect": False,
                        }
                    ],
                },
            ],
            "sourceVms": {
                "linux-src": {
                    "id": vm_id("linux-src"),
                    "ssh": {
                        "host": "10.0.0.4",
                        "username": "azureuser",
                        "hostKey": HOST_KEY,
                        "privateKey": PRIVATE_KEY,
                    },
                },
                "win-src": {
                    "id": vm_id("win-src"),
                    "winrm": {
                        "host": "10.0.0.5",
                        "username": "imageadmin",
                        "password": WINRM_PASSWORD,
                        "insecureSkipCertificateValidation": True,
                    },
                },
            },
        }
    )


def as_engine_config(raw: dict[str, Any], project: str = "image-gallery") -> tuple[dict[str, str], list[str]]:
    """(config map with full keys and JSON values, secret keys), as `pulumi up` passes them."""
    values = {f"{project}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    return values, [f"{project}:sourceVms"]
