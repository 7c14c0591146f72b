#!/bin/sh
# Installs the Debian packages Otter needs that are missing. With "bench" it
# also installs the peers the benchmark runner compares against; with
# "cross", only the aarch64 cross compiler and qemu-user (make test-aarch64).
# Everything comes from Debian by package name; nothing else is downloaded.
# redis-tools is for the kv suite's round trip through the real redis-cli.
set -e
pkgs="build-essential liburing-dev libjemalloc-dev libcriterion-dev liburcu-dev pkg-config python3 redis-tools"
[ "$1" = "bench" ] && pkgs="$pkgs erlang-base elixir redis-server redis-tools"
[ "$1" = "cross" ] && pkgs="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps.sh: installing$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
