#!/usr/bin/env bash
# Installs what is missing for `make run` / `make test`: a Python virtualenv with every package
# (pinned by constraints.txt), Debian's redis-server, the console's web app (npm ci + npm run build from its
# lockfile, again whenever its sources change) and Debian's chromium for the browser tests. Safe to run
# again: it only does missing work.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.venv
STAMP=$VENV/.parley-installed

pick_python() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  echo "bootstrap: Python 3.11+ is required and was not found" >&2; exit 1
}

inputs_hash() {
  cat deploy/local/bootstrap.sh constraints.txt requirements-dev.txt deploy/requirements.txt libs/common/pyproject.toml services/*/pyproject.toml | sha256sum | cut -d' ' -f1
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$(pick_python)" -m venv "$VENV"
fi

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$(inputs_hash)" ]; then
  echo "bootstrap: installing Python packages (pinned by constraints.txt)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt \
    -r requirements-dev.txt -e libs/common \
    -e services/ingest -e services/contacts -e services/router -e "services/outbound[test]" -e "services/media[test]" \
    -e services/console -e services/hooks
  inputs_hash > "$STAMP"
fi

apt_install() {
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "bootstrap: installing Debian's redis-server"
  apt_install redis-server
  # Debian starts a system-wide redis on 6379 after install; Parley starts its own on its own ports.
  ($SUDO systemctl disable --now redis-server >/dev/null 2>&1 || $SUDO service redis-server stop >/dev/null 2>&1 || true)
fi

# The browser the console's tests drive (Playwright is pointed at this binary: browser downloads fail here).
if ! command -v chromium >/dev/null 2>&1; then
  echo "bootstrap: installing Debian's chromium"
  apt_install chromium
fi

# The console's web app: installed from its lockfile, built into the console's package (never committed).
WEB=services/console/web
BUILT=services/console/parley_console/web_dist/index.html
if ! command -v npm >/dev/null 2>&1; then
  echo "bootstrap: installing Debian's nodejs and npm"
  apt_install nodejs npm
fi
if [ ! -d "$WEB/node_modules" ] || [ "$WEB/package-lock.json" -nt "$WEB/node_modules/.package-lock.json" ]; then
  echo "bootstrap: installing the console's npm packages (npm ci)"
  (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -f "$BUILT" ] || [ -n "$(find "$WEB/src" "$WEB/index.html" "$WEB/vite.config.ts" "$WEB/package-lock.json" -newer "$BUILT" -print -quit)" ]; then
  echo "bootstrap: building the console's web app (npm run build)"
  (cd "$WEB" && npm run build --silent >/dev/null)
fi
