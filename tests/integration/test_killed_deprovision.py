"""What `make recover` finds in a Linux guest a killed run was deprovisioning (commands/recover/killed_deprovision.py),
against ScriptedLinuxGuest (tests/fakes/ssh_guest.py) deprovisioned by the real Linux step. The sandbox's path
(waagent deleting the host keys while recovery watches) runs under the real CLI in tests/e2e/test_recovery.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from commands.recover.killed_deprovision import CannotTell, LoginRefused, find_out
from hooks.linux import deprovision
from tests.fakes.ssh_guest import ScriptedLinuxGuest
from tests.integration.test_linux_guest import Recorder


@pytest.fixture
def guest() -> Iterator[ScriptedLinuxGuest]:
    with ScriptedLinuxGuest() as running:
        yield running


def test_a_guest_nothing_was_done_to_is_left_to_the_step(guest: ScriptedLinuxGuest) -> None:
    said: list[str] = []
    found = find_out(guest.target(), said.append, interval=0.1)
    assert not found.deprovisioned
    assert "still offers the stack's host key and no deprovision runs there" in found.detail
    assert said == [] and guest.commands == ["ps -eo args="]


def test_a_guest_whose_host_keys_are_gone_was_deprovisioned() -> None:
    with ScriptedLinuxGuest(regenerate_ssh_host_key_pair=True) as guest:
        deprovision(guest.target(), Recorder().log)
        found = find_out(guest.target(), print, interval=0.1)
    assert found.deprovisioned
    assert "offers no host key any more: waagent deleted them" in found.detail


def test_a_deprovision_still_running_is_waited_for_to_its_end(guest: ScriptedLinuxGuest) -> None:
    """Seen running, then the user gone (an image that keeps its host keys): the deprovision went through."""
    guest.scripts_running = 1  # the killed run's deprovision.sh, still under way

    def waagent_ends(line: str) -> None:
        assert "a deprovision is still running on" in line and "(sudo -n sh -s)" in line, line
        guest.deprovisioned, guest.scripts_running = True, 0

    found = find_out(guest.target(), waagent_ends, interval=0.1)
    assert found.deprovisioned
    assert "the deprovision seen running" in found.detail and "azureuser is gone" in found.detail


def test_a_guest_that_kept_its_host_keys_but_refuses_the_login_is_left_to_the_user(guest: ScriptedLinuxGuest) -> None:
    """Ubuntu's waagent keeps the host keys: a refused login may be the deleted user, or a key that never worked."""
    deprovision(guest.target(), Recorder().log)
    with pytest.raises(LoginRefused) as refused:
        find_out(guest.target(), print, interval=0.1)
    message = str(refused.value)
    assert "refuses the login of azureuser with the credentials the killed run used" in message
    assert "either its deprovision went through" in message and "or those credentials never worked" in message
    assert guest.private_key.splitlines()[1] not in message


def test_another_host_key_or_no_answer_cannot_tell(guest: ScriptedLinuxGuest) -> None:
    with ScriptedLinuxGuest() as other, pytest.raises(CannotTell) as wrong:
        find_out(guest.target(host_key=other.host_public_key), print, interval=0.1)
    assert "not the configured ssh-ed25519 SHA256:" in str(wrong.value)
    assert guest.commands == [], "logged in to a machine with another host key"
    target = guest.target()
    guest.stop()
    with pytest.raises(CannotTell) as gone:
        find_out(target, print, interval=0.1)
    assert f"cannot connect to 127.0.0.1:{target.port}" in str(gone.value)
