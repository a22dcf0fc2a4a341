#!/usr/bin/env bash
# Fails when a tracked C++ file is not clang-formatted (.clang-format, Google base).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "FAIL: clang-format missing: apt-get install clang-format"; exit 1; }
mapfile -t files < <(git ls-files '*.h' '*.cc' 2>/dev/null || find rpcboot codegen discovery samples tests bench -name '*.h' -o -name '*.cc')
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "FAIL: not clang-formatted (run: clang-format -i FILE):"; printf '  %s\n' "${bad[@]}"; exit 1
fi
echo "OK: ${#files[@]} files clang-formatted"
