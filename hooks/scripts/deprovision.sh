#!/bin/sh
# Generalize a Linux Azure VM so it can be captured into an Azure Compute Gallery image.
#
# Runs as root on the guest: hooks/linux.py pipes it to `sudo -n sh -s` over SSH; by hand:
#   sudo sh deprovision.sh
# After it, the VM must not be started again before it is captured (it has no host keys, no user, no resolv.conf).
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

# Everything happens in main, called on the last line: the shell reads the whole script (it arrives on stdin)
# before running any of it, so a script cut off in transit runs nothing, and nothing that main starts can read
# the rest of the script as its input.
main() {
    if [ "$(id -u)" -ne 0 ]; then
        fail "$EXIT_NOT_ROOT" "must run as root (run it with sudo)"
    fi

    # Find waagent before changing anything, so a VM without the agent is left untouched. sudo's secure_path
    # usually contains /usr/sbin, but not on every distribution: look there too.
    say "step 1/4: looking for the Azure Linux agent"
    waagent=$(command -v waagent 2>/dev/null || true)
    if [ -z "$waagent" ] && [ -x /usr/sbin/waagent ]; then
        waagent=/usr/sbin/waagent
    fi
    if [ -z "$waagent" ]; then
        fail "$EXIT_NO_WAAGENT" "waagent is not installed (neither on PATH nor /usr/sbin/waagent); install the Azure Linux agent (package walinuxagent or waagent) and run again; nothing was changed"
    fi
    say "found $waagent"

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

    # The documented generalization step: deletes SSH host keys, DHCP leases, resolv.conf, the agent's state, locks
    # root's password, resets the hostname and deletes the user named in /var/lib/waagent/ovf-env.xml.
    say "step 3/4: running $waagent -force -deprovision+user"
    status=0
    "$waagent" -force -deprovision+user || status=$?
    if [ "$status" -ne 0 ]; then
        fail "$status" "waagent -force -deprovision+user failed with exit code $status"
    fi

    # Shell history must not end up in the image. This session is not interactive, so it writes no history itself;
    # HISTSIZE=0 keeps any shell started from here from writing one, as Packer's recipe does.
    say "step 4/4: removing shell history and flushing disks"
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
