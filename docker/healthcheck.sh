#!/bin/bash
# HEALTHCHECK of the image: GET /health of globals.metrics on 127.0.0.1:$LOGFERRY_METRICS_PORT (default 9464), with
# bash's /dev/tcp so the image needs no HTTP client. Exit 0 when the answer is 200, 1 otherwise (its body says why).
set -u
port="${LOGFERRY_METRICS_PORT:-9464}"
if ! { exec 3<>"/dev/tcp/127.0.0.1/${port}"; } 2>/dev/null; then
  echo "nothing listens on 127.0.0.1:${port}: set globals.metrics.listen: \"0.0.0.0:${port}\" in the config"
  exit 1
fi
printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
answer="$(timeout 4 cat <&3)"
exec 3<&-
echo "${answer}" | tail -n +2 | sed -n '/^\r\?$/,$p' | tail -n +2
case "$(echo "${answer}" | head -n 1)" in
  *" 200 "*) exit 0 ;;
  *) exit 1 ;;
esac
