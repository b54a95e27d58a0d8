#!/usr/bin/env bash
# Installs the real components the tests use (Debian packages), or says exactly what to install
# when it cannot (not root, no apt-get). Tests that need a missing component are skipped with
# that reason, unless MLO_REQUIRE_REAL_COMPONENTS=1 (CI): then this script fails instead.
#
#   prometheus, promtool   package prometheus   (tests backfill and query a real Prometheus)
#   initdb, pg_ctl         package postgresql   (tests run a throwaway PostgreSQL server;
#                                                Debian keeps them in /usr/lib/postgresql/*/bin)
#   python3 -m venv        package python3-venv (make creates .venv)
#   chromium               package chromium     (the web UI tests drive it with Playwright)
#   gcc, Python.h          packages gcc, libc6-dev (and python3-dev for Debian's python3):
#                          the engine's compiled point passes are built at install
set -u

have_prometheus() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }
have_postgres() { ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; }
have_venv() { python3 -c 'import ensurepip, venv' >/dev/null 2>&1; }
have_chromium() { command -v chromium >/dev/null 2>&1; }
have_cc() { command -v gcc >/dev/null 2>&1 && [ -e /usr/include/stdio.h ]; }
have_python_headers() {
  python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' >/dev/null 2>&1
}

packages=()
have_prometheus || packages+=(prometheus)
have_postgres || packages+=(postgresql)
have_venv || packages+=(python3-venv)
have_chromium || packages+=(chromium)
have_cc || packages+=(gcc libc6-dev)
have_python_headers || packages+=(python3-dev)
[ ${#packages[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # The packages start their own services; the tests start private servers on 127.0.0.1.
  if command -v systemctl >/dev/null 2>&1; then
    systemctl stop prometheus postgresql 2>/dev/null || true
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for cluster in /etc/postgresql/*/*; do
      [ -d "$cluster" ] && pg_ctlcluster "$(basename "$(dirname "$cluster")")" "$(basename "$cluster")" stop 2>/dev/null
    done
  fi
  pkill -x prometheus 2>/dev/null || true  # started by an init script without systemd
fi

still=()
have_prometheus || still+=(prometheus)
have_postgres || still+=(postgresql)
have_venv || still+=(python3-venv)
have_chromium || still+=(chromium)
have_cc || still+=(gcc libc6-dev)
have_python_headers || still+=(python3-dev)
[ ${#still[@]} -eq 0 ] && exit 0
echo "missing Debian packages: ${still[*]}; install with: sudo apt-get install -y ${still[*]}" >&2
if [ "${MLO_REQUIRE_REAL_COMPONENTS:-0}" = "1" ]; then
  echo "MLO_REQUIRE_REAL_COMPONENTS=1: refusing to run the tests without them" >&2
  exit 1
fi
echo "tests that need them will be skipped" >&2
exit 0
