#!/usr/bin/env bash
# Install the pallet-runc OCI runtime wrapper (runtime-wrapper.sh) and make it
# dockerd's default runtime, so that privileged containers (kind nodes) start on
# machines whose root lacks CAP_SYS_RESOURCE. TEST-MACHINE SET-UP ONLY.
#
# Idempotent: re-running changes nothing when everything is already in place.
# dockerd is asked to reload its configuration with SIGHUP (runtimes and
# default-runtime are reloadable, so running containers are not disturbed); it
# is restarted only if the reload did not take, and started if it is not running.
#
# Environment:
#   PALLET_RUNC_PATH      where to install the wrapper (default /usr/local/bin/pallet-runc)
#   DOCKER_DAEMON_JSON    daemon configuration file (default /etc/docker/daemon.json)
#   PALLET_RUNC_DEFAULT   1 (default) makes the wrapper the default runtime; 0 only registers it
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wrapper_src="${here}/runtime-wrapper.sh"
wrapper_dst="${PALLET_RUNC_PATH:-/usr/local/bin/pallet-runc}"
daemon_json="${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}"
runtime_name="pallet-runc"
make_default="${PALLET_RUNC_DEFAULT:-1}"

log() { echo "install-runtime-wrapper: $*" >&2; }

if [[ "$(id -u)" != 0 ]]; then
  log "must run as root"
  exit 1
fi

if ! command -v jq >/dev/null 2>&1; then
  log "installing jq"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >/dev/null
fi

# 1. The wrapper binary.
if [[ -f "$wrapper_dst" ]] && cmp -s "$wrapper_src" "$wrapper_dst"; then
  log "${wrapper_dst} is up to date"
else
  install -D -m 0755 "$wrapper_src" "$wrapper_dst"
  log "installed ${wrapper_dst}"
fi

# 2. daemon.json: merge our runtime into whatever is there.
mkdir -p "$(dirname "$daemon_json")"
current='{}'
if [[ -s "$daemon_json" ]]; then
  current="$(cat "$daemon_json")"
fi
desired="$(jq -S --arg name "$runtime_name" --arg path "$wrapper_dst" --arg mkdef "$make_default" '
  .runtimes[$name] = {"path": $path}
  | if $mkdef == "1" then .["default-runtime"] = $name else . end' <<<"$current")"

if [[ "$(jq -S . <<<"$current")" != "$desired" ]]; then
  tmp="$(mktemp "${daemon_json}.XXXXXX")"
  printf '%s\n' "$desired" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$daemon_json"

  log "wrote ${daemon_json}"
else
  log "${daemon_json} already configured"
fi

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

wait_for_docker() {

  for _ in $(seq 1 60); do
    if docker_answers; then
      return 0
    fi
    sleep 1
  done
  log "dockerd did not answer 'docker info' within 60s"
  return 1
}

runtime_active() {
  local info
  info="$(timeout 10 docker info --format '{{json .Runtimes}} {{.DefaultRuntime}}' 2>/dev/null)" || return 1
  [[ "$info" == *"\"${runtime_name}\""* ]] || return 1
  if [[ "$make_default" == 1 ]]; then
    [[ "$info" == *" ${runtime_name}" ]] || return 1
  fi
  return 0
}

dockerd_pid() {
  local pid=""
  if [[ -s /var/run/docker.pid ]]; then
    pid="$(cat /var/run/docker.pid)"
  fi
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    echo "$pid"
  fi
}

start_dockerd() {
  if command -v service >/dev/null 2>&1 && [[ -x /etc/init.d/docker ]]; then
    service docker start >/dev/null 2>&1 || true
  elif command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    systemctl start docker || true
  fi
  if ! docker_answers; then
    log "starting dockerd in the background (log: /var/log/dockerd.log)"
    nohup dockerd >>/var/log/dockerd.log 2>&1 &
  fi
}

# 3. Make dockerd use it.
if ! docker_answers; then
  if [[ -n "$(dockerd_pid)" ]]; then
    wait_for_docker
  else
    start_dockerd
    wait_for_docker
  fi
fi

if runtime_active; then
  log "dockerd already uses ${runtime_name}"
else
  pid="$(dockerd_pid)"
  if [[ -n "$pid" ]]; then
    log "asking dockerd (pid ${pid}) to reload its configuration (SIGHUP)"
    kill -HUP "$pid"
    for _ in $(seq 1 20); do
      if runtime_active; then break; fi
      sleep 0.5
    done
  fi
  if ! runtime_active; then
    log "reload did not take; restarting dockerd"
    if command -v service >/dev/null 2>&1 && [[ -x /etc/init.d/docker ]]; then
      service docker restart >/dev/null 2>&1 || true
    elif [[ -n "$pid" ]]; then
      kill -TERM "$pid"
      for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
      done
      start_dockerd
    fi
    wait_for_docker
  fi
  if ! runtime_active; then
    log "dockerd does not report runtime ${runtime_name}:"
    docker info --format '{{json .Runtimes}} default={{.DefaultRuntime}}' >&2 || true
    exit 1
  fi
  log "dockerd now uses ${runtime_name}"
fi
docker info --format 'runtimes: {{range $k, $v := .Runtimes}}{{$k}} {{end}}default: {{.DefaultRuntime}}'
