#!/bin/sh
# publish.sh REPOSITORY TAG FILE: push FILE to $PALLET_REGISTRY as a one-layer OCI
# artifact REPOSITORY:TAG (distribution API: POST + PUT per blob, PUT the manifest).
# Prints the manifest's digest. Plain HTTP over busybox nc: the dev registry has no TLS.
set -eu
repository=$1 tag=$2 file=$3
registry=$PALLET_REGISTRY
host=${registry%:*} port=${registry##*:}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

request() { # METHOD PATH CONTENT-TYPE BODY-FILE: the raw response, CRs removed
  size=$(wc -c <"$4")
  {
    printf '%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n' "$1" "$2" "$registry" "$3"
    printf 'Content-Length: %s\r\nConnection: close\r\n\r\n' "$size"
    cat "$4"
  } | nc -w 10 "$host" "$port" | tr -d '\r'
}

expect() { # STATUS RESPONSE-FILE WHAT
  code=$(head -n 1 "$2" | cut -d' ' -f2)
  [ "$code" = "$1" ] || { echo "$3: HTTP $code: $(tail -n 1 "$2")" >&2; exit 1; }
}

digest_of() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

upload() { # FILE: upload one blob
  : >"$work/empty"
  request POST "/v2/$repository/blobs/uploads/" application/octet-stream "$work/empty" >"$work/start"
  expect 202 "$work/start" "starting an upload"
  location=$(sed -n 's/^[Ll]ocation: //p' "$work/start" | sed -e 's#^https\{0,1\}://[^/]*##')
  case $location in *\?*) sep='&' ;; *) sep='?' ;; esac
  request PUT "$location${sep}digest=$(digest_of "$1")" application/octet-stream "$1" >"$work/put"
  expect 201 "$work/put" "uploading $1"
}

printf '{}' >"$work/config"
upload "$work/config"
upload "$file"
cat >"$work/manifest" <<MANIFEST
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$(digest_of "$work/config")","size":2},"layers":[{"mediaType":"text/plain","digest":"$(digest_of "$file")","size":$(wc -c <"$file")}]}
MANIFEST
printf '%s' "$(cat "$work/manifest")" >"$work/manifest.json"
request PUT "/v2/$repository/manifests/$tag" application/vnd.oci.image.manifest.v1+json \
  "$work/manifest.json" >"$work/done"
expect 201 "$work/done" "putting the manifest"
digest_of "$work/manifest.json"
