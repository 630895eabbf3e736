"""hooks.arm guards azure-mgmt-compute's models: one thread at a time works out a model class.

The SDK works out a class's fields the first time the class is instantiated, without a lock; two threads doing
that at once can leave one of them with a raw dict where a model belongs (`'dict' object has no attribute
'os_disk'`, seen in the 8-VM benchmark; Azure/azure-sdk-for-python#47426). The guard (hooks/arm/sdk_guard.py) is
put in place by the first ARM session, and one test here fails once the locked SDK no longer needs it. These tests
run in a fresh interpreter each, where no class has been worked out yet.
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
        from hooks import arm
        from hooks.targets import ArmSettings

        arm.session(ArmSettings())  # the first session puts the guard in place

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
    this fail, so the guard is reviewed, not silently skipped); importing hooks.arm leaves the SDK as it is, the
    first session guards it, and neither a second session nor a second call wraps it twice."""
    result = _fresh_python(
        """
        import json
        from azure.mgmt.compute import models
        from hooks import arm
        from hooks.targets import ArmSettings
        base = next(k for k in models.VirtualMachine.__mro__ if k.__name__ == "Model")
        unguarded = base.__dict__["__new__"]
        arm.session(ArmSettings())
        first = base.__dict__["__new__"]
        arm.session(ArmSettings(endpoint="https://management.usgovcloudapi.net"))
        again = arm.guard_compute_models()
        print(json.dumps({
            "at_import": first is unguarded,
            "guarded": again,
            "same": base.__dict__["__new__"] is first,
        }))
        """
    )
    assert result == {"at_import": False, "guarded": True, "same": True}


def test_importing_hooks_arm_leaves_the_sdk_as_it_is() -> None:
    """The guard is the first session's doing, not an import's: a process that imports hooks.arm without talking
    to ARM (the offline plan's step texts, a unit test) keeps the SDK unchanged."""
    result = _fresh_python(
        """
        import json
        from azure.mgmt.compute import models
        base = next(k for k in models.VirtualMachine.__mro__ if k.__name__ == "Model")
        before = base.__dict__["__new__"]
        import hooks.arm
        print(json.dumps({"unchanged": base.__dict__["__new__"] is before}))
        """
    )
    assert result == {"unchanged": True}


def test_the_locked_sdk_still_needs_the_guard() -> None:
    """Without the guard, the locked SDK still loses the race of #47426: while one thread's first set-up of a
    class reads its parent class's `__dict__`, another thread works the parent out and stores its table there,
    and the first thread's set-up dies with "dictionary changed size during iteration" (which the SDK's
    deserializer swallows, handing back a raw dict). The first thread is parked mid-read so the race is lost every
    time. When this fails, the SDK works its models out safely (microsoft/typespec#11236 released): remove
    hooks/arm/sdk_guard.py, its call in ArmSession, and these tests."""
    result = _fresh_python(
        """
        import json, threading
        from azure.mgmt.compute._utils import model_base

        class Parent(model_base.Model):
            name: str = model_base.rest_field()

        class Child(Parent):
            size: int = model_base.rest_field()

        reading, written = threading.Event(), threading.Event()

        class Gate:
            # Parks the first thread that looks at it, mid-way through its read of Parent's __dict__.
            first = True

            def __getattr__(self, name):
                if name == "_type" and Gate.first:
                    Gate.first = False
                    reading.set()
                    written.wait(10)
                raise AttributeError(name)

        Parent.gate = Gate()
        outcome = {}

        def first_child():
            try:
                Child(name="a", size=1)
                outcome["child"] = "built"
            except RuntimeError as exc:
                outcome["child"] = str(exc)

        thread = threading.Thread(target=first_child)
        thread.start()
        reading.wait(10)
        Parent(name="b")  # this thread works Parent out while the other reads Parent's __dict__
        written.set()
        thread.join()
        print(json.dumps(outcome))
        """
    )
    assert result == {"child": "dictionary changed size during iteration"}, (
        "azure-mgmt-compute now works its model classes out safely under concurrency: remove the guard "
        f"(hooks/arm/sdk_guard.py) and its tests. Seen: {result}"
    )
