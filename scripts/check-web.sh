#!/usr/bin/env bash
# CI check: the committed wallet bundle (web/dist) is what web/src and
# web/static build to. Run after scripts/check-generated.sh, which checks
# web/src/gen against the protos.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/build-web.sh
if [[ -n "$(git status --porcelain -- web/)" ]]; then
  git status --porcelain -- web/ >&2
  echo "web/ is stale: run npm run build:web (scripts/build-web.sh) and commit web/dist" >&2
  exit 1
fi
