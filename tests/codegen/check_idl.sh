#!/usr/bin/env bash
# Compiles emitted IDL with the stock compilers for every language the issue names, then compiles
# what they generated: thrift (cpp, java, py, go) and protoc (cpp, java, python, go with gRPC);
# the C++ with g++ -fsyntax-only, the Java with javac, the Python by importing every module, the
# Go with go build (Debian's Go libraries). Then the Thrift schema rpcboot-codegen writes
# beside the IDL (<stem>.thrift.json) is compared with thrift-compiler's JSON reading of it.
#   check_idl.sh IDL_DIR[:IDL_DIR...] WORK_DIR THRIFT PROTOC
set -euo pipefail
idl_dir=$1 work=$2 thrift=$3 protoc=$4
python=/usr/bin/python3
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$python" ] || fail "/usr/bin/python3 missing: apt-get install python3"
command -v javac >/dev/null || fail "javac missing: apt-get install default-jdk-headless"
jars=/usr/share/java
for jar in thrift slf4j-api protobuf; do
  [ -f "$jars/$jar.jar" ] || fail "$jars/$jar.jar missing: apt-get install libthrift-java libslf4j-java libprotobuf-java"
done
rm -rf "$work" && mkdir -p "$work/thrift" "$work/proto" "$work/classes/thrift" "$work/classes/proto"
# DIR:DIR...: interfaces generated apart whose files include and import each other, checked
# together as a peer compiles them (every file on one include path).
if [[ "$idl_dir" == *:* ]]; then
  IFS=: read -ra dirs <<<"$idl_dir"
  mkdir -p "$work/idl"
  for d in "${dirs[@]}"; do cp "$d"/*.thrift "$d"/*.proto "$d"/*.thrift.json "$work/idl/"; done
  idl_dir=$work/idl
fi
shopt -s nullglob
thrift_files=("$idl_dir"/*.thrift)
proto_files=("$idl_dir"/*.proto)
[ ${#thrift_files[@]} -gt 0 ] || fail "no .thrift files in $idl_dir"
[ ${#proto_files[@]} -gt 0 ] || fail "no .proto files in $idl_dir"

# thrift-compiler warns about nothing in rpcboot's output (it prints warnings on standard output):
# any warning fails the check, but its advice to use "binary" for a list<i8>, which is what a
# std::vector<int8_t> of numbers is (std::vector<uint8_t> is binary).
thrift_warnings() {
  grep -i warning "$work/thrift.err" | grep -v 'instead of "list<byte>"' || true
}
for f in "${thrift_files[@]}"; do
  "$thrift" --gen cpp --gen java --gen py -out "$work/thrift" "$f" >"$work/thrift.err" 2>&1 ||
    { cat "$work/thrift.err"; fail "thrift-compiler rejects $f"; }
  [ -z "$(thrift_warnings)" ] || { thrift_warnings; fail "thrift-compiler warns on $f"; }
done
"$protoc" -I"$idl_dir" --cpp_out="$work/proto" --java_out="$work/proto" --python_out="$work/proto" \
  "${proto_files[@]}" || fail "protoc rejects the .proto files in $idl_dir"

# C++: every generated source must compile.
for f in "$work"/thrift/*.cpp "$work"/proto/*.pb.cc; do
  case "$f" in *skeleton*) continue ;; esac
  g++ -std=c++17 -fsyntax-only -I"$work/thrift" -I"$work/proto" "$f" 2>"$work/cxx.err" ||
    { head -20 "$work/cxx.err"; fail "generated C++ $f does not compile"; }
done

# Java: thrift's and protoc's classes compiled separately (they share class names).
mapfile -t thrift_java < <(find "$work/thrift" -name '*.java')
mapfile -t proto_java < <(find "$work/proto" -name '*.java')
javac -nowarn -d "$work/classes/thrift" -cp "$jars/thrift.jar:$jars/slf4j-api.jar" "${thrift_java[@]}" \
  2>"$work/javac.err" || { head -20 "$work/javac.err"; fail "thrift's Java output does not compile"; }
javac -nowarn -d "$work/classes/proto" -cp "$jars/protobuf.jar" "${proto_java[@]}" \
  2>"$work/javac.err" || { head -20 "$work/javac.err"; fail "protoc's Java output does not compile"; }

# Go: thrift's and protoc's (protoc-gen-go, protoc-gen-go-grpc) output built against Debian's Go
# libraries in GOPATH mode (tests/interop/go/generate.sh).
gopath=$work/gopath
# go keeps its build cache under $HOME; without one, in the work directory.
[ -n "${HOME:-}" ] || [ -n "${GOCACHE:-}" ] || export GOCACHE="$work/gocache"
"$(dirname "$0")/../interop/go/generate.sh" "$idl_dir" "$gopath" "$thrift" "$protoc"
cp "$gopath/thrift.out" "$work/thrift.err"
[ -z "$(thrift_warnings)" ] || { thrift_warnings; fail "thrift-compiler warns on the files in $idl_dir (Go)"; }
[ -n "$(find "$gopath/src" -name '*.go' | head -1)" ] || fail "no Go files generated"
(cd "$gopath/src" && GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOFLAGS= go build ./... ) \
  2>"$work/go.err" || { head -20 "$work/go.err"; fail "generated Go code does not build"; }

# Python: import every generated module (needs python3-thrift and python3-protobuf).
modules=()
for f in "${thrift_files[@]}"; do
  stem=$(basename "$f" .thrift)
  modules+=("$stem.ttypes")
  for s in $(grep -o '^service [A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do modules+=("$stem.$s"); done
done
for f in "${proto_files[@]}"; do modules+=("$(basename "$f" .proto)_pb2"); done
PYTHONPATH="$work/thrift:$work/proto" "$python" - "${modules[@]}" <<'PY'
import importlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError as e:
        sys.exit(f"FAIL: cannot import {name}: {e} (install python3-thrift and python3-protobuf)")
    except SyntaxError as e:
        sys.exit(f"FAIL: generated Python module {name} does not parse: {e}")
print(f"imported {len(sys.argv) - 1} generated Python modules")
PY
# The Thrift schema rpcboot serves to tools (<stem>.thrift.json, rpcboot.ThriftReflection) says
# exactly what thrift-compiler reads in the .thrift: ids, names, wire types, enum values.
mkdir -p "$work/thrift_json"
for f in "${thrift_files[@]}"; do
  "$thrift" --gen json -out "$work/thrift_json" "$f" >/dev/null 2>&1 || fail "thrift --gen json rejects $f"
done
"$python" "$(dirname "$0")/check_thrift_schema.py" "$idl_dir" "$work/thrift_json"

echo "OK: ${#thrift_files[@]} .thrift and ${#proto_files[@]} .proto files: generated code compiles" \
  "(C++ ${#thrift_java[@]}+${#proto_java[@]} Java files, Python imported, Go generated)"
