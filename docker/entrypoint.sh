#!/bin/sh
# Validates the configuration first (every problem at once), then runs the collector as PID 1's child.
set -e
if [ "$1" = "run" ] && [ "$2" = "--config" ]; then
  logferry validate --config "$3" || exit 2
fi
exec logferry "$@"
