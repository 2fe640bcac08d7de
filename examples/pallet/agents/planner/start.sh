#!/bin/sh
# Publish the plan (retrying until the registry takes it), then serve.
set -u
mkdir -p /tmp/www && cp -R /app/www/. /tmp/www/
plan=/tmp/plan.txt
printf 'plan from %s (%s) at %s\n' "$PALLET_AGENT" "$(cat /app/VERSION)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$plan"
attempt=0
until sh /app/publish.sh "$PALLET_ENVIRONMENT/artifacts" plan "$plan" >/tmp/published 2>/tmp/publish.err; do
  attempt=$((attempt + 1))
  echo "planner: publishing to $PALLET_REGISTRY failed (attempt $attempt): $(cat /tmp/publish.err)" >&2
  sleep 1
done
echo "planner: published $(cat /tmp/published) to $PALLET_REGISTRY/$PALLET_ENVIRONMENT/artifacts:plan"
echo ok >/tmp/www/healthz
exec httpd -f -p "${PORT:-8080}" -h /tmp/www
