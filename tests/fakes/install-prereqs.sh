#!/bin/sh
# Installs what the Linux guest tests (tests/fakes/sandbox.py) need on the machine that runs them. Run as root;
# idempotent: installs nothing when everything is there.
#
# Needed on the host: debootstrap (builds the throwaway Debian root) and apt's package lists (the build runs
# `apt-get download waagent`; the agent is installed only inside that root, never on the host). unshare, chroot
# and tar come with every Debian system (util-linux, coreutils, tar). sshd is NOT needed on the host: the tests
# run the sshd of the root, and installing openssh-server here would start a real sshd on port 22.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "install-prereqs: must run as root" >&2
    exit 1
fi

missing=""
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
# shellcheck lints hooks/scripts/*.sh in the unit tests.
command -v shellcheck >/dev/null 2>&1 || missing="$missing shellcheck"
command -v unshare >/dev/null 2>&1 || missing="$missing util-linux"

# apt-get download needs package lists; a fresh machine may have none.
if [ -n "$missing" ] || ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
    apt-get update -qq
fi
if [ -n "$missing" ]; then
    echo "install-prereqs: installing$missing"
    # $missing is a list of package names: word splitting is wanted here.
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
echo "install-prereqs: ok (debootstrap $(dpkg-query -W -f '${Version}' debootstrap))"
