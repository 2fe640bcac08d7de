#!/usr/bin/env bash
# Build a kind node image offline, from Debian packages and Go modules only.
#
#   sudo tests/e2e/kind-node/build-node-image.sh [STAGE...]
#
# Stages (default: all, in this order):
#   rootfs    debootstrap a Debian root filesystem with systemd, containerd, runc,
#             iptables, CNI plugins ... (cached per suite + package list)
#   go        build the Kubernetes binaries, etcd, coredns, crictl,
#             local-path-provisioner and a pause program from Go modules
#             (throw-away modules under $WORK_DIR/gomod, GOCACHE/GOMODCACHE kept)
#   images    turn those binaries into container images (docker import) and save
#             them as docker archives under $WORK_DIR/images
#   assemble  lay out the node filesystem (entrypoint, rootfs/: systemd units,
#             containerd config, default CNI and storage manifests ...; /kind/version),
#             import the image archives into containerd's k8s.io namespace, docker
#             import it
#
# Pinned versions come from one place: .ci/versions.env (KIND_NODE_* block).
# Environment knobs:
#   KIND_NODE_WORK_DIR   scratch and cache folder (default /var/tmp/kind-node-build)
#   KIND_NODE_IMAGE      output tag (default pallet-dev/kind-node:$KIND_NODE_K8S_VERSION)
#   KIND_NODE_GO_JOBS    go build -p (default 1: the machine is shared)
#   KIND_NODE_NICE       nice level for heavy steps (default 15)
#   KIND_NODE_VERSIONS_FILE  alternative versions file
#   GO                   go command (default: go on PATH, else /usr/local/go/bin/go)
#   DEBIAN_MIRROR        (default http://deb.debian.org/debian)
#
# Needs root (debootstrap, chroot ownership), docker, debootstrap, jq.
# Writes nothing inside the repository.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${here}/../../.." && pwd)"
versions_file="${KIND_NODE_VERSIONS_FILE:-${repo_root}/.ci/versions.env}"

log() { echo "[build-node-image $(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- versions
[[ -f "$versions_file" ]] || die "versions file ${versions_file} not found"
image_from_env="${KIND_NODE_IMAGE:-}"
set -a
# shellcheck disable=SC1090
. "$versions_file"
set +a
for var in KIND_NODE_K8S_VERSION KIND_NODE_DEBIAN_SUITE KIND_NODE_ETCD_VERSION \
  KIND_NODE_COREDNS_VERSION KIND_NODE_CRICTL_VERSION KIND_NODE_LOCAL_PATH_PROVISIONER_VERSION; do
  [[ -n "${!var:-}" ]] || die "${var} is not set in ${versions_file}"
done
k8s_version="$KIND_NODE_K8S_VERSION"             # e.g. v1.34.4
k8s_staging_version="v0.${k8s_version#v1.}"      # e.g. v0.34.4

# ---------------------------------------------------------------- settings
work_dir="${KIND_NODE_WORK_DIR:-/var/tmp/kind-node-build}"
image_tag="${image_from_env:-${KIND_NODE_IMAGE:-pallet-dev/kind-node:${k8s_version}}}"
go_jobs="${KIND_NODE_GO_JOBS:-1}"
nice_level="${KIND_NODE_NICE:-15}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
arch="amd64"
if [[ -z "${GO:-}" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"; else GO=/usr/local/go/bin/go; fi
fi
export GOMODCACHE="${GOMODCACHE:-${work_dir}/go/mod}"
export GOCACHE="${GOCACHE:-${work_dir}/go/cache}"
export GOFLAGS="-mod=mod"
export GOTOOLCHAIN=local
export CGO_ENABLED=0 GOOS=linux GOARCH="$arch"

bin_dir="${work_dir}/bin"
images_dir="${work_dir}/images"
node_rootfs="${work_dir}/node-rootfs"
timings_file="${work_dir}/timings.txt"
heavy=(nice -n "$nice_level")

# Debian packages of the node (what kind's base image installs, with Debian's
# containerd, runc and CNI plugins instead of separately built ones).
node_packages=(
  systemd systemd-sysv dbus
  containerd runc containernetworking-plugins
  conntrack iptables nftables iproute2 ethtool util-linux mount kmod
  libseccomp2 pigz fuse-overlayfs
  bash ca-certificates curl jq procps
  busybox-static
)

# ---------------------------------------------------------------- timing
declare -A stage_seconds=()
stage_order=()
run_stage() {
  local name=$1 start end
  shift
  log "=== stage ${name} ==="
  start=$(date +%s)
  "$@"
  end=$(date +%s)
  stage_seconds[$name]=$((end - start))
  stage_order+=("$name")
  log "=== stage ${name} done in $((end - start))s ==="
}
print_timings() {
  local name total=0
  {
    echo "# $(date -Is) image ${image_tag}"
    for name in "${stage_order[@]}"; do
      printf '%-10s %6ss\n' "$name" "${stage_seconds[$name]}"
      total=$((total + stage_seconds[$name]))
    done
    printf '%-10s %6ss\n' total "$total"
  } | tee -a "$timings_file" >&2
}

# ---------------------------------------------------------------- files
# The files the build adds live in this folder where they land: rootfs/ in the
# node, image-roots/<image>/ in the small images (image-roots/base/ in all of
# them), src/<program>/ for Go programs of our own.

# install_tree SRC DEST: every file under SRC to the same path under DEST, mode
# 0755 if executable in the checkout else 0644, owned by the build's user (root):
# the checkout's owner and umask do not leak into the image.
install_tree() {
  local src=$1 dest=$2 f mode
  while IFS= read -r -d '' f; do
    mode=0644
    if [[ -x "${src}/${f}" ]]; then mode=0755; fi
    mkdir -p "$(dirname "${dest}/${f}")"
    install -m "$mode" "${src}/${f}" "${dest}/${f}"
  done < <(cd "$src" && find . -type f -print0)
}

# render FILE KEY=VALUE...: replace @KEY@ with VALUE in FILE (in place). Values
# are image references; a value sed would misread (#, &, \, newline) is refused,
# and so is a placeholder left unreplaced.
render() {
  local file=$1 kv key val script=()
  shift
  for kv in "$@"; do
    key=${kv%%=*}
    val=${kv#*=}
    [[ "$val" != *[#\&\\$'\n']* ]] || die "cannot render @${key}@ in ${file} as ${val}"
    script+=(-e "s#@${key}@#${val}#g")
  done
  sed -i "${script[@]}" "$file"
  ! grep -n '@[A-Z_]*@' "$file" >&2 || die "placeholder left in ${file}"
}

# ================================================================ stage: rootfs
rootfs_cache_dir() {
  local key
  key="$(printf '%s\n' "$KIND_NODE_DEBIAN_SUITE" "$mirror" "${node_packages[@]}" | sha256sum | cut -c1-12)"
  echo "${work_dir}/debootstrap-${KIND_NODE_DEBIAN_SUITE}-${key}"
}

stage_rootfs() {
  local dir tmp
  dir="$(rootfs_cache_dir)"
  if [[ -f "${dir}/.complete" ]]; then
    log "debootstrap cache hit: ${dir}"
    return 0
  fi
  tmp="${dir}.tmp"
  rm -rf "$tmp"
  local include
  include="$(IFS=,; echo "${node_packages[*]}")"
  log "debootstrap ${KIND_NODE_DEBIAN_SUITE} into ${tmp}"
  "${heavy[@]}" debootstrap --variant=minbase --arch="$arch" --include="$include" \
    "$KIND_NODE_DEBIAN_SUITE" "$tmp" "$mirror" >"${work_dir}/debootstrap.log" 2>&1 ||
    { tail -20 "${work_dir}/debootstrap.log" >&2; die "debootstrap failed (log: ${work_dir}/debootstrap.log)"; }
  chroot "$tmp" apt-get clean
  rm -rf "${tmp}/var/lib/apt/lists/"* "${tmp}/var/cache/apt/"*.bin "${tmp}/var/log/"*.log
  touch "${tmp}/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

# ================================================================ stage: go
# go_module_dir MODULE@VERSION -> the unpacked module source in GOMODCACHE
go_module_dir() {
  "$GO" mod download -json "$1" | jq -r .Dir
}

# prepare_throwaway_module NAME MODULE VERSION PKG... : a module that requires
# MODULE@VERSION and blank-imports the PKGs so that `go mod tidy` resolves them.
prepare_throwaway_module() {
  local name=$1 module=$2 version=$3
  shift 3
  local dir="${work_dir}/gomod/${name}"
  mkdir -p "$dir"
  {
    echo "module pallet.invalid/kind-node-build/${name}"
    echo
    echo "go 1.24.0"
    echo
    echo "require ${module} ${version}"
  } >"${dir}/go.mod.new"
  if [[ -n "${extra_replaces:-}" ]]; then
    printf '\nreplace (\n%s)\n' "$extra_replaces" >>"${dir}/go.mod.new"
  fi
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    local p
    for p in "$@"; do echo "	_ \"${p}\""; done
    echo ")"
  } >"${dir}/tools.go"
  # Keep the resolved go.mod/go.sum when the requirement did not change.
  if ! cmp -s "${dir}/go.mod.new" "${dir}/go.mod.in" 2>/dev/null; then
    cp "${dir}/go.mod.new" "${dir}/go.mod"
    cp "${dir}/go.mod.new" "${dir}/go.mod.in"
    rm -f "${dir}/go.sum"
    (cd "$dir" && "$GO" mod tidy >/dev/null)
  fi
  rm -f "${dir}/go.mod.new"
  echo "$dir"
}

# go_build NAME DIR LDFLAGS PKG... : build the PKGs into $bin_dir
go_build() {
  local name=$1 dir=$2 ldflags=$3 start
  shift 3
  start=$(date +%s)
  (cd "$dir" && "${heavy[@]}" "$GO" build -p "$go_jobs" -trimpath -ldflags "-s -w ${ldflags}" -o "${bin_dir}/" "$@")
  log "go build ${name}: $(( $(date +%s) - start ))s"
}

build_kubernetes() {
  local src replaces dir ld=() key val
  src="$(go_module_dir "k8s.io/kubernetes@${k8s_version}")"
  # k8s.io/kubernetes replaces every staging module with a local path; point
  # each at the published module of the same release instead.
  replaces="$(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*$#\t\1 => \1 '"${k8s_staging_version}"'#p' "${src}/go.mod")"
  [[ -n "$replaces" ]] || die "found no staging replace directives in ${src}/go.mod"
  local pkgs=(
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubectl
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy
  )
  dir="$(extra_replaces="${replaces}
" prepare_throwaway_module kubernetes k8s.io/kubernetes "$k8s_version" "${pkgs[@]}")"
  local minor="${k8s_version#v1.}"
  minor="${minor%%.*}"
  for key in gitVersion gitMajor gitMinor gitCommit gitTreeState buildDate; do
    case "$key" in
      gitVersion) val="$k8s_version" ;;
      gitMajor) val=1 ;;
      gitMinor) val="$minor" ;;
      gitCommit) val="0000000000000000000000000000000000000000" ;;
      gitTreeState) val=clean ;;
      buildDate) val="1970-01-01T00:00:00Z" ;;
    esac
    ld+=("-X k8s.io/component-base/version.${key}=${val}" "-X k8s.io/client-go/pkg/version.${key}=${val}")
  done
  go_build kubernetes "$dir" "${ld[*]}" "${pkgs[@]}"
}

build_simple() {
  # build_simple NAME MODULE VERSION LDFLAGS PKG...
  local name=$1 module=$2 version=$3 ldflags=$4 dir
  shift 4
  dir="$(prepare_throwaway_module "$name" "$module" "$version" "$@")"
  go_build "$name" "$dir" "$ldflags" "$@"
}

build_pause() {
  # src/pause: a minimal pod sandbox process of our own (sleeps until SIGINT or
  # SIGTERM, reaps children: it is PID 1 of pods that share their PID namespace).
  # Built from a copy under $work_dir, so the build writes nothing in the checkout.
  local dir="${work_dir}/gomod/pause"
  mkdir -p "$dir"
  install -m 0644 "${here}/src/pause/go.mod" "${here}/src/pause/main.go" "${dir}/"
  (cd "$dir" && "$GO" build -trimpath -ldflags "-s -w" -o "${bin_dir}/pause" .)
}

stage_go() {
  mkdir -p "$bin_dir" "$GOMODCACHE" "$GOCACHE"
  [[ -x "$GO" ]] || command -v "$GO" >/dev/null || die "go not found (set GO=)"
  log "using $("$GO" version), -p ${go_jobs}, GOCACHE=${GOCACHE}"
  build_kubernetes
  build_simple etcd go.etcd.io/etcd/server/v3 "$KIND_NODE_ETCD_VERSION" \
    "" go.etcd.io/etcd/server/v3
  # go names the binary of .../server/v3 "server"
  if [[ -f "${bin_dir}/server" ]]; then mv -f "${bin_dir}/server" "${bin_dir}/etcd"; fi
  if [[ -f "${bin_dir}/v3" ]]; then mv -f "${bin_dir}/v3" "${bin_dir}/etcd"; fi
  build_simple coredns github.com/coredns/coredns "$KIND_NODE_COREDNS_VERSION" \
    "-X github.com/coredns/coredns/coremain.GitCommit=${KIND_NODE_COREDNS_VERSION}" github.com/coredns/coredns
  build_simple crictl sigs.k8s.io/cri-tools "$KIND_NODE_CRICTL_VERSION" \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=${KIND_NODE_CRICTL_VERSION}" sigs.k8s.io/cri-tools/cmd/crictl
  build_simple local-path-provisioner github.com/rancher/local-path-provisioner \
    "$KIND_NODE_LOCAL_PATH_PROVISIONER_VERSION" "" github.com/rancher/local-path-provisioner
  build_pause
  ls -la "$bin_dir" >&2
  "${bin_dir}/kubeadm" version -o short >&2
}

# ================================================================ stage: images
# The images kubeadm, the default CNI and the default storage manifests use.
cni_image="docker.io/pallet-dev/kind-cni:${k8s_version}"
storage_image="docker.io/pallet-dev/local-path-provisioner:${KIND_NODE_LOCAL_PATH_PROVISIONER_VERSION}"
storage_helper_image="docker.io/pallet-dev/local-path-helper:${KIND_NODE_LOCAL_PATH_PROVISIONER_VERSION}"

# base_layout DIR NAME: the few files every image gets (image-roots/base), and
# the image's own (image-roots/NAME) if it has any
base_layout() {
  local d=$1 name=$2
  mkdir -p "${d}/etc" "${d}/tmp" "${d}/usr/local/bin" "${d}/bin" "${d}/var/run"
  chmod 1777 "${d}/tmp"
  install_tree "${here}/image-roots/base" "$d"
  if [[ -d "${here}/image-roots/${name}" ]]; then install_tree "${here}/image-roots/${name}" "$d"; fi
}

# add_busybox DIR: a static busybox with its applets as symlinks in /bin
add_busybox() {
  local d=$1 applet
  install -m 0755 "$(rootfs_cache_dir)/bin/busybox" "${d}/bin/busybox"
  for applet in $("${d}/bin/busybox" --list); do
    [[ -e "${d}/bin/${applet}" ]] || ln -s busybox "${d}/bin/${applet}"
  done
}

# add_iptables DIR: iptables (legacy and nft), conntrack and their libraries,
# copied from the Debian root filesystem; the commands point at iptables-wrapper
# (image-roots/kube-proxy), which picks the mode the node already uses the first
# time any iptables command runs.
add_iptables() {
  local d=$1 src libs f
  src="$(rootfs_cache_dir)"
  mkdir -p "${d}/usr/sbin" "${d}/usr/lib/x86_64-linux-gnu" "${d}/lib64"
  cp -a "${src}/usr/sbin/xtables-legacy-multi" "${src}/usr/sbin/xtables-nft-multi" "${src}/usr/sbin/conntrack" "${d}/usr/sbin/"
  cp -a "${src}/usr/lib/x86_64-linux-gnu/xtables" "${d}/usr/lib/x86_64-linux-gnu/"
  libs="$(for f in /usr/sbin/xtables-legacy-multi /usr/sbin/xtables-nft-multi /usr/sbin/conntrack /usr/lib/x86_64-linux-gnu/xtables/*.so; do
    chroot "$src" ldd "$f" 2>/dev/null | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
  done | sort -u)"
  for f in $libs; do
    mkdir -p "${d}$(dirname "$f")"
    cp -L "${src}${f}" "${d}${f}"
  done
  for f in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf xtables-legacy-multi "${d}/usr/sbin/${f}-legacy"
    ln -sf xtables-nft-multi "${d}/usr/sbin/${f}-nft"
    ln -sf iptables-wrapper "${d}/usr/sbin/${f}"
  done
}

# make_image NAME REF DIR [docker import --change ...]: import DIR as REF and
# save it as ${images_dir}/NAME.tar
make_image() {
  local name=$1 ref=$2 dir=$3
  shift 3
  local changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
  local c
  for c in "$@"; do changes+=(--change "$c"); done
  tar -C "$dir" --numeric-owner --owner=0 --group=0 -c . | docker import "${changes[@]}" - "$ref" >/dev/null
  docker save -o "${images_dir}/${name}.tar" "$ref"
  docker rmi "$ref" >/dev/null
  log "image ${ref} -> ${images_dir}/${name}.tar ($(du -h "${images_dir}/${name}.tar" | cut -f1))"
}

stage_images() {
  [[ -x "${bin_dir}/kubeadm" ]] || die "run the go stage first"
  [[ -f "$(rootfs_cache_dir)/.complete" ]] || die "run the rootfs stage first"
  rm -rf "$images_dir" "${work_dir}/image-roots"
  mkdir -p "$images_dir" "${work_dir}/image-roots"
  local roots="${work_dir}/image-roots" ref name d
  # kubeadm names the images it will run; we build exactly those references.
  "${bin_dir}/kubeadm" config images list --kubernetes-version "$k8s_version" >"${work_dir}/kubeadm-images.txt"
  while read -r ref; do
    name="${ref##*/}"
    name="${name%%:*}"
    d="${roots}/${name}"
    base_layout "$d" "$name"
    case "$name" in
      kube-apiserver | kube-controller-manager | kube-scheduler)
        install -m 0755 "${bin_dir}/${name}" "${d}/usr/local/bin/${name}"
        make_image "$name" "$ref" "$d"
        ;;
      kube-proxy)
        install -m 0755 "${bin_dir}/kube-proxy" "${d}/usr/local/bin/kube-proxy"
        add_busybox "$d"
        add_iptables "$d"
        make_image "$name" "$ref" "$d"
        ;;
      etcd)
        [[ "${ref##*:}" == "${KIND_NODE_ETCD_VERSION#v}"* ]] ||
          log "WARNING: kubeadm wants ${ref}, built etcd ${KIND_NODE_ETCD_VERSION}"
        install -m 0755 "${bin_dir}/etcd" "${d}/usr/local/bin/etcd"
        mkdir -p "${d}/var/lib/etcd"
        make_image "$name" "$ref" "$d"
        ;;
      coredns)
        [[ "${ref##*:}" == "$KIND_NODE_COREDNS_VERSION" ]] ||
          log "WARNING: kubeadm wants ${ref}, built coredns ${KIND_NODE_COREDNS_VERSION}"
        install -m 0755 "${bin_dir}/coredns" "${d}/coredns"
        make_image "$name" "$ref" "$d" 'ENTRYPOINT ["/coredns"]' 'EXPOSE 53 53/udp'
        ;;
      pause)
        install -m 0755 "${bin_dir}/pause" "${d}/pause"
        make_image "$name" "$ref" "$d" 'ENTRYPOINT ["/pause"]'
        echo "$ref" >"${work_dir}/pause-image.txt"
        ;;
      *) die "kubeadm lists an image this script does not know how to build: ${ref}" ;;
    esac
  done <"${work_dir}/kubeadm-images.txt"

  # Default CNI helper: busybox + kubectl + pallet-cni-routes, which adds routes
  # to the other nodes' pod CIDRs.
  d="${roots}/kind-cni"
  base_layout "$d" kind-cni
  add_busybox "$d"
  install -m 0755 "${bin_dir}/kubectl" "${d}/usr/local/bin/kubectl"
  make_image kind-cni "$cni_image" "$d" 'CMD ["/usr/local/bin/pallet-cni-routes"]'

  d="${roots}/local-path-provisioner"
  base_layout "$d" local-path-provisioner
  install -m 0755 "${bin_dir}/local-path-provisioner" "${d}/usr/local/bin/local-path-provisioner"
  make_image local-path-provisioner "$storage_image" "$d" 'ENTRYPOINT ["/usr/local/bin/local-path-provisioner"]'

  d="${roots}/local-path-helper"
  base_layout "$d" local-path-helper
  add_busybox "$d"
  make_image local-path-helper "$storage_helper_image" "$d" 'CMD ["/bin/sh"]'
  rm -rf "$roots"
}

# ================================================================ stage: assemble
write_file() {
  # write_file MODE PATH (content on stdin), PATH relative to the node rootfs
  local mode=$1 path="${node_rootfs}$2"
  mkdir -p "$(dirname "$path")"
  cat >"$path"
  chmod "$mode" "$path"
}

write_node_files() {
  local pause_image
  pause_image="$(cat "${work_dir}/pause-image.txt")"

  write_file 0755 /usr/local/bin/entrypoint <"${here}/node-entrypoint.sh"
  # systemd units, containerd, crictl, kubelet and sysctl settings, /kind/bin
  # and the default CNI and storage manifests
  install_tree "${here}/rootfs" "$node_rootfs"
  render "${node_rootfs}/etc/containerd/config.toml" PAUSE_IMAGE="$pause_image"
  render "${node_rootfs}/kind/manifests/default-cni.yaml" CNI_IMAGE="$cni_image"
  render "${node_rootfs}/kind/manifests/default-storage.yaml" \
    STORAGE_IMAGE="$storage_image" HELPER_IMAGE="$storage_helper_image"
  mkdir -p "${node_rootfs}/etc/cni/net.d" "${node_rootfs}/etc/containerd/certs.d" \
    "${node_rootfs}/etc/kubernetes/manifests"

  # The default OCI spec of Debian's containerd, without rlimits so that pods
  # inherit the node's (kind does the same).
  "${node_rootfs}/usr/bin/ctr" oci spec | jq 'del(.process.rlimits)' |
    write_file 0644 /etc/containerd/cri-base.json

  printf '%s' "$k8s_version" >"${node_rootfs}/kind/version"
  printf 'kind node image built by pallet-dev tests/e2e/kind-node/build-node-image.sh\nkubernetes %s\n' \
    "$k8s_version" >"${node_rootfs}/kind/README.txt"
}

trim_systemd() {
  # Only what a container needs: no udev, no getty, no timers; our units on.
  local r=$node_rootfs
  rm -f "${r}/lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service"
  rm -f "${r}/lib/systemd/system/multi-user.target.wants/"* "${r}/etc/systemd/system/"*.wants/*
  rm -f "${r}/lib/systemd/system/local-fs.target.wants/"* "${r}/lib/systemd/system/basic.target.wants/"*
  rm -f "${r}/lib/systemd/system/sockets.target.wants/"*udev* "${r}/lib/systemd/system/sockets.target.wants/"*initctl*
  systemctl --root="$r" enable containerd.service kubelet.service pallet-node-setup.service >/dev/null 2>&1
  systemctl --root="$r" mask systemd-binfmt.service getty.target console-getty.service >/dev/null 2>&1 || true
  systemctl --root="$r" set-default multi-user.target >/dev/null 2>&1
}

install_binaries() {
  local b
  for b in kubelet kubeadm kubectl; do
    install -m 0755 "${bin_dir}/${b}" "${node_rootfs}/usr/bin/${b}"
  done
  install -m 0755 "${bin_dir}/crictl" "${node_rootfs}/usr/local/bin/crictl"
  mkdir -p "${node_rootfs}/opt/cni/bin"
  cp -a "${node_rootfs}/usr/lib/cni/." "${node_rootfs}/opt/cni/bin/"
}

# Import the image archives into containerd's k8s.io namespace inside the node
# filesystem, with the node's own containerd binary running on this host against
# the node's /var/lib/containerd (content only: unpacking happens in the node,
# where /var is a volume; containerd's CRI unpacks on first use).
import_images() {
  local run="${work_dir}/import-containerd"
  rm -rf "$run"
  mkdir -p "${run}/state" "${node_rootfs}/var/lib/containerd"
  # Inline, not under rootfs/: a throw-away config of the build host whose every
  # setting is a path of this run.
  cat >"${run}/config.toml" <<EOF
version = 2
root = "${node_rootfs}/var/lib/containerd"
state = "${run}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "${run}/containerd.sock"
[ttrpc]
  address = "${run}/containerd.sock.ttrpc"
[debug]
  address = "${run}/debug.sock"
EOF
  "${node_rootfs}/usr/bin/containerd" --config "${run}/config.toml" >"${run}/containerd.log" 2>&1 &
  local pid=$!
  local ctr=("${node_rootfs}/usr/bin/ctr" --address "${run}/containerd.sock" --namespace k8s.io)

  for _ in $(seq 1 30); do
    if "${ctr[@]}" version >/dev/null 2>&1; then break; fi
    sleep 0.5
  done
  local f rc=0
  for f in "${images_dir}"/*.tar; do
    if ! "${ctr[@]}" images import --no-unpack --all-platforms --digests "$f" >/dev/null; then
      rc=1
      log "import of ${f} failed"
      break
    fi
  done
  "${ctr[@]}" images ls -q | sort >"${work_dir}/imported-images.txt" || rc=1
  kill "$pid"
  wait "$pid" || true
  [[ "$rc" == 0 ]] || { tail -20 "${run}/containerd.log" >&2; die "image import failed"; }
  log "imported into the node: $(tr '\n' ' ' <"${work_dir}/imported-images.txt")"
  rm -rf "$run"
}

stage_assemble() {
  [[ -d "$images_dir" ]] || die "run the images stage first"
  local src
  src="$(rootfs_cache_dir)"
  [[ -f "${src}/.complete" ]] || die "run the rootfs stage first"
  rm -rf "$node_rootfs"
  cp -a "$src" "$node_rootfs"
  rm -f "${node_rootfs}/.complete"
  install_binaries
  write_node_files
  trim_systemd
  # machine-id is generated at boot by the entrypoint
  : >"${node_rootfs}/etc/machine-id"
  import_images
  # the image this build replaces: removed below once the new one has its tag, so
  # rebuilds do not pile up 1.2 GB untagged images
  local previous
  previous=$(docker image inspect -f '{{.Id}}' "$image_tag" 2>/dev/null || true)
  log "docker import ${image_tag}"
  local flat="${image_tag}-rootfs"
  tar -C "$node_rootfs" --numeric-owner -c . | "${heavy[@]}" docker import \
    --change 'ENV container=docker' \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    --message "pallet-dev kind node ${k8s_version}" \
    - "$flat" >/dev/null
  # docker import cannot set STOPSIGNAL (systemd halts on SIGRTMIN+3); a
  # metadata-only build on top of the local image can, without any pull.
  printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\nLABEL dev.pallet.kind-node.kubernetes-version=%s\n' "$flat" "$k8s_version" |
    DOCKER_BUILDKIT=0 docker build -q -t "$image_tag" - >/dev/null 2>"${work_dir}/docker-build.log" ||
    { cat "${work_dir}/docker-build.log" >&2; die "docker build (STOPSIGNAL) failed"; }
  docker rmi "$flat" >/dev/null
  if [[ -n "$previous" && "$previous" != "$(docker image inspect -f '{{.Id}}' "$image_tag")" ]]; then
    # fails harmlessly while a container (a running kind node) still uses it
    docker rmi "$previous" >/dev/null 2>&1 || log "kept the previous image ${previous} (in use)"
  fi
  rm -rf "$node_rootfs"
  log "built ${image_tag} ($(docker image inspect -f '{{.Size}}' "$image_tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

# ================================================================ main
ensure_host_tools() {
  local missing=() tool
  for tool in debootstrap jq docker; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  [[ " ${missing[*]} " != *" docker "* ]] || die "docker is not installed"
  command -v apt-get >/dev/null 2>&1 || die "missing: ${missing[*]}"
  log "installing ${missing[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } ||
    die "could not install ${missing[*]}"
}

main() {
  [[ "$(id -u)" == 0 ]] || die "run as root"
  ensure_host_tools
  mkdir -p "$work_dir"
  local stages=("$@")
  [[ ${#stages[@]} -gt 0 ]] || stages=(rootfs go images assemble)
  local s
  for s in "${stages[@]}"; do
    case "$s" in
      rootfs) run_stage rootfs stage_rootfs ;;
      go) run_stage go stage_go ;;
      images) run_stage images stage_images ;;
      assemble) run_stage assemble stage_assemble ;;
      *) die "unknown stage ${s} (rootfs, go, images, assemble)" ;;
    esac
  done
  print_timings
  log "image: ${image_tag}"
}

main "$@"
