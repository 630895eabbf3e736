"""The guest half (GuestGeneralization) for Windows through the real dynamic provider host: fake ARM for the
VM's state, the local WS-Management server playing a scripted Windows guest for sysprep."""

# ruff: noqa: F811 (pytest fixtures imported from tests.fakes are reused as parameter names)
from __future__ import annotations

import base64
from typing import Any

import pytest

from hooks.providers.chain import GuestGeneralizationProvider
from tests.fakes.arm import FakeArm, fake_arm  # noqa: F401
from tests.fakes.dynamic_host import DynamicHost, HostError, host_factory, urn, with_provider  # noqa: F401
from tests.fakes.wsman import (  # noqa: F401
    FakeWsman,
    GuestModel,
    SysprepBehaviour,
    guest,
    ntlm_user_file,
    wsman_ca,
    wsman_server,
)
from tests.integration import test_vm_provider as vm_half

GUEST_URN = urn("GuestGeneralization", "win2022-1.0.0-guest")
RESEAL = "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE"


def windows_props(fake: FakeArm, vm_id: str, server: FakeWsman, model: GuestModel, password: str) -> dict[str, Any]:
    props: dict[str, Any] = {
        "resource_name": "win2022-1.0.0-guest",
        "vm_id": vm_id,
        "os_type": "Windows",
        "arm": {"endpoint": fake.endpoint, "audience": None, "poll_interval": 0.05, "operation_timeout": 10.0},
        "ssh": None,
        "winrm": {
            "host": server.host,
            "port": server.port,
            "scheme": "https",
            "transport": "basic",  # NTLM (the default) is covered below and in test_windows_guest.py
            "username": model.username,
            "ca_certificate": server.ca_pem,
            "certificate_sha256": None,
            "insecure_skip_certificate_validation": False,
            "connect_timeout": 3.0,
            "sysprep": {
                "mode": "vm",
                "extra_args": [],
                "skip_checks": [],
                "agent_timeout": 5.0,
                "timeout": 20.0,
                "poll_interval": 0.05,
            },
        },
        "capture": None,
        "credentials": {"password": password},
        **{k: None for k in ("action", "method", "detail", "started_at", "finished_at")},
    }
    return with_provider(GuestGeneralizationProvider(), props)


def test_sysprep_then_arm_half(
    fake_arm: FakeArm, host_factory: Any, wsman_server: FakeWsman, guest: GuestModel
) -> None:
    guest.services["RdAgent"].stopped_for_polls = 2
    guest.sysprep = SysprepBehaviour(undeployable_after=0.1, runtime=0.4)
    vm = fake_arm.add_vm(power_state="running", os_type="Windows")
    host: DynamicHost = host_factory(fake_arm.env)
    props = windows_props(fake_arm, vm.id, wsman_server, guest, guest.password)
    _, outs = host.create(GUEST_URN, props)
    assert outs["action"] == "sysprepped"
    assert outs["method"].startswith("sysprep /oobe /generalize /quiet /quit")
    assert guest.sysprep_launch_count == 1
    _, vm_outs = host.create(vm_half.URN, vm_half.props(fake_arm, vm.id))
    assert vm_outs["actions"] == ["deallocated", "generalized"]
    log = host.close()
    assert "ImageState" in log
    for text in (repr(outs), repr(vm_outs), log, base64.b64decode(props["__provider"]).decode("latin-1")):
        assert guest.password not in text


def test_generalized_vm_gets_no_winrm_connection(
    fake_arm: FakeArm, host_factory: Any, wsman_server: FakeWsman, guest: GuestModel
) -> None:
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True, os_type="Windows")
    host: DynamicHost = host_factory(fake_arm.env)
    _, outs = host.create(GUEST_URN, windows_props(fake_arm, vm.id, wsman_server, guest, guest.password))
    assert outs["action"] == "skipped"
    assert guest.requests == [], "a VM Azure reports generalized must not be contacted"


def test_failed_sysprep_error_carries_log_tail_not_password(
    fake_arm: FakeArm, host_factory: Any, wsman_server: FakeWsman, guest: GuestModel
) -> None:
    guest.sysprep = SysprepBehaviour(outcome="fail", runtime=0.2)
    vm = fake_arm.add_vm(power_state="running", os_type="Windows")
    host: DynamicHost = host_factory(fake_arm.env)
    with pytest.raises(HostError) as err:
        host.create(GUEST_URN, windows_props(fake_arm, vm.id, wsman_server, guest, guest.password))
    assert "setuperr.log" in err.value.details
    assert guest.password not in err.value.details
    assert guest.password not in host.close()
    assert not vm.generalized and fake_arm.non_get_requests() == []


def test_wrong_password_is_clear_and_not_echoed(
    fake_arm: FakeArm, host_factory: Any, wsman_server: FakeWsman, guest: GuestModel
) -> None:
    vm = fake_arm.add_vm(power_state="running", os_type="Windows")
    host: DynamicHost = host_factory(fake_arm.env)
    wrong = "Not-The-Password-31337"
    with pytest.raises(HostError) as err:
        host.create(GUEST_URN, windows_props(fake_arm, vm.id, wsman_server, guest, wrong))
    assert "password" in err.value.details.lower() or "credential" in err.value.details.lower()
    assert wrong not in err.value.details and wrong not in host.close()
    assert guest.sysprep_launch_count == 0


def test_sysprep_with_the_default_ntlm_over_http_with_message_encryption(
    fake_arm: FakeArm, host_factory: Any, guest: GuestModel, wsman_ca: Any, ntlm_user_file: str
) -> None:
    guest.sysprep = SysprepBehaviour(runtime=0.3)
    server = FakeWsman(guest, wsman_ca, auth="ntlm", https=False).start()
    try:
        vm = fake_arm.add_vm(power_state="running", os_type="Windows")
        host: DynamicHost = host_factory(fake_arm.env)
        props = windows_props(fake_arm, vm.id, server, guest, guest.password)
        props["winrm"].update(scheme="http", transport="ntlm", ca_certificate=None)
        props = with_provider(GuestGeneralizationProvider(), {k: v for k, v in props.items() if k != "__provider"})
        _, outs = host.create(GUEST_URN, props)
        assert outs["action"] == "sysprepped"
        assert guest.sysprep_launch_count == 1
        assert guest.sealed_requests > 0 and guest.ntlm_logons
        assert guest.password not in host.close()
    finally:
        server.stop()
