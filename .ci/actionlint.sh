#!/usr/bin/env bash
# Lint the GitHub workflows with actionlint, built (once) from its Go module at a pinned version.
#
# The binary is cached outside the clone, like the Pulumi CLI of tools/engine/build.sh: a warm cache does not
# rebuild, a changed pin does. The module's hash is pinned too, so a re-tagged release fails the build instead
# of being used. actionlint runs shellcheck over every `run:` script when `shellcheck` is on PATH
# (tests/fakes/install-prereqs.sh installs it); without it those scripts are not checked, and this script says so.
#
#   bash .ci/actionlint.sh [actionlint args]   (default: every workflow under .github/workflows)
#   IMAGE_GALLERY_ACTIONLINT_CACHE  cache root (default /var/cache/image-gallery/actionlint when writable, else
#                                   ~/.cache/image-gallery/actionlint)
set -euo pipefail
version=v1.7.12
module_sum="h1:vQ4GeJN86C0QH+gTUQcs8McmK62OLT3kmakPMtEWYnY="
cd "$(dirname "$0")/.."

root="${IMAGE_GALLERY_ACTIONLINT_CACHE:-}"
if [ -z "$root" ]; then
    root=/var/cache/image-gallery/actionlint
    if ! mkdir -p "$root" 2>/dev/null || [ ! -w "$root" ]; then root="${XDG_CACHE_HOME:-$HOME/.cache}/image-gallery/actionlint"; fi
fi
bin="$root/$version/actionlint"
if [ ! -x "$bin" ]; then
    if ! command -v go >/dev/null; then
        echo "actionlint: the Go toolchain is needed to build actionlint $version (apt-get install golang-go)" >&2
        exit 1
    fi
    echo "actionlint: building $version into $bin (once)" >&2
    mkdir -p "$root"
    # Outside any module (tools/engine has one), so that only the proxy's copy and sum.golang.org decide.
    sum="$(cd "$root" && go mod download -json "github.com/rhysd/actionlint@$version" | sed -n 's/^\t"Sum": "\(.*\)",$/\1/p')"
    if [ "$sum" != "$module_sum" ]; then
        echo "actionlint: github.com/rhysd/actionlint@$version has hash '$sum', expected $module_sum" >&2
        exit 1
    fi
    tmp="$(mktemp -d "$root/.build.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    GOBIN="$tmp" go install -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$version" >&2
    mkdir -p "$(dirname "$bin")"
    mv "$tmp/actionlint" "$bin"
    rm -rf "$tmp"
    trap - EXIT
fi

if ! command -v shellcheck >/dev/null; then
    echo "actionlint: shellcheck is not on PATH: the workflows' run: scripts are not checked (apt-get install shellcheck)" >&2
fi
if [ "$#" -eq 0 ]; then set -- .github/workflows/*.yml; fi
exec "$bin" "$@"
