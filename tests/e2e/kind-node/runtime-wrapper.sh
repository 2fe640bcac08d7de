#!/usr/bin/env bash
# pallet-runc: an OCI runtime wrapper for test machines whose root lacks some
# capabilities in its bounding set (here: CAP_SYS_RESOURCE).
#
# `docker run --privileged` asks runc for every capability the daemon knows;
# when the calling process cannot hold one of them, runc fails with
# "unable to apply caps: operation not permitted". This wrapper removes every
# capability that is missing from its own bounding set from the OCI bundle's
# config.json (create/run) or from the process JSON (exec), then execs the real
# runc with the unchanged arguments.
#
# TEST-MACHINE SET-UP ONLY: the product never depends on it. It is installed by
# install-runtime-wrapper.sh and registered with dockerd as the default runtime.
#
# Environment:
#   PALLET_RUNC_REAL   the real runtime (default: runc found on PATH)
#   PALLET_RUNC_DROP   space-separated extra capability names to remove
#   PALLET_RUNC_LOG    append one line per rewritten file to this log file
set -euo pipefail

real_runc="${PALLET_RUNC_REAL:-}"
if [[ -z "$real_runc" ]]; then
  for candidate in /usr/sbin/runc /usr/bin/runc /usr/local/sbin/runc /usr/local/bin/runc; do
    if [[ -x "$candidate" ]]; then
      real_runc="$candidate"
      break
    fi
  done
fi
if [[ -z "$real_runc" ]]; then
  echo "pallet-runc: no runc found (set PALLET_RUNC_REAL)" >&2
  exit 127
fi

# Capability names indexed by number (linux/capability.h).
cap_names=(
  CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_KILL
  CAP_SETGID CAP_SETUID CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE
  CAP_NET_BROADCAST CAP_NET_ADMIN CAP_NET_RAW CAP_IPC_LOCK CAP_IPC_OWNER
  CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_CHROOT CAP_SYS_PTRACE CAP_SYS_PACCT
  CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE CAP_SYS_RESOURCE CAP_SYS_TIME
  CAP_SYS_TTY_CONFIG CAP_MKNOD CAP_LEASE CAP_AUDIT_WRITE CAP_AUDIT_CONTROL
  CAP_SETFCAP CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG CAP_WAKE_ALARM
  CAP_BLOCK_SUSPEND CAP_AUDIT_READ CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE
)

# Names of the capabilities that this process cannot pass on.
missing_caps() {
  local hex bnd i
  hex="$(awk '/^CapBnd:/ {print $2}' /proc/self/status)"
  [[ -n "$hex" ]] || return 0
  bnd=$((16#$hex))
  for i in "${!cap_names[@]}"; do
    if (( ((bnd >> i) & 1) == 0 )); then
      printf '%s\n' "${cap_names[$i]}"
    fi
  done
  if [[ -n "${PALLET_RUNC_DROP:-}" ]]; then
    tr ' ' '\n' <<<"$PALLET_RUNC_DROP" | grep -v '^$' || true
  fi
}

# strip_caps FILE JQ_PATH: remove the missing capabilities from every set
# (bounding, effective, inheritable, permitted, ambient) under JQ_PATH.
strip_caps() {
  local file=$1 path=$2 drop tmp
  [[ -f "$file" ]] || return 0
  drop="$(missing_caps | jq -R . | jq -cs .)"
  [[ "$drop" != "[]" ]] || return 0
  tmp="$(mktemp "${file}.pallet-runc.XXXXXX")"
  if jq --argjson drop "$drop" \
    "if ${path} == null then . else ${path} |= with_entries(
        .value |= (if type == \"array\" then map(select(. as \$c | \$drop | index(\$c) | not)) else . end)
      ) end" "$file" >"$tmp"; then
    chmod --reference="$file" "$tmp" 2>/dev/null || true
    mv -f "$tmp" "$file"
    if [[ -n "${PALLET_RUNC_LOG:-}" ]]; then
      echo "$(date -Is) stripped ${drop} from ${file}" >>"$PALLET_RUNC_LOG" || true
    fi
  else
    rm -f "$tmp"
    echo "pallet-runc: could not rewrite ${file}; passing it through unchanged" >&2
  fi
}

# Find the subcommand and the bundle / process file without changing "$@".
# runc's global options that take a value:
global_with_value=" --root --log --log-format --criu --rootless "
subcommand=""
bundle=""
process_file=""
args=("$@")
i=0
while (( i < ${#args[@]} )); do
  a="${args[$i]}"
  if [[ -z "$subcommand" ]]; then
    case "$a" in
      --*=*) ;;
      -*)
        if [[ "$global_with_value" == *" $a "* ]]; then
          i=$((i + 1))
        fi
        ;;
      *) subcommand="$a" ;;
    esac
  else
    case "$a" in
      --bundle=*) bundle="${a#--bundle=}" ;;
      --bundle | -b) i=$((i + 1)); bundle="${args[$i]:-}" ;;
      --process=*) process_file="${a#--process=}" ;;
      --process | -p) i=$((i + 1)); process_file="${args[$i]:-}" ;;
    esac
  fi
  i=$((i + 1))
done

case "$subcommand" in
  create | run)
    strip_caps "${bundle:-.}/config.json" ".process.capabilities"
    ;;
  exec)
    if [[ -n "$process_file" ]]; then
      strip_caps "$process_file" ".capabilities"
    fi
    ;;
esac

exec "$real_runc" "$@"
