#!/usr/bin/env bash
# Two interfaces generated apart that both emit a shared type (money.h's Money, reached by
# order.h) cannot meet in one translation unit: the second generated header stops the compile
# with one #error naming the type and the fix (DEPENDS / --import), not a redefinition deep in a
# template. With --import, the two headers compile together.
#   described_twice_test.sh CODEGEN CXX SOURCE_DIR WORK_DIR
set -euo pipefail
codegen=$1 cxx=$2 src=$3 work=$4
data=$src/tests/codegen/testdata/platform
rm -rf "$work" && mkdir -p "$work/money" "$work/apart" "$work/imported"
"$codegen" -o "$work/money" -I "$data" "$data/common/money.h"
"$codegen" -o "$work/apart" -I "$data" "$data/order/order.h"
"$codegen" -o "$work/imported" -I "$data" --import "$data/common/money.h" "$data/order/order.h"
printf '#include "money.rpcboot.h"\n#include "order.rpcboot.h"\nint main() {}\n' >"$work/both.cc"
flags=(-std=c++17 -fsyntax-only -I "$src" -I "$data" -I "$work/money")
if "$cxx" "${flags[@]}" -I "$work/apart" "$work/both.cc" 2>"$work/apart.err"; then
  echo "FAIL: the two headers compiled together although both describe platform::Money"
  exit 1
fi
grep -q 'error: #error "platform::\(Currency\|Money\) is described by two generated headers: order.rpcboot.h' \
  "$work/apart.err" || { head -20 "$work/apart.err"; echo "FAIL: not the #error expected"; exit 1; }
grep -q 'rpcboot_add_interface(... DEPENDS ...)' "$work/apart.err" ||
  { head -5 "$work/apart.err"; echo "FAIL: the error does not say what to do"; exit 1; }
if grep -q 'redefinition' "$work/apart.err"; then
  echo "FAIL: a redefinition error came with the #error:"; grep redefinition "$work/apart.err" | head -3
  exit 1
fi
"$cxx" "${flags[@]}" -I "$work/imported" "$work/both.cc" 2>"$work/imported.err" ||
  { head -20 "$work/imported.err"; echo "FAIL: with --import the two headers do not compile together"; exit 1; }
echo "OK: described twice is one #error; imported, the two compile together"
