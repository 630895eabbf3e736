"""hooks.arm guards azure-mgmt-compute's models: one thread at a time works out a model class.

The SDK works out a class's fields the first time the class is instantiated, without a lock; two threads doing
that at once can leave one of them with a raw dict where a model belongs (`'dict' object has no attribute
'os_disk'`, seen in the 8-VM benchmark; Azure/azure-sdk-for-python#47426). These tests run in a fresh
interpreter each, where no class has been worked out yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SUB = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-images/providers/Microsoft.Compute"
VM_ANSWER = {
    "id": f"{_SUB}/virtualMachines/win-src",
    "name": "win-src",
    "location": "westeurope",
    "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "securityProfile": {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": True}},
        "storageProfile": {
            "osDisk": {
                "osType": "Windows",
                "name": "win-src_OsDisk",
                "createOption": "FromImage",
                "managedDisk": {"storageAccountType": "Premium_LRS", "id": f"{_SUB}/disks/win-src_OsDisk"},
            },
            "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 64}],
        },
        "osProfile": {"computerName": "win-src", "windowsConfiguration": {"provisionVMAgent": True}},
        "instanceView": {
            "vmAgent": {"vmAgentVersion": "2.7", "statuses": [{"code": "ProvisioningState/succeeded"}]},
            "statuses": [{"code": "PowerState/running"}],
        },
        "provisioningState": "Succeeded",
    },
}


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


def test_threads_reading_answers_at_once_work_out_each_class_one_at_a_time() -> None:
    """Four threads read the same VM answer at once; the SDK's lookup of field types is slowed so that, without
    the guard, their first-time work on a class overlaps. With it, never more than one thread is inside, and
    every thread gets models all the way down."""
    result = _fresh_python(
        f"""
        import json, threading, time
        from azure.mgmt.compute import models
        from azure.mgmt.compute._utils import model_base
        import hooks.arm  # the guard is put in place on import

        answer = json.loads({json.dumps(json.dumps(VM_ANSWER))})
        state = {{"inside": 0, "most": 0}}
        count = threading.Lock()
        lookup = model_base._get_model

        def slow_lookup(*args):
            with count:
                state["inside"] += 1
                state["most"] = max(state["most"], state["inside"])
            time.sleep(0.002)
            try:
                return lookup(*args)
            finally:
                with count:
                    state["inside"] -= 1

        model_base._get_model = slow_lookup
        start = threading.Barrier(4)
        seen = []

        def read():
            start.wait()
            vm = model_base._deserialize(models.VirtualMachine, answer)
            disk = vm.properties.storage_profile.os_disk
            seen.append(type(disk.managed_disk).__name__ + "/" + type(vm.properties.instance_view.vm_agent).__name__)

        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(json.dumps({{"most": state["most"], "seen": seen}}))
        """
    )
    assert result == {"most": 1, "seen": ["ManagedDiskParameters/VirtualMachineAgentInstanceView"] * 4}


def test_the_guard_is_in_place_once_for_the_locked_sdk() -> None:
    """The locked azure-mgmt-compute has the typespec models the guard is for (an upgrade that drops them makes
    this fail, so the guard is reviewed, not silently skipped); a second call does not wrap twice."""
    result = _fresh_python(
        """
        import json
        from azure.mgmt.compute import models
        import hooks.arm as arm
        base = next(k for k in models.VirtualMachine.__mro__ if k.__name__ == "Model")
        first = base.__dict__["__new__"]
        again = arm.guard_compute_models()
        print(json.dumps({"guarded": again, "same": base.__dict__["__new__"] is first}))
        """
    )
    assert result == {"guarded": True, "same": True}
