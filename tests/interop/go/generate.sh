#!/usr/bin/env bash
# Generates Go code from rpcboot's emitted IDL with the stock tools, into a GOPATH tree that
# Debian's Go libraries complete: thrift --gen go under src/tg/<namespace>, protoc-gen-go and
# protoc-gen-go-grpc under src/pb/<package path>. A one-word package has no go_package
# (protoc-gen-go refuses an import path without '/' or '.'): such a file gets one with an M
# option, as --go-package-prefix would give it. What thrift-compiler printed is left in
# GOPATH/thrift.out (its warnings go to standard output).
#   generate.sh IDL_DIR GOPATH THRIFT PROTOC
set -euo pipefail
idl_dir=$1 gopath=$2 thrift=$3 protoc=$4
fail() { echo "FAIL: $*"; exit 1; }
command -v go >/dev/null || fail "go missing: run ./scripts/setup.sh (apt-get install golang-go)"
for tool in protoc-gen-go protoc-gen-go-grpc; do
  command -v $tool >/dev/null || fail "$tool missing: run ./scripts/setup.sh (apt-get install $tool)"
done
gocode=/usr/share/gocode/src
[ -d $gocode/google.golang.org/grpc ] && [ -d $gocode/github.com/apache/thrift/lib/go/thrift ] ||
  fail "Go libraries missing: run ./scripts/setup.sh (apt-get install golang-google-grpc-dev golang-thrift-dev golang-github-golang-protobuf-1-5-dev)"
mkdir -p "$gopath/src/tg"
: > "$gopath/thrift.out"
for f in "$idl_dir"/*.thrift; do
  "$thrift" --gen go:package_prefix=tg/ -out "$gopath/src/tg" "$f" >>"$gopath/thrift.out" 2>&1 ||
    { cat "$gopath/thrift.out"; fail "thrift-compiler rejects $f for Go"; }
done
options=()
for f in "$idl_dir"/*.proto; do
  grep -q '^option go_package' "$f" && continue
  pkg=$(sed -n 's/^package \([A-Za-z0-9_.]*\);/\1/p' "$f")
  options+=("--go_opt=M$(basename "$f")=pb/${pkg//.//}" "--go-grpc_opt=M$(basename "$f")=pb/${pkg//.//}")
done
"$protoc" -I"$idl_dir" --go_out="$gopath/src" --go-grpc_out="$gopath/src" "${options[@]}" \
  "$idl_dir"/*.proto || fail "protoc-gen-go rejects the .proto files in $idl_dir"
