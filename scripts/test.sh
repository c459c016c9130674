#!/usr/bin/env bash
# The whole test suite: vet, then every package's tests under the race
# detector. This is the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
gofmt_out=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$gofmt_out" ]; then
  echo "gofmt would change:"; echo "$gofmt_out"; exit 1
fi
go vet ./...
go test -race -timeout 20m -count=1 ./...
