#!/usr/bin/env bash
# `make test`: lint and types, then the whole pytest suite against real local servers started on the test
# profile's ports (never the ones `make run` uses), stopped again afterwards whatever happens — or, with
# PARLEY_TEST_INFRA=containers|auto and a Docker engine, against containers the fixtures start (README).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
started=$(date +%s)

echo "== lint (ruff) and types (mypy)"
.venv/bin/ruff check . || exit 1
SERVICES="ingest contacts router outbound media hooks"
.venv/bin/mypy --strict -p parley_common $(for s in $SERVICES; do echo "-p parley_$s.domain"; done) -p faq_bot || exit 1
.venv/bin/mypy $(for s in $SERVICES console; do echo "-p parley_$s"; done) || exit 1

# PARLEY_TEST_INFRA (tests/infra_choice.py): local (default), containers, or auto (containers when Docker answers).
infra=$($PY tests/infra_choice.py) || exit 1
if [ "$infra" = containers ]; then
  echo "== infrastructure: Apache Kafka, MongoDB and Redis containers (testcontainers, started by the fixtures)"
  unset PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI PARLEY_REDIS_URL
else
  echo "== infrastructure (test profile, fresh data)"
  $PY deploy/local/infra.py stop --profile test >/dev/null 2>&1
  $PY deploy/local/infra.py start --profile test --fresh || exit 1
  trap '$PY deploy/local/infra.py stop --profile test' EXIT
  eval "$($PY deploy/local/infra.py env --profile test)"
  export PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI PARLEY_REDIS_URL
fi

echo "== tests"
.venv/bin/pytest "$@"
code=$?
if [ $code -eq 5 ]; then echo "pytest collected no tests"; code=1; fi
echo "make test took $(( $(date +%s) - started ))s"
exit $code
