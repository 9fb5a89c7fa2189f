#!/usr/bin/env bash
# Installs everything the collector's demo and the test suite need on a fresh Debian machine (run as root).
# Idempotent: installs only what is missing.
set -euo pipefail

apt_packages=(redis-server rsyslog rsyslog-gnutls openssl)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian services are not wanted: tests start their own instances on free ports.
systemctl disable --now redis-server rsyslog >/dev/null 2>&1 || true

if [ "${1:-}" = "--demo-only" ]; then
  exit 0
fi

# Python peers used by the tests (moto's AWS server, Devo's reference sender, Alibaba SDKs as oracles; boto3 and
# botocore for the local CloudTrail LookupEvents server, which checks SigV4 with botocore's signer).
python_packages=('moto[server]' boto3 botocore devo-sdk cryptography)
python3 -m pip install -q --disable-pip-version-check "${python_packages[@]}" 2>&1 | grep -v "Running pip as the 'root' user" || true
