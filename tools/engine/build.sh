#!/usr/bin/env bash
# Build (or reuse) the pinned Pulumi CLI the end-to-end tests and `make demo` run, and print its bin directory.
#
# The binaries are cached outside the clone, keyed by the CLI version and a hash of this module's go.mod/go.sum
# (and the launcher): a warm run does not rebuild, a changed pin does. A cold build downloads the CLI's Go
# modules from the Go module proxy and compiles them (docs/testing.md "Cold and warm caches" gives time and disk use).
#
#   IMAGE_GALLERY_ENGINE_CACHE  cache root (default /var/cache/image-gallery/engine when writable, else
#                               ~/.cache/image-gallery/engine)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(grep -oE 'github.com/pulumi/pulumi/pkg/v3 v[0-9.]+' "$here/go.mod" | head -1 | cut -d" " -f2)"
[ -n "$version" ] || { echo "engine: no github.com/pulumi/pulumi/pkg/v3 pin in $here/go.mod" >&2; exit 1; }
key="$(cat "$here/go.mod" "$here/go.sum" "$here/pulumi-resource-pulumi-python" | sha256sum | cut -c1-12)"

root="${IMAGE_GALLERY_ENGINE_CACHE:-}"
if [ -z "$root" ]; then
    root=/var/cache/image-gallery/engine
    if ! mkdir -p "$root" 2>/dev/null || [ ! -w "$root" ]; then root="${XDG_CACHE_HOME:-$HOME/.cache}/image-gallery/engine"; fi
fi
dest="$root/pulumi-$version-$key"
if [ -x "$dest/bin/pulumi" ] && [ -x "$dest/bin/pulumi-resource-pulumi-python" ]; then
    echo "$dest/bin"
    exit 0
fi

if ! command -v go >/dev/null; then
    echo "engine: the Go toolchain is needed to build the Pulumi CLI $version (apt-get install golang-go, Go >= 1.25)" >&2
    exit 1
fi
echo "engine: building the Pulumi CLI $version into $dest (cold cache: a few minutes, once)" >&2
start=$(date +%s)
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/bin"
trap 'rm -rf "$tmp"' EXIT
(
    cd "$here"
    GOFLAGS=-mod=readonly go build -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
        -o "$tmp/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
) >&2
install -m 0755 "$here/pulumi-resource-pulumi-python" "$tmp/bin/pulumi-resource-pulumi-python"
"$tmp/bin/pulumi" version >/dev/null
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "engine: built in $(( $(date +%s) - start ))s, $(du -sh "$dest" | cut -f1) in $dest" >&2
echo "$dest/bin"
