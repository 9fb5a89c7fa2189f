#!/usr/bin/env bash
# Installs everything the collector's demo and the test suite need on a fresh Debian machine (run as root).
# Idempotent: installs only what is missing.
set -euo pipefail

# Installs the Debian packages given that are not installed yet.
install_missing_debian_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

install_missing_debian_packages redis-server rsyslog rsyslog-gnutls openssl
# The Debian services are not wanted: tests start their own instances on free ports.
systemctl disable --now redis-server rsyslog >/dev/null 2>&1 || true

if [ "${1:-}" = "--demo-only" ]; then
  exit 0
fi

# A real Prometheus server (and promtool) for the metrics tests (tests/status.rs); podman, buildah, runc,
# debootstrap (its base image) and strip (binutils) for the container test (tests/container.rs); python3-venv for
# the Kubernetes manifest tools below.
install_missing_debian_packages prometheus podman buildah runc debootstrap binutils python3-venv
# xz unpacks Vector 0.58 (shared/tools/vector-0.58.xz beside the checkout) for the Splunk HEC tests with indexer
# acknowledgements (output/tests/hec_vector.rs, testkit/src/vector.rs) and bench/hec.
install_missing_debian_packages xz-utils
systemctl disable --now prometheus >/dev/null 2>&1 || true

# Python peers used by the tests (moto's AWS server, Devo's reference sender, Alibaba SDKs as oracles; boto3 and
# botocore for the local CloudTrail and GuardDuty servers, which check SigV4 with botocore's signer).
python_packages=('moto[server]' boto3 botocore devo-sdk cryptography)
python3 -m pip install -q --disable-pip-version-check "${python_packages[@]}" 2>&1 | grep -v "Running pip as the 'root' user" || true

# Kubernetes manifest checks (tests/kubernetes.rs), in a virtual environment of their own: checkov pins boto3 and
# botocore versions older than the AWS test peers need.
k8s_tools=/opt/logferry-k8s-tools
if [ ! -x "$k8s_tools/bin/checkov" ] || [ ! -x "$k8s_tools/bin/kubernetes-validate" ]; then
  echo "installing checkov and kubernetes-validate in $k8s_tools"
  python3 -m venv "$k8s_tools"
  "$k8s_tools/bin/pip" install -q --disable-pip-version-check checkov kubernetes-validate
fi
