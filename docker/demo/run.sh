#!/usr/bin/env bash
# Quickstart: builds Portcullis and runs it on http://127.0.0.1:8080 in front of the demo SPA
# and API, with a local OpenID Provider (npm oidc-provider) on 127.0.0.1:3002 to log in at.
# Ctrl-C stops everything. Needs cargo; installs cmake, pkg-config, libssl-dev, node and npm
# from apt and the OP from npm when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

.ci/install-deps demo
cargo build --release --locked --bin portcullis
node docker/demo/apps.mjs &
apps=$!
# The demo OP: the same pinned oidc-provider the tests use, with Portcullis registered as its
# client (docker/demo/op.env, shared with compose.yaml and tests/it/demo.rs).
set -a
# shellcheck source=docker/demo/op.env
. docker/demo/op.env
set +a
node tests/idp/op.mjs &
op=$!
trap 'kill "$apps" "$op" 2>/dev/null || true' EXIT

echo
echo "  Portcullis:  http://127.0.0.1:8080        (demo SPA: log in, call the API, log out)"
echo "  Demo OP:     http://127.0.0.1:3002        (any user name and password sign in)"
echo "  Admin:       http://127.0.0.1:9090/metrics /readyz /healthz"
echo
target/release/portcullis run --config conf/portcullis.toml
