#!/bin/sh
# Generalize a Linux Azure VM so it can be captured into an Azure Compute Gallery image.
#
# Runs as root on the guest: hooks/linux.py pipes it to `sudo -n sh -s` over SSH; by hand:
#   sudo sh deprovision.sh [--keep-machine-id]
# After it, the VM must not be started again before it is captured (it has no host keys, no user, no resolv.conf,
# and an empty /etc/machine-id).
#
# Option: --keep-machine-id leaves /etc/machine-id as it is (the source VM's `ssh.keepMachineId: true`); by default
# it is emptied, so every VM made from the image gets its own.
#
# Output contract (hooks/linux.py reads it):
#   - progress lines start with "image-gallery: step "
#   - the last line on success is exactly "image-gallery: deprovision complete"; it is printed only after
#     everything, sync included, is done, so a session that dies after it has lost nothing
#   - errors start with "image-gallery: error: " and the exit code says which (see below).
set -eu

# Distinctive exit codes, chosen well away from waagent's own (0/1) and the shell's (126/127/128+n).
EXIT_NOT_ROOT=90
EXIT_NO_WAAGENT=91
EXIT_USAGE=92
EXIT_NO_HOST_KEY_GENERATOR=93

# The SSH session may die while we run (waagent deletes the user it belongs to). Ignore SIGHUP and SIGPIPE so
# the deprovisioning always runs to the end rather than stopping half-way; output to a dead session is lost.
trap '' HUP PIPE

say() {
    # A failed write (the session is gone) must not abort the work under `set -e`.
    printf 'image-gallery: %s\n' "$*" || true
}

fail() {
    code=$1
    shift
    printf 'image-gallery: error: %s\n' "$*" >&2 || true
    exit "$code"
}

# Step 4 deletes the SSH host keys, so something must create new ones when a VM made from the image first boots,
# or its sshd cannot start and the VM is unreachable. Prints what will, or nothing. Reads files only.
host_key_generator() {
    # cloud-init's ssh module (cc_ssh) deletes and regenerates the host keys on a new instance: ssh_deletekeys and
    # ssh_genkeytypes default to true and [rsa, ecdsa, ed25519].
    if command -v cloud-init >/dev/null 2>&1; then
        echo "cloud-init"
        return
    fi
    # waagent's provisioning creates a new pair with Provisioning.RegenerateSshHostKeyPair=y. Read as waagent reads
    # it (azurelinuxagent/common/conf.py): lines starting with # ignored, the last one wins, anything after a # in
    # the value dropped, quotes and blanks stripped, y or n in either case.
    if [ -f /etc/waagent.conf ]; then
        regenerate=$(sed -n 's/^[[:space:]]*Provisioning\.RegenerateSshHostKeyPair[[:space:]]*=//p' /etc/waagent.conf |
            tail -n 1 | sed 's/#.*//; s/[[:space:]"]//g' | tr 'Y' 'y')
        if [ "$regenerate" = y ]; then
            echo "waagent (Provisioning.RegenerateSshHostKeyPair=y in /etc/waagent.conf)"
            return
        fi
    fi
    # The distribution makes missing keys when sshd starts: RHEL, Fedora and Azure Linux with sshd-keygen@.service
    # (or sshd-keygen.service on older ones); others with an `ssh-keygen -A` in the ssh/sshd unit, a drop-in of it,
    # or a unit of its own such as Arch's sshdgenkeys.service.
    for dir in /usr/lib/systemd/system /lib/systemd/system /etc/systemd/system; do
        for unit in sshd-keygen@.service sshd-keygen.service; do
            if [ -e "$dir/$unit" ]; then
                echo "$unit ($dir)"
                return
            fi
        done
        for file in "$dir"/*ssh*.service "$dir"/*ssh*.service.d/*.conf; do
            if [ -f "$file" ] && grep -Eqs '^[[:space:]]*Exec[A-Za-z]*=.*ssh-keygen[[:space:]]+-A([[:space:]]|$)' "$file"; then
                echo "ssh-keygen -A in $file"
                return
            fi
        done
    done
}

# Everything happens in main, called on the last line: the shell reads the whole script (it arrives on stdin)
# before running any of it, so a script cut off in transit runs nothing, and nothing that main starts can read
# the rest of the script as its input.
main() {
    keep_machine_id=false
    for arg in "$@"; do
        case $arg in
            --keep-machine-id) keep_machine_id=true ;;
            *) fail "$EXIT_USAGE" "unknown option $arg (known: --keep-machine-id); nothing was changed" ;;
        esac
    done

    if [ "$(id -u)" -ne 0 ]; then
        fail "$EXIT_NOT_ROOT" "must run as root (run it with sudo)"
    fi

    # Find waagent before changing anything, so a VM without the agent is left untouched. sudo's secure_path
    # usually contains /usr/sbin, but not on every distribution: look there too.
    say "step 1/4: looking for the Azure Linux agent and for what creates SSH host keys at first boot"
    waagent=$(command -v waagent 2>/dev/null || true)
    if [ -z "$waagent" ] && [ -x /usr/sbin/waagent ]; then
        waagent=/usr/sbin/waagent
    fi
    if [ -z "$waagent" ]; then
        fail "$EXIT_NO_WAAGENT" "waagent is not installed (neither on PATH nor /usr/sbin/waagent); install the Azure Linux agent (package walinuxagent or waagent) and run again; nothing was changed"
    fi
    say "found $waagent"

    generator=$(host_key_generator)
    if [ -z "$generator" ]; then
        fail "$EXIT_NO_HOST_KEY_GENERATOR" "nothing on this VM would create SSH host keys at first boot (no cloud-init, Provisioning.RegenerateSshHostKeyPair is not y in /etc/waagent.conf, no sshd-keygen unit or ssh-keygen -A in the ssh/sshd service), and deprovisioning deletes them, so no VM made from the image could start sshd; install cloud-init, or set Provisioning.RegenerateSshHostKeyPair=y in /etc/waagent.conf, and run again; nothing was changed"
    fi
    say "SSH host keys will be created at first boot by $generator"

    # Remember the invoking user's home now: waagent deletes the user (userdel -r) and its passwd entry with it.
    user_home=""
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6 || true)
    fi

    # Azure's distribution guides clean cloud-init first, so the image provisions afresh on its next boot instead
    # of believing it already ran (stale instance data, old SSH keys, old logs).
    say "step 2/4: cleaning cloud-init state"
    if command -v cloud-init >/dev/null 2>&1; then
        # --seed appeared in cloud-init 21.x; older versions only know --logs.
        cloud-init clean --logs --seed || cloud-init clean --logs
    else
        say "cloud-init is not installed; skipping"
    fi
    rm -rf /var/lib/cloud/

    # The documented generalization step: deletes DHCP leases, resolv.conf, the agent's state, resets the hostname
    # and deletes the user named in /var/lib/waagent/ovf-env.xml. It deletes the SSH host keys only when
    # /etc/waagent.conf has Provisioning.RegenerateSshHostKeyPair=y, and locks root's password only with
    # Provisioning.DeleteRootPassword=y (WALinuxAgent, azurelinuxagent/pa/deprovision/default.py: `if
    # conf.get_regenerate_ssh_host_key(): self.regen_ssh_host_key(...)`; both default to n in common/conf.py and
    # in its README's configuration list). The host keys are therefore deleted again below, whatever it says.
    say "step 3/4: running $waagent -force -deprovision+user"
    status=0
    "$waagent" -force -deprovision+user || status=$?
    if [ "$status" -ne 0 ]; then
        fail "$status" "waagent -force -deprovision+user failed with exit code $status"
    fi

    # Nothing that identifies this VM may end up in the image, whatever waagent's settings are.
    say "step 4/4: removing SSH host keys, machine-id and shell history, and flushing disks"
    # Every VM made from the image must get its own host keys: step 1 made sure cloud-init's ssh module, waagent
    # (with RegenerateSshHostKeyPair=y) or the distribution's sshd-keygen / `ssh-keygen -A` creates them at first
    # boot. This session keeps working: its sshd process already holds the keys.
    rm -f /etc/ssh/ssh_host_*
    if [ "$keep_machine_id" = true ]; then
        say "keeping /etc/machine-id (keepMachineId)"
    elif [ -e /etc/machine-id ]; then
        # machine-id(5): an image used on many machines should carry /etc/machine-id "either missing or an empty
        # file"; systemd then generates a new ID at boot ("First Boot Semantics": an empty file means first boot,
        # so the units that run once per machine run). Emptied rather than deleted: an empty file also lets a
        # read-only image have an ID mounted over it, and some tools expect the file to exist.
        : >/etc/machine-id
        # With /etc/machine-id empty, systemd takes the D-Bus machine ID if there is one: a separate file there (not
        # the usual symbolic link to /etc/machine-id) would carry this VM's ID into every VM.
        if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then
            rm -f /var/lib/dbus/machine-id
        fi
    fi

    # Shell history must not end up in the image. This session is not interactive, so it writes no history itself;
    # HISTSIZE=0 keeps any shell started from here from writing one, as Packer's recipe does.
    HISTSIZE=0
    export HISTSIZE
    rm -f /root/.bash_history
    if [ -n "$user_home" ] && [ "$user_home" != / ]; then
        # Usually already gone with the user's home directory; this covers a user that waagent kept.
        rm -f "$user_home/.bash_history"
    fi

    # The VM is deallocated next, maybe without a clean shutdown: put everything on disk now.
    sync

    say "deprovision complete"
}

main "$@" </dev/null
