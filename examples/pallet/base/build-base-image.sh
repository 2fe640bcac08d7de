#!/usr/bin/env bash
# Build the examples' base image offline: a static busybox (Debian: busybox-static) with
# every applet linked, imported with `docker import`. Nothing is pulled.
# With internet access you do not need it: set the agents' BASE_IMAGE build arg to a
# public busybox image instead (see examples/pallet/README.md).
#
# usage: bash examples/pallet/base/build-base-image.sh [TAG]   (default pallet-dev-examples/busybox:local)
set -euo pipefail
tag=${1:-pallet-dev-examples/busybox:local}
if [[ ${1:-} == "-h" || ${1:-} == "--help" ]]; then
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
busybox=${BUSYBOX:-$(command -v busybox || true)}
if [[ -z $busybox ]]; then
  echo "build-base-image: no busybox found; install a static one (Debian/Ubuntu: apt-get install busybox-static) or set BUSYBOX" >&2
  exit 3
fi
if command -v file >/dev/null 2>&1 && ! file -L "$busybox" | grep -q 'statically linked'; then
  echo "build-base-image: $busybox is not statically linked (Debian/Ubuntu: apt-get install busybox-static)" >&2
  exit 3
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
tar -C "$root" -cf - . | docker import \
  --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$tag" >/dev/null
echo "built $tag from $busybox"
