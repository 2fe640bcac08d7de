#!/bin/sh
# Delegate all controllers to /kubelet and /kubelet.slice on a cgroup v2 node.
set -eu
enable_all() {
  sed -e 's/ / +/g' -e 's/^/+/' "/sys/fs/cgroup/$1/cgroup.controllers" >"/sys/fs/cgroup/$1/cgroup.subtree_control"
}
enable_all /
for g in kubelet kubelet.slice; do
  mkdir -p "/sys/fs/cgroup/${g}"
  enable_all "/${g}"
done
