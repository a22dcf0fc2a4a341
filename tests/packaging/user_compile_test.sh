#!/usr/bin/env bash
# A user's translation unit that includes a generated <stem>.rpcboot.h and calls one proxy
# method must stay cheap to compile: the heavy parts (Thrift, gRPC, protobuf, Boost.PFR and the
# codec templates) belong in the generated .rpcboot.cc, compiled once. Fails when the user file
# reaches any of them; prints the compile time (for the record: timing is not asserted, the
# machine is shared).
#   user_compile_test.sh CXX SOURCE -I... [other flags]
set -u
cxx=$1 source=$2
shift 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s%N)
if ! "$cxx" -std=c++17 -O2 -g -H "$@" -c "$source" -o "$work/user.o" 2>"$work/headers"; then
  cat "$work/headers"
  echo "user_compile: $source does not compile"
  exit 1
fi
end=$(date +%s%N)
heavy=$(grep -E '^\.+ ' "$work/headers" | sed 's/^\.* //' |
  grep -E '/(thrift|grpcpp|grpc|google/protobuf|boost)/|/rpcboot/codec/|/rpcboot/internal/binding_impl\.h' |
  sort -u)
count=$(grep -cE '^\.+ ' "$work/headers")
printf 'user_compile: %s: %d headers, compiled in %d ms (goal: under 5000 ms on 2 cores)\n' \
  "$(basename "$source")" "$count" $(( (end - start) / 1000000 ))
if [ -n "$heavy" ]; then
  echo "user_compile: a user file reaches headers that belong in the generated .cc:"
  echo "$heavy" | sed 's/^/  /'
  exit 1
fi
echo "user_compile: ok (no Thrift, gRPC, protobuf, Boost or codec header)"
