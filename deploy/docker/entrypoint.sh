#!/bin/sh
# Starts the image's service (PARLEY_SERVICE, set at build time). In a container the service must listen on all
# interfaces, so PARLEY_<SVC>_HOST defaults to 0.0.0.0 here (the settings' own default, 127.0.0.1, suits a laptop).
# `exec` makes the service PID 1, so it receives SIGTERM and drains in-flight messages before exiting.
set -eu
service="${PARLEY_SERVICE:?PARLEY_SERVICE is not set}"
host_var="PARLEY_$(echo "$service" | tr '[:lower:]' '[:upper:]')_HOST"
eval "export ${host_var}=\"\${${host_var}:-0.0.0.0}\""
exec "/opt/parley/bin/parley-${service}" "$@"
