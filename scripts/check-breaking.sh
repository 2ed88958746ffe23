#!/usr/bin/env bash
# CI check: proto/ makes no breaking change (buf.yaml's breaking rules,
# WIRE_JSON: wire and JSON compatibility) against a baseline commit.
#
# Usage: scripts/check-breaking.sh [REV]
#
# Without REV (or $BREAKING_AGAINST) the baseline is the main branch
# (origin/main, else main):
#   - on a branch: its merge-base with main, i.e. the main it started from,
#     so changes merged to main since do not read as this branch undoing them;
#   - on main itself (or a commit main already contains): HEAD~1, the commit
#     before, which also works in a fresh clone where only main exists.
# The checked side is the working tree, so uncommitted proto edits count.
#
# The baseline's proto/ and buf.yaml are extracted with git archive into a
# temporary directory, and buf/validate/validate.proto is printed there as
# scripts/generate.sh prints it for the working tree (the BSR is not
# reachable; see buf.yaml).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

buf=node_modules/.bin/buf
if [[ ! -x "$buf" ]]; then
  npm ci --no-audit --no-fund
fi

base="${1:-${BREAKING_AGAINST:-}}"
what="$base"
if [[ -z "$base" ]]; then
  main=""
  for ref in origin/main main; do
    if git rev-parse --verify --quiet "$ref^{commit}" >/dev/null; then
      main="$ref"
      break
    fi
  done
  if [[ -z "$main" ]]; then
    echo "check-breaking: neither origin/main nor main exists; pass a baseline: $0 REV" >&2
    exit 1
  fi
  if git merge-base --is-ancestor HEAD "$main"; then
    if ! git rev-parse --verify --quiet 'HEAD~1^{commit}' >/dev/null; then
      echo "check-breaking: HEAD is the first commit; nothing to compare against"
      exit 0
    fi
    base="HEAD~1"
    what="HEAD~1 (on $main)"
  else
    base="$(git merge-base HEAD "$main")"
    what="the merge-base with $main"
  fi
fi
if ! rev="$(git rev-parse --verify --quiet "$base^{commit}")"; then
  echo "check-breaking: baseline $base is not a commit here (a shallow clone? git fetch --unshallow)" >&2
  exit 1
fi
if ! git cat-file -e "$rev:proto" 2>/dev/null; then
  echo "check-breaking: baseline $base ($rev) has no proto/; nothing to compare against"
  exit 0
fi

against="$(mktemp -d)"
trap 'rm -rf "$against"' EXIT
git archive "$rev" -- proto | tar -x -C "$against"
if git cat-file -e "$rev:buf.yaml" 2>/dev/null; then
  git show "$rev:buf.yaml" >"$against/buf.yaml"
else
  cp buf.yaml "$against/buf.yaml"
fi
go run ./internal/cmd/printvalidate -out .buf/protovalidate
go run ./internal/cmd/printvalidate -out "$against/.buf/protovalidate"

echo "buf breaking against $what ($(git rev-parse --short "$rev"))"
# --exclude-imports: see buf.yaml (the proto module's rules would otherwise
# also apply to the imported validate.proto).
"$buf" breaking --against "$against" --exclude-imports
