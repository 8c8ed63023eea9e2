#!/usr/bin/env bash
# Installs what the tests need, idempotently: the openssl CLI, Debian's
# certbot and lego (real ACME clients for the interop tests) and pkilint
# (CA/Browser Forum lints, from PyPI, into a private virtualenv).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v certbot >/dev/null || need_apt+=(certbot)
command -v lego >/dev/null || need_apt+=(lego)
command -v curl >/dev/null || need_apt+=(curl)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv-test/bin/lint_cabf_serverauth_cert ]; then
  python3 -m venv .venv-test
  .venv-test/bin/pip install -q pkilint
fi
echo "test dependencies ready: $(openssl version | cut -d' ' -f1-2), certbot $(certbot --version 2>&1 | awk '{print $2}'), lego $(lego --version 2>&1 | awk '{print $3}'), pkilint $(.venv-test/bin/pip show pkilint 2>/dev/null | awk '/^Version/{print $2}')"
