#!/usr/bin/env bash
# Sets up what the Docker tests (tests/test_image.py and friends) need on a Debian machine, as root:
#   1. Debian packages docker.io, docker-registry, apache2-utils, debootstrap, curl, and chromium for the UI
#      browser test (tests/test_ui_browser.py) (installed only when missing);
#   2. a Docker engine (dockerd started with setsid when `docker info` does not answer: there is no systemd);
#   3. a loopback image registry on 127.0.0.1:5000 (clients use localhost:5000) with htpasswd auth:
#      user `ci-user`, password generated once into $TEST_SERVICES_DIR/registry.password (mode 600);
#   4. the base image `python:3.12-slim`: pulled when possible, otherwise a local stand-in built from Debian
#      bookworm (debootstrap) with python3, venv, pip and the host's CA bundle trusted (the package registries are
#      reached through a TLS-intercepting proxy), tagged `python:3.12-slim` so the project Dockerfile's default
#      FROM works unchanged.
# Idempotent: a second run only checks and takes a few seconds. Every long step logs to a file in the state dir,
# and a failure says which step failed and where its log is. Exit status is non-zero on any failure.
#
# Environment:
#   TEST_SERVICES_DIR           state dir (default /var/tmp/suggest-activity-test-services)
#   TEST_SERVICES_PULL_TIMEOUT  seconds to try `docker pull` of the base image before building the stand-in
#                               (default 20; 0 skips the pull)
#   DEBIAN_MIRROR               mirror for debootstrap (default http://deb.debian.org/debian)
set -Eeuo pipefail

STATE_DIR="${TEST_SERVICES_DIR:-/var/tmp/suggest-activity-test-services}"
REGISTRY_LISTEN="127.0.0.1:5000"
REGISTRY_SERVER="localhost:5000"
REGISTRY_USER="ci-user"
BASE_IMAGE="python:3.12-slim"
STANDIN_ROOT_IMAGE="debian:bookworm-local"
STANDIN_LABEL="org.suggest-activity.stand-in"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PULL_TIMEOUT="${TEST_SERVICES_PULL_TIMEOUT:-20}"
DOCKERD_WAIT=60
REGISTRY_WAIT=20
HOST_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"

START_TIME=$SECONDS
log() { printf '[test-services %3ss] %s\n' "$((SECONDS - START_TIME))" "$*" >&2; }
die() {
    printf '[test-services] ERROR: %s\n' "$*" >&2
    exit 1
}
# die_with_log STEP LOGFILE: report the failed step, its log file and the log's last lines.
die_with_log() {
    local step=$1 logfile=$2
    {
        printf '[test-services] ERROR: %s failed; full log: %s\n' "$step" "$logfile"
        if [[ -f $logfile ]]; then
            printf '[test-services] last lines of %s:\n' "$logfile"
            tail -n 25 "$logfile" | sed 's/^/    | /'
        fi
    } >&2
    exit 1
}
trap 'die "unexpected failure at line $LINENO: $BASH_COMMAND"' ERR

is_root() { [[ $(id -u) -eq 0 ]]; }

mkdir -p "$STATE_DIR" || die "cannot create state dir $STATE_DIR (set TEST_SERVICES_DIR to a writable dir)"
# Serialise concurrent runs (two test sessions starting at once must not start two daemons).
# fd 9 must not leak into the daemons started below (they would hold the lock forever): see "9>&-".
exec 9>"$STATE_DIR/.lock"
flock -w 900 9 || die "another scripts/test-services.sh still holds $STATE_DIR/.lock after 15 min"

# ---------------------------------------------------------------------------------------------- packages
ensure_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker >/dev/null || missing+=(docker.io)
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    command -v htpasswd >/dev/null || missing+=(apache2-utils)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v curl >/dev/null || missing+=(curl)
    command -v flock >/dev/null || missing+=(util-linux)
    [[ -x /usr/bin/chromium ]] || missing+=(chromium)
    if ((${#missing[@]} == 0)); then
        log "packages: present"
        return
    fi
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    is_root || die "missing packages (${missing[*]}); run this script as root so it can apt-get install them"
    local apt_log="$STATE_DIR/apt.log"
    # Another apt-get (e.g. a provisioning step) may be running: wait for it instead of failing on its lock.
    local waited=0
    while pgrep -x apt-get >/dev/null || pgrep -x dpkg >/dev/null; do
        ((waited == 0)) && log "packages: waiting for another apt-get/dpkg to finish"
        ((waited >= 600)) && die "another apt-get/dpkg has been running for 10 min; not installing ${missing[*]}"
        sleep 2
        waited=$((waited + 2))
    done
    log "packages: installing ${missing[*]} (log: $apt_log)"
    export DEBIAN_FRONTEND=noninteractive
    {
        apt-get -o DPkg::Lock::Timeout=300 update &&
            apt-get -o DPkg::Lock::Timeout=300 install -y "${missing[@]}"
    } >"$apt_log" 2>&1 || die_with_log "apt-get install ${missing[*]}" "$apt_log"
}

# ---------------------------------------------------------------------------------------------- dockerd
docker_ok() { timeout 15 docker info >/dev/null 2>&1; }

ensure_dockerd() {
    if docker_ok; then
        log "dockerd: answering"
        return
    fi
    local dockerd_log="$STATE_DIR/dockerd.log" pid=""
    if pgrep -x dockerd >/dev/null; then
        # Started by someone else (or by an earlier run) and not answering yet: wait, never start a second one.
        log "dockerd: a dockerd process exists but does not answer yet; waiting up to ${DOCKERD_WAIT}s"
    else
        is_root || die "no Docker engine answers and only root can start dockerd; run this script as root"
        # No dockerd runs, so a pid file is left over from one that was killed (e.g. at the end of a session).
        rm -f /var/run/docker.pid
        log "dockerd: starting (log: $dockerd_log)"
        setsid dockerd >"$dockerd_log" 2>&1 </dev/null 9>&- &
        pid=$!
        echo "$pid" >"$STATE_DIR/dockerd.pid"
    fi
    local deadline=$((SECONDS + DOCKERD_WAIT))
    while ((SECONDS < deadline)); do
        if docker_ok; then
            log "dockerd: answering"
            return
        fi
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            die_with_log "dockerd (it exited)" "$dockerd_log"
        fi
        sleep 1
    done
    die_with_log "dockerd (no answer to 'docker info' within ${DOCKERD_WAIT}s)" "$dockerd_log"
}

# ---------------------------------------------------------------------------------------------- registry
registry_code() {
    # HTTP status of GET /v2/ (000 when nothing answers). With $1=auth, sends our credentials
    # through curl's config on stdin so the password never shows up in a process listing.
    local auth=()
    [[ ${1:-} == auth ]] && auth=(-K -)
    {
        [[ ${1:-} == auth ]] && printf 'user = "%s:%s"\n' "$REGISTRY_USER" "$(cat "$STATE_DIR/registry.password")"
        true
    } | curl -s -o /dev/null -w '%{http_code}' --max-time 3 "${auth[@]}" "http://$REGISTRY_LISTEN/v2/" || true
}

our_registry_pid() {
    # Prints the pid of the registry this script started, when that process is still a docker-registry.
    local pid
    pid=$(cat "$STATE_DIR/registry.pid" 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'docker-registry' || return 1
    echo "$pid"
}

ensure_registry() {
    local pw_file="$STATE_DIR/registry.password" htpasswd_file="$STATE_DIR/registry.htpasswd"
    local config="$STATE_DIR/registry.yml" registry_log="$STATE_DIR/registry.log"
    mkdir -p "$STATE_DIR/registry-data"
    if [[ ! -s $pw_file ]]; then
        (
            umask 077
            od -An -tx1 -N18 /dev/urandom | tr -d ' \n' >"$pw_file"
        )
        log "registry: generated a new password in $pw_file"
    fi
    chmod 600 "$pw_file"
    echo "$REGISTRY_USER" >"$STATE_DIR/registry.username"
    if [[ ! -s $htpasswd_file || $pw_file -nt $htpasswd_file ]]; then
        htpasswd -niB "$REGISTRY_USER" <"$pw_file" >"$htpasswd_file.tmp" 2>"$STATE_DIR/htpasswd.log" ||
            die_with_log "htpasswd" "$STATE_DIR/htpasswd.log"
        chmod 600 "$htpasswd_file.tmp"
        mv "$htpasswd_file.tmp" "$htpasswd_file"
    fi
    local new_config
    new_config=$(
        cat <<EOF
# Written by scripts/test-services.sh: a loopback registry for the Docker tests.
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry-data
  delete:
    enabled: true
http:
  addr: $REGISTRY_LISTEN
auth:
  htpasswd:
    realm: suggest-activity-test-registry
    path: $htpasswd_file
EOF
    )
    local config_changed=0
    if [[ ! -f $config ]] || [[ $(cat "$config") != "$new_config" ]]; then
        printf '%s\n' "$new_config" >"$config"
        config_changed=1
    fi

    local code pid=""
    code=$(registry_code)
    if [[ $code != 000 ]]; then
        if [[ $code == 401 && $config_changed == 0 && $(registry_code auth) == 200 ]]; then
            log "registry: answering on $REGISTRY_LISTEN with auth"
            return
        fi
        # Something answers but not with our config/credentials: restart it if it is ours, else refuse.
        if pid=$(our_registry_pid); then
            log "registry: restarting ours (pid $pid) to apply the current config/credentials"
            kill "$pid"
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        else
            die "$REGISTRY_LISTEN answers (HTTP $code to GET /v2/) but not as this script's registry with auth from" \
                "$htpasswd_file; stop whatever listens there (see: ss -ltnp 'sport = :5000')"
        fi
    fi
    log "registry: starting on $REGISTRY_LISTEN (config: $config, log: $registry_log)"
    setsid docker-registry serve "$config" >"$registry_log" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$STATE_DIR/registry.pid"
    local deadline=$((SECONDS + REGISTRY_WAIT))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || die_with_log "docker-registry (it exited)" "$registry_log"
        code=$(registry_code)
        if [[ $code == 401 ]]; then
            [[ $(registry_code auth) == 200 ]] ||
                die_with_log "docker-registry (rejects the credentials in $pw_file)" "$registry_log"
            log "registry: answering on $REGISTRY_LISTEN with auth"
            return
        fi
        [[ $code == 000 ]] || die_with_log "docker-registry (GET /v2/ without credentials gave HTTP $code, expected 401)" "$registry_log"
        sleep 0.2
    done
    die_with_log "docker-registry (no answer on $REGISTRY_LISTEN within ${REGISTRY_WAIT}s)" "$registry_log"
}

# ---------------------------------------------------------------------------------------------- base image
write_standin_dockerfile() {
    # A stand-in for the official python:3.12-slim: Debian bookworm's python3 (3.11: fine for Prefect 3) with
    # venv and pip. Like the official image it has `python` and `pip` on PATH and lets pip install into the system
    # (EXTERNALLY-MANAGED removed), so a Dockerfile written for the real image works unchanged. It trusts the
    # host's CA bundle and points pip, requests and uv (SSL_CERT_FILE) at the system bundle: downloads in later
    # builds then go through this machine's TLS-intercepting proxy.
    cat >"$1/Dockerfile" <<'EOF'
FROM debian:bookworm-local
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
COPY host-ca-bundle.crt /usr/local/share/ca-certificates/host-ca-bundle.crt
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv python3-pip python-is-python3 \
 && update-ca-certificates \
 && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \
 && ln -sf /usr/bin/pip3 /usr/local/bin/pip \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
ENV DEBIAN_FRONTEND= \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
EOF
}

ensure_base_image() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image: $BASE_IMAGE present"
        return
    fi
    if ((PULL_TIMEOUT > 0)); then
        log "base image: trying 'docker pull $BASE_IMAGE' for at most ${PULL_TIMEOUT}s (log: $STATE_DIR/pull.log)"
        if timeout "$PULL_TIMEOUT" docker pull "$BASE_IMAGE" >"$STATE_DIR/pull.log" 2>&1; then
            log "base image: pulled $BASE_IMAGE"
            return
        fi
        log "base image: cannot pull $BASE_IMAGE; building a local stand-in"
    fi
    is_root || die "building the stand-in base image needs root (debootstrap); run this script as root"

    if ! docker image inspect "$STANDIN_ROOT_IMAGE" >/dev/null 2>&1; then
        local rootfs="$STATE_DIR/rootfs" db_log="$STATE_DIR/debootstrap.log"
        rm -rf "$rootfs"
        log "base image: debootstrap bookworm from $DEBIAN_MIRROR (log: $db_log)"
        debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$db_log" 2>&1 ||
            die_with_log "debootstrap --variant=minbase bookworm" "$db_log"
        log "base image: importing the root fs as $STANDIN_ROOT_IMAGE"
        tar --numeric-owner -C "$rootfs" -c . | docker import - "$STANDIN_ROOT_IMAGE" >"$STATE_DIR/import.log" 2>&1 ||
            die_with_log "docker import of $rootfs" "$STATE_DIR/import.log"
        rm -rf "$rootfs"
    fi

    local ctx="$STATE_DIR/stand-in" build_log="$STATE_DIR/stand-in-build.log"
    rm -rf "$ctx"
    mkdir -p "$ctx"
    [[ -r $HOST_CA_BUNDLE ]] || die "host CA bundle $HOST_CA_BUNDLE is missing; the stand-in could not trust the proxy"
    cp "$HOST_CA_BUNDLE" "$ctx/host-ca-bundle.crt"
    write_standin_dockerfile "$ctx"
    log "base image: building stand-in $BASE_IMAGE from $STANDIN_ROOT_IMAGE (log: $build_log)"
    # The classic builder: the v28 client here has no buildx, so BuildKit is not available through it.
    DOCKER_BUILDKIT=0 docker build --label "$STANDIN_LABEL=debian-bookworm" -t "$BASE_IMAGE" "$ctx" \
        >"$build_log" 2>&1 || die_with_log "docker build of the stand-in $BASE_IMAGE" "$build_log"
    # What the project Dockerfile relies on: python, a venv with pip, pip on PATH, TLS through the proxy's CA.
    docker run --rm "$BASE_IMAGE" sh -ec '
        python --version; pip --version
        python -m venv /tmp/v; /tmp/v/bin/pip --version
        python -c "import ssl, urllib.request"' >>"$build_log" 2>&1 ||
        die_with_log "check of the stand-in $BASE_IMAGE (python/pip/venv)" "$build_log"
    log "base image: stand-in $BASE_IMAGE built"
}

# ---------------------------------------------------------------------------------------------- main
ensure_packages
ensure_dockerd
ensure_registry
ensure_base_image
trap - ERR

server_version=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
client_version=$(docker version --format '{{.Client.Version}}' 2>/dev/null || echo '?')
base_id=$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE")
standin=$(docker image inspect --format "{{index .Config.Labels \"$STANDIN_LABEL\"}}" "$BASE_IMAGE" 2>/dev/null || true)
[[ -n $standin && $standin != '<no value>' ]] && standin=" (local stand-in: $standin)" || standin=""
cat <<EOF
test services ready in $((SECONDS - START_TIME))s (state dir: $STATE_DIR)
  docker:     client $client_version, engine $server_version
  registry:   $REGISTRY_SERVER (listening on $REGISTRY_LISTEN), user $REGISTRY_USER, password in $STATE_DIR/registry.password
  base image: $BASE_IMAGE $base_id$standin
  browser:    $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium missing')
EOF
