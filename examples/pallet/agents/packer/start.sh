#!/bin/sh
set -u
mkdir -p /tmp/www && cp -R /app/www/. /tmp/www/
echo ok >/tmp/www/healthz
echo "packer: serving on ${PORT:-8080}"
exec httpd -f -p "${PORT:-8080}" -h /tmp/www
