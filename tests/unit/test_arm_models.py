"""azure-mgmt-compute's models are settled in one thread before any answer is read into them (hooks.arm).

The SDK works out a model class's fields the first time the class is instantiated, and two threads doing that
at once can leave one of them with a raw dict where a model belongs (`'dict' object has no attribute 'os_disk'`
in the 8-VM benchmark). These tests run in a fresh interpreter each, where no class has been worked out yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SUB = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-images/providers/Microsoft.Compute"

# Shaped on recorded answers of GET virtualMachines/{vm}?$expand=instanceView, disks/{disk},
# galleries/{g}/images/{i} and images/{i}/versions/{v} (api-version 2024-07-01 / 2024-03-03), every optional
# branch a real answer carries filled in.
ANSWERS = {
    "VirtualMachine": {
        "id": f"{_SUB}/virtualMachines/win-src",
        "name": "win-src",
        "type": "Microsoft.Compute/virtualMachines",
        "location": "westeurope",
        "zones": ["1"],
        "tags": {"team": "platform"},
        "identity": {
            "type": "SystemAssigned, UserAssigned",
            "principalId": "p",
            "tenantId": "t",
            "userAssignedIdentities": {"/subscriptions/x/id": {"principalId": "p", "clientId": "c"}},
        },
        "plan": {"name": "p", "publisher": "pub", "product": "prod"},
        "resources": [
            {
                "id": f"{_SUB}/virtualMachines/win-src/extensions/ext",
                "name": "ext",
                "location": "westeurope",
                "properties": {"publisher": "Microsoft.Azure", "type": "Ext", "typeHandlerVersion": "1.0"},
            }
        ],
        "properties": {
            "vmId": "4a2f",
            "hardwareProfile": {"vmSize": "Standard_D2s_v5", "vmSizeProperties": {"vCPUsAvailable": 2}},
            "additionalCapabilities": {"ultraSSDEnabled": False, "hibernationEnabled": False},
            "securityProfile": {
                "securityType": "TrustedLaunch",
                "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
                "encryptionAtHost": False,
            },
            "storageProfile": {
                "imageReference": {
                    "publisher": "MicrosoftWindowsServer",
                    "offer": "WindowsServer",
                    "sku": "2022-datacenter-g2",
                    "version": "latest",
                    "exactVersion": "20348.2762.241006",
                },
                "osDisk": {
                    "osType": "Windows",
                    "name": "win-src_OsDisk",
                    "createOption": "FromImage",
                    "caching": "ReadWrite",
                    "managedDisk": {
                        "storageAccountType": "Premium_LRS",
                        "id": f"{_SUB}/disks/win-src_OsDisk",
                        "diskEncryptionSet": {"id": f"{_SUB}/diskEncryptionSets/des"},
                        "securityProfile": {"securityEncryptionType": "VMGuestStateOnly"},
                    },
                    "deleteOption": "Delete",
                    "diskSizeGB": 127,
                    "diffDiskSettings": {"option": "Local", "placement": "CacheDisk"},
                },
                "dataDisks": [
                    {
                        "lun": 0,
                        "name": "data0",
                        "createOption": "Empty",
                        "caching": "None",
                        "managedDisk": {"storageAccountType": "Premium_LRS", "id": f"{_SUB}/disks/data0"},
                        "deleteOption": "Detach",
                        "diskSizeGB": 64,
                        "toBeDetached": False,
                    }
                ],
                "diskControllerType": "SCSI",
            },
            "osProfile": {
                "computerName": "win-src",
                "adminUsername": "azureuser",
                "windowsConfiguration": {
                    "provisionVMAgent": True,
                    "enableAutomaticUpdates": True,
                    "patchSettings": {
                        "patchMode": "AutomaticByOS",
                        "assessmentMode": "ImageDefault",
                        "automaticByPlatformSettings": {"rebootSetting": "IfRequired"},
                    },
                    "winRM": {"listeners": [{"protocol": "Https", "certificateUrl": "https://kv/secret"}]},
                    "additionalUnattendContent": [{"passName": "OobeSystem", "content": "x"}],
                },
                "secrets": [{"sourceVault": {"id": "/kv"}, "vaultCertificates": [{"certificateUrl": "https://kv/c"}]}],
                "allowExtensionOperations": True,
                "requireGuestProvisionSignal": True,
            },
            "networkProfile": {
                "networkInterfaces": [{"id": f"{_SUB}/networkInterfaces/nic", "properties": {"primary": True}}]
            },
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": True, "storageUri": "https://sa/"}},
            "availabilitySet": {"id": f"{_SUB}/availabilitySets/as"},
            "billingProfile": {"maxPrice": -1},
            "provisioningState": "Succeeded",
            "timeCreated": "2026-11-01T10:00:00+00:00",
            "instanceView": {
                "computerName": "win-src",
                "osName": "Windows Server 2022 Datacenter",
                "osVersion": "10.0.20348",
                "hyperVGeneration": "V2",
                "vmAgent": {
                    "vmAgentVersion": "2.7.41491.1102",
                    "statuses": [
                        {"code": "ProvisioningState/succeeded", "level": "Info", "time": "2026-11-30T00:00:00Z"}
                    ],
                    "extensionHandlers": [
                        {"type": "Ext", "typeHandlerVersion": "1.0", "status": {"code": "Ready", "level": "Info"}}
                    ],
                },
                "disks": [
                    {
                        "name": "win-src_OsDisk",
                        "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info"}],
                        "encryptionSettings": [{"enabled": False}],
                    }
                ],
                "extensions": [
                    {
                        "name": "ext",
                        "type": "Ext",
                        "substatuses": [{"code": "c", "level": "Info"}],
                        "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info"}],
                    }
                ],
                "bootDiagnostics": {"status": {"code": "c", "level": "Info"}},
                "patchStatus": {
                    "availablePatchSummary": {
                        "status": "Succeeded",
                        "error": {"code": "x", "details": [{"code": "y"}]},
                    },
                    "lastPatchInstallationSummary": {"status": "Succeeded"},
                    "configurationStatuses": [{"code": "c", "level": "Info"}],
                },
                "statuses": [
                    {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded"},
                    {"code": "PowerState/running", "level": "Info", "displayStatus": "VM running"},
                ],
            },
        },
    },
    "Disk": {
        "id": f"{_SUB}/disks/win-src_OsDisk",
        "name": "win-src_OsDisk",
        "location": "westeurope",
        "sku": {"name": "Premium_LRS", "tier": "Premium"},
        "managedBy": f"{_SUB}/virtualMachines/win-src",
        "zones": ["1"],
        "properties": {
            "osType": "Windows",
            "hyperVGeneration": "V2",
            "supportedCapabilities": {"acceleratedNetwork": True, "architecture": "x64", "diskControllerTypes": "SCSI"},
            "creationData": {
                "createOption": "FromImage",
                "imageReference": {"id": "/Subscriptions/x/Providers/Microsoft.Compute/Locations/westeurope/img"},
            },
            "diskSizeGB": 127,
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "encryptionSettingsCollection": {"enabled": False, "encryptionSettings": []},
            "securityProfile": {"securityType": "TrustedLaunch"},
            "networkAccessPolicy": "AllowAll",
            "supportsHibernation": True,
            "diskState": "Attached",
            "provisioningState": "Succeeded",
        },
    },
    "GalleryImage": {
        "id": f"{_SUB}/galleries/g/images/win2022",
        "name": "win2022",
        "location": "westeurope",
        "properties": {
            "osType": "Windows",
            "osState": "Generalized",
            "hyperVGeneration": "V2",
            "identifier": {"publisher": "contoso", "offer": "win", "sku": "2022"},
            "recommended": {"vCPUs": {"min": 1, "max": 16}, "memory": {"min": 1, "max": 32}},
            "disallowed": {"diskTypes": ["Standard_LRS"]},
            "purchasePlan": {"name": "p", "publisher": "pub", "product": "prod"},
            "features": [{"name": "SecurityType", "value": "TrustedLaunch"}],
            "architecture": "x64",
            "provisioningState": "Succeeded",
        },
    },
    "GalleryImageVersion": {
        "id": f"{_SUB}/galleries/g/images/win2022/versions/1.0.0",
        "name": "1.0.0",
        "location": "westeurope",
        "properties": {
            "publishingProfile": {
                "targetRegions": [
                    {
                        "name": "West Europe",
                        "regionalReplicaCount": 1,
                        "storageAccountType": "Standard_LRS",
                        "encryption": {
                            "osDiskImage": {
                                "diskEncryptionSetId": "/des",
                                "securityProfile": {"confidentialVMEncryptionType": "EncryptedVMGuestStateOnlyWithPmk"},
                            },
                            "dataDiskImages": [{"lun": 0, "diskEncryptionSetId": "/des"}],
                        },
                    }
                ],
                "replicaCount": 1,
                "excludeFromLatest": False,
                "endOfLifeDate": "2027-11-30T00:00:00+00:00",
                "publishedDate": "2026-11-30T00:00:00+00:00",
                "storageAccountType": "Standard_LRS",
            },
            "storageProfile": {
                "source": {"virtualMachineId": f"{_SUB}/virtualMachines/win-src"},
                "osDiskImage": {"sizeInGB": 127, "hostCaching": "ReadWrite"},
                "dataDiskImages": [{"lun": 0, "sizeInGB": 64, "hostCaching": "None"}],
            },
            "safetyProfile": {"allowDeletionOfReplicatedLocations": False, "blockDeletionBeforeEndOfLife": True},
            "replicationStatus": {
                "aggregatedState": "Completed",
                "summary": [{"region": "West Europe", "state": "Completed", "progress": 100}],
            },
            "provisioningState": "Succeeded",
        },
    },
}
ANSWERS["VirtualMachineInstanceView"] = ANSWERS["VirtualMachine"]["properties"]["instanceView"]  # type: ignore[index]


def _fresh_python(script: str) -> dict[str, object]:
    """Run `script` in a new interpreter (no model class worked out yet); it prints one JSON line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_settling_covers_every_class_a_full_answer_holds() -> None:
    """Reading rich answers after the settle step works out no class the step left out (which threads could
    then race over), and every branch comes back as a model, never a raw dict."""
    result = _fresh_python(
        f"""
        import json
        from azure.mgmt.compute import models
        from azure.mgmt.compute._utils.model_base import Model, _deserialize
        import hooks.arm as arm
        arm.settle_compute_models()
        before = set(Model._calculated)
        answers = json.loads({json.dumps(json.dumps(ANSWERS))})
        raw = []
        def annotation_of(cls, name):
            for klass in cls.__mro__:
                if name in vars(klass).get("__annotations__", {{}}):
                    return vars(klass)["__annotations__"][name]
        def names_a_model(annotation):
            return any(issubclass(c, Model) for c in arm._referenced_models(annotation))
        def walk(value, path, expects_model):
            if isinstance(value, Model):
                for name in value._attr_to_rest_field:
                    walk(getattr(value, name), path + "." + name, names_a_model(annotation_of(type(value), name)))
            elif isinstance(value, dict):
                # A field that names a model answered by a dict holding no model is the raw JSON; maps of
                # models (userAssignedIdentities) hold models, maps of strings (tags) name none.
                if expects_model and not any(isinstance(v, Model) for v in value.values()):
                    raw.append(path)
                for key, item in value.items():
                    walk(item, f"{{path}}[{{key}}]", expects_model)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    walk(item, f"{{path}}[{{i}}]", expects_model)
        for name in arm.READ_MODELS:
            walk(_deserialize(getattr(models, name), answers[name]), name, True)
        print(json.dumps({{"new": sorted(set(Model._calculated) - before), "raw": raw}}))
        """
    )
    assert result == {"new": [], "raw": []}


def test_the_compute_client_settles_the_models_before_it_is_handed_out() -> None:
    result = _fresh_python(
        """
        import json
        from azure.mgmt.compute._utils.model_base import Model
        import hooks.arm as arm
        name = "azure.mgmt.compute.models._models.StorageProfile"
        before = name in Model._calculated
        arm.ArmSession("https://127.0.0.1:1", "https://management.azure.com/.default").compute("sub")
        print(json.dumps({"before": before, "after": name in Model._calculated}))
        """
    )
    assert result == {"before": False, "after": True}
