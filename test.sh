#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs every rpcboot test with ctest.
#   ./test.sh                 normal build (build/)
#   RPCBOOT_SANITIZE=1 ./test.sh   AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/)
# Idempotent: re-running rebuilds only what changed (ccache keeps rebuilds cheap).
set -euo pipefail
cd "$(dirname "$0")"

start=$(date +%s)
./scripts/setup.sh

sanitize=${RPCBOOT_SANITIZE:-0}
build_dir=build
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRPCBOOT_WERROR=ON)
if [ "$sanitize" = "1" ]; then
  build_dir=build-asan
  cmake_args+=(-DRPCBOOT_SANITIZE=ON -DRPCBOOT_BUILD_BENCH=OFF)
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
fi

echo "== configure ($build_dir)"
mkdir -p "$build_dir"
cmake -S . -B "$build_dir" "${cmake_args[@]}" >"$build_dir/configure.log" 2>&1 || {
  cat "$build_dir/configure.log"; exit 1; }
echo "== build"
cmake --build "$build_dir" -j "$(nproc)"
echo "== test"
set +e
(cd "$build_dir" && ctest --output-on-failure -j "$(nproc)" --timeout 600)
rc=$?
set -e
end=$(date +%s)
echo
if [ $rc -eq 0 ]; then
  echo "test.sh: all tests passed in $((end - start)) s ($build_dir)"
else
  echo "test.sh: FAILED (ctest exit $rc) after $((end - start)) s ($build_dir)"
fi
exit $rc
