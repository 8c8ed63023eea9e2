#!/usr/bin/env bash
# The one test command (README, CI): installs test tools, then runs every test:
# unit, end-to-end (SQLite and PostgreSQL), interop with certbot and lego,
# and pkilint over certificates, CRLs and OCSP responses the server produced.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export PATH="$PWD/.venv-test/bin:$PATH"
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
for s in scripts/interop-*.sh; do
  [ -e "$s" ] || continue
  echo "== $s"
  bash "$s"
done
