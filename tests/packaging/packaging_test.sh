#!/usr/bin/env bash
# cmake --install rpcboot to a prefix, then build and run a project outside the tree that uses
# find_package(rpcboot CONFIG) and rpcboot_add_interface.
#   packaging_test.sh SOURCE_DIR BUILD_DIR WORK_DIR [SANITIZE]
set -euo pipefail
src=$1 build=$2 work=$3 sanitize=${4:-OFF}
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# An rpcboot built with sanitizers needs them in the program that links it too.
case "$sanitize" in
  ON|1|TRUE|true) launcher+=("-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined"
                             "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined") ;;
esac
cmake -S "$src/tests/packaging/project" -B "$work/build" "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
test -f "$work/build/greeter_interface_rpcboot/greeter.thrift" || { echo "no emitted greeter.thrift"; exit 1; }
out=$("$work/build/greeter")
echo "$out"
[ "$out" = "grpc: hello packaging; hello packaging; 
thrift: hello packaging; " ] || { echo "unexpected output"; exit 1; }
echo "packaging: OK"
