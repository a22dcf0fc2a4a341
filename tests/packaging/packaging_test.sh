#!/usr/bin/env bash
# cmake --install rpcboot to a prefix, check that only public headers (and those generated code
# includes) were installed, then build and run a project outside the tree that uses
# find_package(rpcboot CONFIG) and rpcboot_add_interface; then the same project with rpcboot as
# a subproject (add_subdirectory), tests off.
#   packaging_test.sh SOURCE_DIR BUILD_DIR WORK_DIR [SANITIZE]
set -euo pipefail
src=$1 build=$2 work=$3 sanitize=${4:-OFF}
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
# Internals users must not reach (transports, channels, thread pool, base internals): of every
# internal/ or transport/ header, only the two that generated code includes may be installed.
leaked=$(cd "$work/prefix/include" && find . -name '*.h' | sed 's#^\./##' |
  grep -E '(^|/)(internal|transport)/' | grep -vE '^rpcboot/internal/binding(_impl)?\.h$' || true)
if [ -n "$leaked" ]; then echo "packaging: internal headers installed:"; echo "$leaked"; exit 1; fi
for h in rpcboot/app.h rpcboot/base/log.h rpcboot/base/hash.h rpcboot/internal/binding_impl.h \
         discovery/resolver.h; do
  test -f "$work/prefix/include/$h" || { echo "packaging: $h was not installed"; exit 1; }
done
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
expected="grpc: hello packaging; hello packaging; 
thrift: hello packaging; "
[ "$out" = "$expected" ] || { echo "unexpected output"; exit 1; }
echo "packaging: find_package OK"

# The same program with rpcboot built as a subproject of it.
cmake -S "$src/tests/packaging/subproject" -B "$work/sub" "${generator[@]}" "${launcher[@]}" \
  -DRPCBOOT_SOURCE_DIR="$src" >"$work/sub-configure.log" 2>&1 || { cat "$work/sub-configure.log"; exit 1; }
grep -q "RPCBOOT_BUILD_TESTS:BOOL=OFF" "$work/sub/CMakeCache.txt" || { echo "tests on in a subproject"; exit 1; }
cmake --build "$work/sub" >"$work/sub-build.log" 2>&1 || { tail -40 "$work/sub-build.log"; exit 1; }
out=$("$work/sub/greeter")
echo "$out"
[ "$out" = "$expected" ] || { echo "unexpected output (subproject)"; exit 1; }
echo "packaging: add_subdirectory OK"
