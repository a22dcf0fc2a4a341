#!/usr/bin/env bash
# Compiles emitted IDL with the stock compilers and imports the Python output.
#   check_idl.sh IDL_DIR WORK_DIR THRIFT PROTOC
set -euo pipefail
idl_dir=$1 work=$2 thrift=$3 protoc=$4
python=/usr/bin/python3
[ -x "$python" ] || { echo "FAIL: /usr/bin/python3 missing: apt-get install python3"; exit 1; }
rm -rf "$work" && mkdir -p "$work/thrift" "$work/proto"
shopt -s nullglob
thrift_files=("$idl_dir"/*.thrift)
proto_files=("$idl_dir"/*.proto)
[ ${#thrift_files[@]} -gt 0 ] || { echo "FAIL: no .thrift files in $idl_dir"; exit 1; }
[ ${#proto_files[@]} -gt 0 ] || { echo "FAIL: no .proto files in $idl_dir"; exit 1; }
for f in "${thrift_files[@]}"; do
  "$thrift" --gen cpp --gen py -out "$work/thrift" "$f" 2> >(grep -v -e '^$' -e 'compatibility alias' -e 'more efficient "binary"' >&2)
done
"$protoc" -I"$idl_dir" --cpp_out="$work/proto" --python_out="$work/proto" "${proto_files[@]}"
# Import every generated Python module (needs python3-thrift and python3-protobuf).
modules=()
for f in "${thrift_files[@]}"; do modules+=("$(basename "$f" .thrift).ttypes"); done
for f in "${proto_files[@]}"; do modules+=("$(basename "$f" .proto)_pb2"); done
PYTHONPATH="$work/thrift:$work/proto" "$python" - "${modules[@]}" <<'PY'
import importlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError as e:
        sys.exit(f"FAIL: cannot import {name}: {e} (install python3-thrift and python3-protobuf)")
print(f"imported {len(sys.argv) - 1} generated Python modules")
PY
echo "OK: ${#thrift_files[@]} .thrift and ${#proto_files[@]} .proto files compile (cpp, py)"
