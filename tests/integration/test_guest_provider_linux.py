"""The guest half (GuestGeneralization) for Linux through the real dynamic provider host: fake ARM for the VM's
state, a real OpenSSH sshd and the real Debian waagent in a throwaway root for the guest; and, in every run (no
root needed), the scripted SSH guest of tests/fakes/ssh_guest.py."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hooks.providers.chain import GuestGeneralizationProvider
from tests.fakes.arm import FakeArm, fake_arm  # noqa: F401 (fixture)
from tests.fakes.dynamic_host import DynamicHost, HostError, host_factory, urn, with_provider  # noqa: F401
from tests.fakes.sandbox import Sandbox, sandbox_fixture, sandbox_rootfs  # noqa: F401
from tests.fakes.ssh_guest import SCRIPT_COMMAND, ScriptedLinuxGuest
from tests.integration import test_vm_provider as vm_half

GUEST_URN = urn("GuestGeneralization", "ubuntu-1.0.0-guest")


def capture(vm_location: str = "westeurope") -> dict[str, Any]:
    """A capture input that matches the fake VM's defaults (Linux, V2, TrustedLaunch, x64, westeurope)."""
    return {
        "definition": {
            "name": "ubuntu",
            "os_type": "Linux",
            "os_state": "Generalized",
            "hyper_v_generation": "V2",
            "architecture": "x64",
            "security_type": "TrustedLaunch",
        },
        "version": "1.0.0",
        "target_regions": [vm_location],
        "gallery_id": None,
        "gallery_resource_group": "rg-gallery",
        "gallery_name": "gal",
        "publisher_tenant_id": None,
        "on_arm_unreachable": "fail",
        "paths": {"definition": "images[0]", "version": "images[0].versions[0]", "source_vm": "sourceVms.src"},
    }


def guest_props(fake: FakeArm, vm_id: str, *, host: str, port: int, host_key: str, **creds: str) -> dict[str, Any]:
    props: dict[str, Any] = {
        "resource_name": "ubuntu-1.0.0-guest",
        "vm_id": vm_id,
        "os_type": "Linux",
        "arm": {"endpoint": fake.endpoint, "audience": None, "poll_interval": 0.05, "operation_timeout": 10.0},
        "ssh": {
            "host": host,
            "port": port,
            "username": "azureuser",
            "host_key": host_key,
            "insecure_ignore_host_key": False,
            "connect_timeout": 5.0,
            "command_timeout": 60.0,
        },
        "winrm": None,
        "capture": capture(),
        "credentials": creds,
        **{k: None for k in ("action", "method", "detail", "started_at", "finished_at")},
    }
    return with_provider(GuestGeneralizationProvider(), props)


def sandbox_props(fake: FakeArm, vm_id: str, sandbox: Sandbox) -> dict[str, Any]:
    p = guest_props(
        fake, vm_id, host=sandbox.host, port=sandbox.port, host_key=sandbox.host_key, private_key=sandbox.private_key
    )
    p["ssh"]["username"] = sandbox.username
    return p


@pytest.fixture
def counting_listener() -> Iterator[tuple[int, list[int]]]:
    """A TCP port that counts connection attempts (and closes them at once)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(timeout=2)
    server.close()


def test_deprovisions_with_the_real_waagent(fake_arm: FakeArm, host_factory: Any, sandbox: Sandbox) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="running")
    host: DynamicHost = host_factory(fake_arm.env)
    props = sandbox_props(fake_arm, vm.id, sandbox)
    assert host.check(GUEST_URN, {}, props).failures == []
    id_, outs = host.create(GUEST_URN, props)
    assert outs["action"] == "deprovisioned"
    assert "waagent" in outs["method"]
    assert outs["vm_id"] == vm.id and outs["finished_at"]
    assert not sandbox.user_exists(sandbox.username), "waagent -deprovision+user deletes the login user"
    assert not list((sandbox.root / "etc/ssh").glob("ssh_host_*key*"))
    assert not (sandbox.root / "etc/resolv.conf").exists()
    assert "credentials" not in outs
    # Then the ARM half finishes the chain, and refresh/delete leave the VM alone.
    _, vm_outs = host.create(vm_half.URN, vm_half.props(fake_arm, vm.id))
    assert vm_outs["generalized"] is True
    assert host.read(GUEST_URN, id_, outs)[1]["action"] == "deprovisioned"
    host.delete(GUEST_URN, id_, outs)
    log = host.close()
    assert sandbox.private_key not in log
    assert "left untouched" in log


def test_deprovisions_a_running_linux_vm_over_ssh_without_root(fake_arm: FakeArm, host_factory: Any) -> None:  # noqa: F811
    # The Linux branch of the pipeline where the sandbox cannot run: the same provider, a scripted guest.
    vm = fake_arm.add_vm(power_state="running")
    host: DynamicHost = host_factory(fake_arm.env)
    with ScriptedLinuxGuest() as guest:
        props = guest_props(
            fake_arm, vm.id, host=guest.host, port=guest.port, host_key=guest.host_key, private_key=guest.private_key
        )
        _, outs = host.create(GUEST_URN, props)
        assert outs["action"] == "deprovisioned" and "waagent" in outs["method"]
        assert guest.deprovisioned and guest.commands == [SCRIPT_COMMAND]
        assert "credentials" not in outs
        # Azure now reports it generalized: a second run of the guest half leaves the guest alone.
        _, vm_outs = host.create(vm_half.URN, vm_half.props(fake_arm, vm.id))
        assert vm_outs["generalized"] is True
        _, again = host.create(GUEST_URN, props)
        assert again["action"] == "skipped" and guest.commands == [SCRIPT_COMMAND]
    assert guest.private_key not in host.close()


def test_generalized_vm_is_never_contacted(
    fake_arm: FakeArm,  # noqa: F811
    host_factory: Any,  # noqa: F811
    counting_listener: tuple[int, list[int]],
) -> None:
    port, accepted = counting_listener
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True)
    host: DynamicHost = host_factory(fake_arm.env)
    props = guest_props(fake_arm, vm.id, host="127.0.0.1", port=port, host_key=_any_host_key(), private_key="k")
    _, outs = host.create(GUEST_URN, props)
    assert outs["action"] == "skipped"
    assert accepted == [], "no SSH connection may be made to a VM Azure reports generalized"
    assert len(fake_arm.az_calls()) == 1, "the guest half logs in to Azure once"
    assert fake_arm.non_get_requests() == []


def test_rerun_after_failure_between_guest_and_arm_steps(
    fake_arm: FakeArm,  # noqa: F811
    host_factory: Any,  # noqa: F811
    sandbox: Sandbox,
) -> None:
    vm = fake_arm.add_vm(power_state="running")
    host: DynamicHost = host_factory(fake_arm.env)
    _, outs = host.create(GUEST_URN, sandbox_props(fake_arm, vm.id, sandbox))
    assert outs["action"] == "deprovisioned"
    fake_arm.fail_next_lro("OperationPreempted", "The deallocation was preempted by a platform update.")
    with pytest.raises(HostError) as err:
        host.create(vm_half.URN, vm_half.props(fake_arm, vm.id))
    assert "preempted" in err.value.details
    sshd_log_before = sandbox.sshd_log.read_text() if sandbox.sshd_log.exists() else ""
    # `pulumi up` again: the guest half is already in the state, only the ARM half runs again.
    _, vm_outs = host.create(vm_half.URN, vm_half.props(fake_arm, vm.id))
    assert vm_outs["generalized"] is True and vm.generalized
    sshd_log_after = sandbox.sshd_log.read_text() if sandbox.sshd_log.exists() else ""

    # sshd may still be logging the end of the guest half's session: compare the connections it accepted.
    def accepted(log: str) -> list[str]:
        return [line for line in log.splitlines() if "Connection from" in line or "Accepted " in line]

    assert accepted(sshd_log_after) == accepted(sshd_log_before), "the ARM half never contacts the guest"


def test_guest_errors_are_clear_and_never_carry_the_key(
    fake_arm: FakeArm,  # noqa: F811
    host_factory: Any,  # noqa: F811
    sandbox: Sandbox,
) -> None:
    vm = fake_arm.add_vm(power_state="running")
    host: DynamicHost = host_factory(fake_arm.env)
    props = sandbox_props(fake_arm, vm.id, sandbox)
    props["ssh"]["host_key"] = _any_host_key()  # not the sandbox's: must be refused before anything runs
    with pytest.raises(HostError) as err:
        host.create(GUEST_URN, props)
    assert "host key" in err.value.details.lower()
    assert sandbox.private_key not in err.value.details
    assert sandbox.user_exists(sandbox.username), "nothing may run after a host key mismatch"
    assert sandbox.private_key not in host.close()


def test_stopped_vm_that_is_not_generalized_is_refused(fake_arm: FakeArm, host_factory: Any) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="deallocated")
    host: DynamicHost = host_factory(fake_arm.env)
    props = guest_props(fake_arm, vm.id, host="127.0.0.1", port=9, host_key=_any_host_key(), private_key="k")
    props["capture"] = None
    with pytest.raises(HostError) as err:
        host.create(GUEST_URN, props)
    assert "deallocated" in err.value.details and "do NOT start it" in err.value.details


def test_secrets_stay_out_of_blob_and_outputs(fake_arm: FakeArm, host_factory: Any) -> None:  # noqa: F811
    import base64

    secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET-MATERIAL-9f3a\n-----END OPENSSH PRIVATE KEY-----"
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True)
    props = guest_props(fake_arm, vm.id, host="127.0.0.1", port=9, host_key=_any_host_key(), private_key=secret)
    assert b"SECRET-MATERIAL" not in base64.b64decode(props["__provider"])
    assert len(props["__provider"]) < 200
    host: DynamicHost = host_factory(fake_arm.env)
    _, outs = host.create(GUEST_URN, props)
    assert "SECRET-MATERIAL" not in repr(outs)
    assert "SECRET-MATERIAL" not in host.close()


def test_diff_replaces_only_on_a_new_source_vm(fake_arm: FakeArm, host_factory: Any) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True)
    host: DynamicHost = host_factory(fake_arm.env)
    props = guest_props(fake_arm, vm.id, host="127.0.0.1", port=9, host_key=_any_host_key(), private_key="k")
    id_, outs = host.create(GUEST_URN, props)
    moved_host = dict(props, ssh={**props["ssh"], "host": "10.9.9.9"})
    assert not host.diff(GUEST_URN, id_, outs, moved_host).changes
    other = fake_arm.add_vm(name="other")
    assert host.diff(GUEST_URN, id_, outs, dict(props, vm_id=other.id)).replaces == ["vm_id"]


def _any_host_key() -> str:
    return f"ssh-ed25519 {_ED25519_PUB}"


# A syntactically valid Ed25519 public key that belongs to no sandbox.
_ED25519_PUB = "AAAAC3NzaC1lZDI1NTE5AAAAIFaKFZi9htO73Htd10oPJLzAGq+3TezxrfbeWW6DGXDr"
