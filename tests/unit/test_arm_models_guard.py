"""What `guard_compute_models` (hooks/arm/sdk_guard.py) says about the guard it puts in place: True each time,
the first included, and the models' `__new__` wrapped once however often it is called. In a fresh interpreter
each, as tests/unit/test_arm_models.py, since the guard is process-wide."""

from __future__ import annotations

from tests.unit.test_arm_models import _fresh_python


def test_the_guard_says_it_is_in_place_from_the_first_call_on() -> None:
    result = _fresh_python(
        """
        import json
        from azure.mgmt.compute import models
        from hooks.arm.sdk_guard import guard_compute_models
        base = next(k for k in models.VirtualMachine.__mro__ if k.__name__ == "Model")
        first = guard_compute_models()
        wrapped = base.__dict__["__new__"]
        second = guard_compute_models()
        print(json.dumps({"first": first, "second": second, "wrapped once": base.__dict__["__new__"] is wrapped}))
        """
    )
    assert result == {"first": True, "second": True, "wrapped once": True}


def test_models_built_under_the_guard_are_the_sdks_models() -> None:
    result = _fresh_python(
        """
        import json
        from azure.mgmt.compute import models
        from hooks.arm.sdk_guard import guard_compute_models
        guard_compute_models()
        disk = models.OSDisk(os_type="Linux", create_option="FromImage", disk_size_gb=30)
        print(json.dumps({"type": type(disk).__name__, "size": disk.disk_size_gb, "os": disk.os_type}))
        """
    )
    assert result == {"type": "OSDisk", "size": 30, "os": "Linux"}
