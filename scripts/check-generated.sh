#!/usr/bin/env bash
# CI check: protos are buf-formatted and gen/ and web/src/gen match what
# they generate.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/generate.sh

# Scoped to proto/: the printed .buf/protovalidate module is not ours and is
# not in buf format style.
if ! node_modules/.bin/buf format proto --diff --exit-code; then
  echo "protos are not formatted: run node_modules/.bin/buf format -w proto" >&2
  exit 1
fi

if [[ -n "$(git status --porcelain -- gen/ web/src/gen/)" ]]; then
  git status --porcelain -- gen/ web/src/gen/ >&2
  echo "gen/ or web/src/gen/ is stale: run task generate and commit" >&2
  exit 1
fi
