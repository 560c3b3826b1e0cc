#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 and lets the
# `postgres` user in without a password (trust), as the store tests expect.
set -euo pipefail

ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

if ready; then
  echo "PostgreSQL is up"
  exit 0
fi

if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "installing PostgreSQL (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  # A fresh Debian cluster asks for passwords on TCP; the tests run as the
  # local superuser on loopback only, so trust loopback.
  hba=/etc/postgresql/$version/main/pg_hba.conf
  sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(host\s+all\s+all\s+::1\/128\s+)\S+/\1trust/' "$hba"
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 60); do
  if ready; then
    echo "PostgreSQL $version is up"
    exit 0
  fi
  sleep 0.5
done
echo "PostgreSQL did not come up on 127.0.0.1:5432; see /var/log/postgresql/" >&2
exit 1
