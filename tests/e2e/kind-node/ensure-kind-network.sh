#!/usr/bin/env bash
# Test-machine set-up: the `kind` Docker network as kind makes it, but with its IPv4
# subnet given explicitly. kind reuses an existing network named `kind`; when kind makes
# it, Docker picks the IPv4 subnet, and Docker 28 then refuses `docker run --ip` on it
# ("user specified IP address is supported only when connecting to networks with user
# configured subnets"). The kind mirrors end-to-end test starts its TLS upstream at a
# fixed address on this network (its certificate names that address). Safe to re-run:
# a network with containers attached is left as it is; otherwise its subnets are kept.
set -euo pipefail

net=kind
ipv6=fc00:f853:ccd:e793::/64
opts=(-d=bridge -o com.docker.network.bridge.enable_ip_masquerade=true
  -o com.docker.network.driver.mtu=1500)

ipv4_subnet() {
  docker network inspect "$net" --format '{{range .IPAM.Config}}{{println .Subnet}}{{end}}' |
    grep -v ':' | head -n 1
}

if docker network inspect "$net" >/dev/null 2>&1; then
  if [[ $(docker network inspect "$net" --format '{{len .Containers}}') -ne 0 ]]; then
    echo "the $net network has containers attached; left as it is"
    exit 0
  fi
else
  # let Docker pick a free IPv4 subnet, then give that one explicitly
  docker network create "${opts[@]}" "$net" >/dev/null
fi
subnet=$(ipv4_subnet)
docker network rm "$net" >/dev/null
if ! docker network create "${opts[@]}" --subnet "$subnet" --ipv6 --subnet "$ipv6" "$net" \
  >/dev/null 2>&1; then
  docker network create "${opts[@]}" --subnet "$subnet" "$net" >/dev/null # no IPv6 here
fi
echo "the $net network: IPv4 $subnet (user-configured)"
