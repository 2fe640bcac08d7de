#!/bin/sh
set -u
mkdir -p /tmp/www && cp -R /app/www/. /tmp/www/
echo ok >/tmp/www/healthz
echo "tracker: reading artifacts from $PALLET_REGISTRY"
exec httpd -f -p "${PORT:-8080}" -h /tmp/www
