#!/usr/bin/env bash
# CI check: proto/ makes no breaking change (buf.yaml's breaking rules,
# WIRE_JSON: wire and JSON compatibility) against the protos main has
# shipped.
#
# Usage: scripts/check-breaking.sh [REV]
#
# With REV (or $BREAKING_AGAINST) the working tree is compared with that one
# commit. Without, the baselines depend on where HEAD is:
#   - on a branch: its merge-base with main (origin/main, else main), i.e. the
#     main it started from, so changes merged to main since do not read as
#     this branch undoing them;
#   - on main itself (or a commit main already contains): every distinct
#     proto/ tree in HEAD's first-parent history (the last 500 commits). A
#     breaking change can then not slip in behind a later commit, whether it
#     was pushed as a series, fast-forwarded or merged; there are few such
#     trees, since most commits do not touch proto/.
# A shallow clone is refused without REV: its history would hide the
# baselines.
# The checked side is the working tree, so uncommitted proto edits count.
#
# Each baseline's proto/ and buf.yaml are extracted with git archive into a
# temporary directory, and buf/validate/validate.proto is printed there as
# scripts/generate.sh prints it for the working tree (the BSR is not
# reachable; see buf.yaml).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

buf=node_modules/.bin/buf
if [[ ! -x "$buf" ]]; then
  npm ci --no-audit --no-fund
fi

revs=() # baselines, oldest last
base="${1:-${BREAKING_AGAINST:-}}"
if [[ -n "$base" ]]; then
  if ! rev="$(git rev-parse --verify --quiet "$base^{commit}")"; then
    echo "check-breaking: baseline $base is not a commit here (a shallow clone? git fetch --unshallow)" >&2
    exit 1
  fi
  revs=("$rev")
  what="$base"
else
  if [[ "$(git rev-parse --is-shallow-repository)" == true ]]; then
    echo "check-breaking: this is a shallow clone, whose history hides the baselines; run git fetch --unshallow, or pass a baseline: $0 REV" >&2
    exit 1
  fi
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
    # One commit per distinct proto/ tree, newest first, HEAD's own excluded
    # only if the working tree's protos are unchanged (git diff below).
    declare -A seen=()
    while read -r c; do
      tree="$(git rev-parse --verify --quiet "$c:proto" || true)"
      if [[ -n "$tree" && -z "${seen[$tree]:-}" ]]; then
        seen[$tree]=1
        revs+=("$c")
      fi
    done < <(git rev-list --first-parent --max-count=500 HEAD)
    what="every proto/ tree in the first-parent history of HEAD (on $main)"
  else
    revs=("$(git merge-base HEAD "$main")")
    what="the merge-base with $main"
  fi
fi

go run ./internal/cmd/printvalidate -out .buf/protovalidate
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "buf breaking against $what: ${#revs[@]} baseline(s)"
checked=0
for rev in "${revs[@]}"; do
  if ! git cat-file -e "$rev:proto" 2>/dev/null; then
    echo "  $(git rev-parse --short "$rev"): no proto/; skipped"
    continue
  fi
  against="$work/$rev"
  mkdir -p "$against"
  git archive "$rev" -- proto | tar -x -C "$against"
  if git cat-file -e "$rev:buf.yaml" 2>/dev/null; then
    git show "$rev:buf.yaml" >"$against/buf.yaml"
  else
    cp buf.yaml "$against/buf.yaml"
  fi
  go run ./internal/cmd/printvalidate -out "$against/.buf/protovalidate"
  echo "  against $(git log -1 --format='%h %s' "$rev" | cut -c1-72)"
  # --exclude-imports: see buf.yaml (the proto module's rules would otherwise
  # also apply to the imported validate.proto).
  "$buf" breaking --against "$against" --exclude-imports
  checked=$((checked + 1))
done
echo "check-breaking: ok ($checked baseline(s))"
