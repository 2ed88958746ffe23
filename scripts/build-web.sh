#!/usr/bin/env bash
# Builds the browser wallet: web/src (TypeScript, with the code that
# scripts/generate.sh puts in web/src/gen) and web/static into web/dist,
# which is committed and embedded in the gateway (web/embed.go), so that
# `go run ./cmd/remit up` needs no npm. CI rebuilds it and fails on a diff
# (scripts/check-web.sh). esbuild strips the types; tsc checks them first.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -x node_modules/.bin/esbuild ]]; then
  npm ci --no-audit --no-fund
fi

node_modules/.bin/tsc -p web/tsconfig.json
rm -rf web/dist
mkdir -p web/dist
cp web/static/index.html web/static/app.css web/dist/
# One file, no source map, no inline script: the page's CSP allows only
# 'self' scripts. --charset=utf8 keeps the bytes stable across machines.
node_modules/.bin/esbuild web/src/app.ts --bundle --minify --format=iife \
  --target=es2022 --charset=utf8 --legal-comments=none --log-level=warning \
  --outfile=web/dist/app.js
