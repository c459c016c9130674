#!/usr/bin/env bash
# Regenerates the Go code of the control plane's protobuf (proto/ ->
# internal/rpc/rpcpb/). The plugins are the versions pinned by go.mod's
# tool directives; protoc is Debian's protobuf-compiler.
#
# Usage: scripts/gen-proto.sh [OUTDIR]
# With OUTDIR the code goes there instead (as OUTDIR/rpcpb/...): the test
# internal/rpc/rpcpb/uptodate_test.go uses it to check the committed code.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
if ! command -v protoc >/dev/null 2>&1; then
  echo "gen-proto: protoc not found: install protobuf-compiler (apt-get install -y protobuf-compiler)" >&2
  exit 1
fi
bin=$(mktemp -d)
gen=$(mktemp -d)
trap 'rm -rf "$bin" "$gen"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-connect-go" connectrpc.com/connect/cmd/protoc-gen-connect-go
# module= strips the Go import path, so files land under internal/rpc/rpcpb
# relative to the output directory.
PATH="$bin:$PATH" protoc -I proto \
  --go_out="$gen" --go_opt=module=github.com/strom-dev/strom/internal/rpc \
  --connect-go_out="$gen" --connect-go_opt=module=github.com/strom-dev/strom/internal/rpc \
  strom/rpc/v1/rpc.proto
out=${1:-$root/internal/rpc}
mkdir -p "$out/rpcpb"
# Replace only generated files: tests written by hand live beside them.
find "$out/rpcpb" \( -name '*.pb.go' -o -name '*.connect.go' \) -delete
cp -r "$gen/rpcpb/." "$out/rpcpb/"
