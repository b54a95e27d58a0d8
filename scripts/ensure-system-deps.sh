#!/usr/bin/env bash
# Installs the real components the tests use (Debian packages), or says exactly what to
# install when it cannot. Tests that need a missing component are skipped with that reason,
# unless MLO_REQUIRE_REAL_COMPONENTS=1 (CI), which turns such a skip into a failure.
set -u

# PostgreSQL (Debian package 'postgresql'): tests/pgserver.py runs its own throwaway server
# from initdb and pg_ctl, which Debian keeps under /usr/lib/postgresql/<version>/bin (off
# PATH). The package's own cluster and service are not used, so they are stopped.
have_postgres() { ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; }
if ! have_postgres; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian package 'postgresql' (for: initdb, pg_ctl)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    if command -v systemctl >/dev/null 2>&1; then systemctl stop postgresql 2>/dev/null || true; fi
    if command -v pg_ctlcluster >/dev/null 2>&1; then
      for cluster in /etc/postgresql/*/*; do
        [ -d "$cluster" ] && pg_ctlcluster "$(basename "$(dirname "$cluster")")" "$(basename "$cluster")" stop 2>/dev/null
      done
    fi
  fi
  have_postgres || echo "missing PostgreSQL server binaries: install with" \
    "'sudo apt-get install -y postgresql'; tests that need a real PostgreSQL will be skipped" >&2
fi

missing=()
for binary in prometheus promtool; do
  command -v "$binary" >/dev/null 2>&1 || missing+=("$binary")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian package 'prometheus' (for: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq prometheus >/dev/null
  # The package enables a service; the tests start their own servers on 127.0.0.1.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus 2>/dev/null || true; fi
  command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && exit 0
  echo "apt-get could not install prometheus" >&2
fi
echo "missing ${missing[*]}: install with 'sudo apt-get install -y prometheus';" \
     "tests that need a real Prometheus will be skipped" >&2
exit 0
