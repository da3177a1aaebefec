#!/usr/bin/env bash
# Quickstart: builds Portcullis and runs it on http://127.0.0.1:8080 in front of the demo SPA
# and API. Ctrl-C stops everything. Needs cargo; installs cmake, pkg-config, libssl-dev and node
# from apt when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

.ci/install-deps demo
cargo build --release --locked --bin portcullis
node docker/demo/apps.mjs &
apps=$!
trap 'kill "$apps" 2>/dev/null || true' EXIT

echo
echo "  Portcullis:  http://127.0.0.1:8080        (demo SPA; its button calls the API)"
echo "  Admin:       http://127.0.0.1:9090/metrics /readyz /healthz"
echo
target/release/portcullis run --config conf/portcullis.toml
