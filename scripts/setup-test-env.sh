#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine (run as root).
# Idempotent: apt-get and pip skip what is already there. Starts no daemon: the
# pytest fixtures in tests/servers/ start sshd, dockerd, PostgreSQL, Redis and RabbitMQ
# themselves.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ "$(id -u)" -ne 0 ]]; then
    echo "setup-test-env.sh: run as root (it installs Debian packages)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# Real components the integration tests start or call (see DESIGN.md,
# "Real components in tests").
packages=(
    openssh-server openssh-client sudo
    docker.io
    postgresql
    redis-server rabbitmq-server
    poppler-utils chromium
    busybox-static debootstrap
    iproute2 procps strace shellcheck
    fish zsh
)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    # policy-rc.d (exit 101) keeps the packages' postinst scripts from starting services.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    # Another apt-get may hold the dpkg lock for a while on a shared machine: wait for it.
    apt_opts=(-qq -o DPkg::Lock::Timeout=600)
    apt-get "${apt_opts[@]}" update
    apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test]'
