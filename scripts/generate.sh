#!/usr/bin/env bash
# Regenerates gen/ from proto/: lints the protos, then runs buf generate.
#
# Tool versions are pinned in the repo: buf by package.json/package-lock.json,
# protoc-gen-go and protoc-gen-connect-go by the `tool` directives in go.mod,
# and buf/validate/validate.proto by the protovalidate Go module in go.mod.
# Formatting is checked (scripts/check-generated.sh), never applied here; to
# fix it, run: node_modules/.bin/buf format -w proto
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

buf=node_modules/.bin/buf
if [[ ! -x "$buf" ]]; then
  npm ci --no-audit --no-fund
fi

# buf.build/bufbuild/protovalidate cannot be fetched from the BSR, so print
# validate.proto from the Go module into the workspace module in buf.yaml.
go run ./internal/cmd/printvalidate -out .buf/protovalidate

"$buf" lint
# buf.gen.yaml has `clean: true`: gen/ is emptied first, so Go files of
# deleted protos vanish.
"$buf" generate
