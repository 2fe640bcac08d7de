#!/bin/bash
# Entrypoint of the pallet-dev kind node image (/usr/local/bin/entrypoint).
# kind runs the node container privileged, with /var as a volume, /tmp and /run
# as tmpfs and (docker, cgroup v1) --cgroupns=private, then waits for the log
# line "detected cgroup v1" (v1) or systemd's "Reached target ... Multi-User
# System" (v2) before it execs into the node. This script prepares the
# container so that systemd, containerd and the kubelet can run, then execs
# the command it is given (/sbin/init).
set -o errexit -o nounset -o pipefail

info() { echo "INFO: $*" >&2; }
warn() { echo "WARN: $*" >&2; }

# --- mounts -----------------------------------------------------------------
prepare_mounts() {
  # mount(8) must stay usable even when docker remaps users
  chown root:root "$(command -v mount)" "$(command -v umount)" || true
  chmod -s "$(command -v mount)" "$(command -v umount)" || true
  info 'remounting /sys read-only'
  mount -o remount,ro /sys || warn 'could not remount /sys read-only'
  info 'making mounts shared'
  mount --make-rshared /
}

# --- cgroups ----------------------------------------------------------------
# bind_cgroup_root HIERARCHY GROUP: create GROUP in a v1 hierarchy and bind
# mount it on itself, so that the kubelet (cgroupRoot /kubelet, systemd driver
# kubelet.slice) finds it as a mount like a real host's hierarchy root.
bind_cgroup_root() {
  local hierarchy=$1 group=$2
  mkdir -p "${hierarchy}${group}"
  if [[ "$hierarchy" == */cpuset ]]; then
    cat "${hierarchy}/cpuset.cpus" >"${hierarchy}${group}/cpuset.cpus"
    cat "${hierarchy}/cpuset.mems" >"${hierarchy}${group}/cpuset.mems"
  fi
  mount --bind "${hierarchy}${group}" "${hierarchy}${group}"
}

hide_misc_controller() {
  # The v1 "misc" controller confuses older cgroup libraries: unmount it and
  # hide it from /proc/cgroups until pallet-node-setup.service (before
  # containerd and the kubelet) removes the override again.
  [[ -d /sys/fs/cgroup/misc ]] || return 0
  info 'hiding the misc cgroup controller'
  umount /sys/fs/cgroup/misc || warn 'could not unmount /sys/fs/cgroup/misc'
  rmdir /sys/fs/cgroup/misc || true
  grep -v '^misc' /proc/cgroups >/kind/cgroups.no-misc
  mount --bind /kind/cgroups.no-misc /proc/cgroups
}

prepare_cgroups() {
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    info 'detected cgroup v2'
    return 0
  fi
  # kind waits for exactly this phrase on cgroup v1 hosts.
  info 'detected cgroup v1'
  local own hierarchies h
  own="$(grep -E '^[0-9]+:([^:]*,)?cpu(,[^:]*)?:' /proc/self/cgroup | cut -d: -f3)"
  if [[ "$own" != "/" ]]; then
    # Without a private cgroup namespace we would see (and fight over) the
    # host's hierarchy. kind >= 0.20 always asks docker for --cgroupns=private.
    warn "no private cgroup namespace (own cgroup ${own}); run the node with --cgroupns=private"
  fi
  hide_misc_controller
  hierarchies="$(findmnt -lun -o target -t cgroup | grep '^/sys/fs/cgroup/' || true)"
  mount --make-rprivate /sys/fs/cgroup
  while IFS= read -r h; do
    [[ -n "$h" ]] || continue
    bind_cgroup_root "$h" /kubelet
    bind_cgroup_root "$h" /kubelet.slice
  done <<<"$hierarchies"
}

# --- identity -----------------------------------------------------------------
new_machine_id() {
  info 'generating /etc/machine-id'
  rm -f /etc/machine-id
  systemd-machine-id-setup >/dev/null
}

fake_product_files() {
  # Every node of a cluster runs on the same hardware: give each its own DMI
  # identity (kubeadm and the kubelet read product_uuid / product_name).
  [[ -f /kind/product_uuid ]] || cat /proc/sys/kernel/random/uuid >/kind/product_uuid
  echo kind >/kind/product_name
  local f
  for f in /sys/class/dmi/id/product_name /sys/class/dmi/id/product_uuid /sys/devices/virtual/dmi/id/product_uuid; do
    if [[ -f "$f" ]]; then
      mount -o ro,bind "/kind/${f##*/}" "$f" || warn "could not fake ${f}"
    fi
  done
}

# --- iptables -----------------------------------------------------------------
choose_iptables() {
  # Use the iptables flavour docker already used in this network namespace:
  # whichever holds more rules (legacy on a tie, as with no rules at all).
  local legacy nft mode
  legacy="$( (iptables-legacy-save; ip6tables-legacy-save) 2>/dev/null | grep -c '^-' || true)"
  nft="$( (timeout 5 iptables-nft-save; timeout 5 ip6tables-nft-save) 2>/dev/null | grep -c '^-' || true)"
  mode=legacy
  if (( ${nft:-0} > ${legacy:-0} )); then mode=nft; fi
  info "iptables mode: ${mode} (legacy rules: ${legacy:-0}, nft rules: ${nft:-0})"
  update-alternatives --set iptables "/usr/sbin/iptables-${mode}" >/dev/null
  update-alternatives --set ip6tables "/usr/sbin/ip6tables-${mode}" >/dev/null
}

# --- DNS ------------------------------------------------------------------------
docker_dns_to_gateway() {
  # On a user-defined docker network the node's resolver is docker's embedded
  # DNS at 127.0.0.11, which pods cannot reach from their own network
  # namespace. Publish it on the network's gateway address as well (DNAT for
  # local and forwarded traffic; conntrack rewrites the replies) and point
  # resolv.conf there.
  local embedded=127.0.0.11 gateway udp_port tcp_port rules
  grep -q "^nameserver ${embedded}" /etc/resolv.conf || return 0
  gateway="$(ip -4 route show default | awk '{print $3; exit}')"
  [[ -n "$gateway" ]] || { warn 'no default route: leaving DNS as is'; return 0; }
  rules="$(iptables-save -t nat 2>/dev/null || true)"
  udp_port="$(sed -n "s/.*-d ${embedded}\/32 -p udp .*--to-destination ${embedded}:\([0-9]*\).*/\1/p" <<<"$rules" | head -n1)"
  tcp_port="$(sed -n "s/.*-d ${embedded}\/32 -p tcp .*--to-destination ${embedded}:\([0-9]*\).*/\1/p" <<<"$rules" | head -n1)"
  if [[ -z "$udp_port" || -z "$tcp_port" ]]; then
    warn "docker DNS rules not found; pods may not resolve external names"
    return 0
  fi
  local chain
  iptables -t nat -N PALLET_DNS 2>/dev/null || iptables -t nat -F PALLET_DNS
  iptables -t nat -A PALLET_DNS -d "$gateway/32" -p udp --dport 53 -j DNAT --to-destination "${embedded}:${udp_port}"
  iptables -t nat -A PALLET_DNS -d "$gateway/32" -p tcp --dport 53 -j DNAT --to-destination "${embedded}:${tcp_port}"
  for chain in OUTPUT PREROUTING; do
    iptables -t nat -C "$chain" -d "$gateway/32" -j PALLET_DNS 2>/dev/null ||
      iptables -t nat -I "$chain" 1 -d "$gateway/32" -j PALLET_DNS
  done
  [[ -f /etc/resolv.conf.docker ]] || cp /etc/resolv.conf /etc/resolv.conf.docker
  local resolv
  resolv="$(sed -e "s/^nameserver ${embedded}\$/nameserver ${gateway}/" /etc/resolv.conf.docker)"
  if [[ -n "${KIND_DNS_SEARCH+x}" ]]; then
    resolv="$(grep -v '^search' <<<"$resolv" || true)"
    if [[ -n "$KIND_DNS_SEARCH" ]]; then resolv="search ${KIND_DNS_SEARCH}"$'\n'"${resolv}"; fi
  fi
  # /etc/resolv.conf is a bind mount from docker: rewrite it in place
  printf '%s\n' "$resolv" >/etc/resolv.conf
  info "DNS: ${embedded} published on ${gateway}:53"
}

# --- proxy ----------------------------------------------------------------------
proxy_environment() {
  mkdir -p /etc/systemd/system.conf.d
  cat >/etc/systemd/system.conf.d/proxy-default-environment.conf <<EOF
[Manager]
DefaultEnvironment="HTTP_PROXY=${HTTP_PROXY:-}" "HTTPS_PROXY=${HTTPS_PROXY:-}" "NO_PROXY=${NO_PROXY:-}"
EOF
}

# --- oom_score_adj ------------------------------------------------------------------
restrict_oom_score_adj() {
  # Lowering a process's oom_score_adj needs CAP_SYS_RESOURCE. Where the node
  # does not have it (some VMs, user namespaces), runc fails to start every pod
  # sandbox ("can't get final child's PID from pipe: EOF") unless containerd
  # clamps the requested scores to its own.
  local bnd
  bnd="$(awk '/^CapBnd:/ {print $2}' /proc/self/status)"
  if [[ -n "$bnd" ]] && (( ((16#$bnd >> 24) & 1) == 0 )); then
    info 'no CAP_SYS_RESOURCE: containerd restricts oom_score_adj'
    sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml
  fi
}

# --- snapshotter ------------------------------------------------------------------
choose_snapshotter() {
  local snapshotter="${KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER:-}"
  if [[ -z "$snapshotter" ]]; then
    case "$(stat -f -c %T /kind)" in
      zfs) snapshotter=native ;;
    esac
  fi
  if [[ -n "$snapshotter" ]]; then
    info "containerd snapshotter: ${snapshotter}"
    sed -i "s/snapshotter = \"overlayfs\"/snapshotter = \"${snapshotter}\"/" /etc/containerd/config.toml
  fi
}

prepare_mounts
restrict_oom_score_adj
prepare_cgroups
new_machine_id
fake_product_files
choose_iptables
docker_dns_to_gateway
proxy_environment
choose_snapshotter
info 'starting init'
exec "$@"
