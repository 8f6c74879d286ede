#!/usr/bin/env bash
# Installs the livekit-server binary used by the e2e tests (module e2e/).
#
# Idempotent: if the binary already exists and reports the pinned version, it
# does nothing. Otherwise it builds it from source through the Go module proxy
# (about 5 minutes on 2 cores). Later releases (v1.13.6+) depend on pion forks
# that the module proxy does not serve, so the version is pinned.
#
# Environment:
#   LKWEBHOOK_LIVEKIT_VERSION  version to build (default v1.13.5)
#   LKWEBHOOK_LIVEKIT_BIN      full path of the binary the tests use; when set,
#                              the binary is installed under that name
#                              (default $HOME/.cache/lkwebhook-bin/server)
set -euo pipefail

version="${LKWEBHOOK_LIVEKIT_VERSION:-v1.13.5}"
bin="${LKWEBHOOK_LIVEKIT_BIN:-$HOME/.cache/lkwebhook-bin/server}"
bindir="$(dirname "$bin")"
want="${version#v}"

have_version() {
	[ -x "$bin" ] || return 1
	local out
	out="$("$bin" --version 2>/dev/null || true)"
	# prints e.g. "livekit-server version 1.13.5"
	[ "${out##* }" = "$want" ]
}

if have_version; then
	echo "livekit-server $want already installed at $bin"
	exit 0
fi

if [ -e "$bin" ]; then
	echo "found $bin but it does not report version $want; rebuilding" >&2
fi

mkdir -p "$bindir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "building livekit-server $version (takes several minutes)..." >&2
# Build outside any module so the project's go.mod does not interfere.
(cd "$tmp" && GOFLAGS=-buildvcs=false GOBIN="$tmp/bin" go install "github.com/livekit/livekit-server/cmd/server@$version")
mv -f "$tmp/bin/server" "$bin"

if ! have_version; then
	echo "installed $bin but '$bin --version' does not report $want:" >&2
	"$bin" --version >&2 || true
	exit 1
fi
echo "livekit-server $want installed at $bin"
