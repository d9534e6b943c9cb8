#!/usr/bin/env bash
# Installs code-server (VS Code for the browser) from the npm registry into a cache directory, once.
# Nothing else is downloaded: its ripgrep postinstall (which fetches from GitHub) is fed Debian's `rg` through
# the package's own download cache, and native modules build against the local Node headers (/usr/include/node).
# Needs: apt packages ripgrep, build-essential, python3, pkg-config, libkrb5-dev, libxkbfile-dev, libsecret-1-dev.
# Prints the code-server executable on success.
set -euo pipefail

VERSION="${CODE_SERVER_VERSION:-4.100.3}"   # the last release that runs on Node 20
DIR="${REDLINE_CI_CACHE:-$HOME/.cache/redline-ci}/code-server-$VERSION"
BIN="$DIR/node_modules/.bin/code-server"

if [ -x "$BIN" ] && [ -f "$DIR/.installed" ]; then
  echo "$BIN"
  exit 0
fi
command -v rg >/dev/null || { echo "ripgrep is missing: apt-get install -y ripgrep" >&2; exit 1; }

rgcache="$(node -p 'require("os").tmpdir()')/vscode-ripgrep-cache-1.15.11"
mkdir -p "$rgcache" "$DIR"
asset="$rgcache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz"
if [ ! -s "$asset" ]; then
  tmp="$(mktemp -d)"
  cp "$(command -v rg)" "$tmp/rg"
  tar -C "$tmp" -czf "$asset" rg
  rm -rf "$tmp"
fi

cd "$DIR"
[ -f package.json ] || echo '{"name": "redline-ci-code-server", "private": true}' > package.json
# code-server's postinstall refuses to run as root without unsafe-perm; node-pty runs `npx node-gyp` (yes:
# install it from the registry without asking); nodedir: build against local headers, download none
export npm_config_unsafe_perm=true npm_config_yes=true npm_config_nodedir="${npm_config_nodedir:-/usr}"
npm install --no-audit --no-fund --no-save "code-server@$VERSION" >&2
touch .installed
echo "$BIN"
