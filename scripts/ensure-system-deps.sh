#!/usr/bin/env bash
# Installs the real components the tests use (Debian packages), or says exactly what to
# install when it cannot. Tests that need a missing component are skipped with that reason,
# unless MLO_REQUIRE_REAL_COMPONENTS=1 (CI), which turns such a skip into a failure.
set -u
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
