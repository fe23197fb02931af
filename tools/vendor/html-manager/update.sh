#!/usr/bin/env bash
# Refresh this folder from the npm package @jupyter-widgets/html-manager (needs npm; the docs build itself does not):
#   bash tools/vendor/html-manager/update.sh [VERSION]   then rebuild the docs and update README.md's version and hashes.
set -euo pipefail
cd "$(dirname "$0")"
v=${1:-1.0.15}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@jupyter-widgets/html-manager@$v" >/dev/null && tar xzf ./*.tgz)
grep -q '"license": "BSD-3-Clause"' "$tmp/package/package.json"
rm -f embed.js embed.js.LICENSE.txt ./*.woff2
cp "$tmp/package/dist/embed.js" "$tmp/package/dist/embed.js.LICENSE.txt" "$tmp/package/dist/"*.woff2 .
sha256sum embed.js ./*.woff2
