#!/usr/bin/env bash
# The folders depend downward only (docs/architecture.md):
#   rpcboot/base  <-  discovery/  <-  rpcboot/ (the rest)  <-  samples/
# base includes nothing of rpcboot's; discovery includes only base from rpcboot/; rpcboot/
# includes only discovery's public headers; no target builds another folder's sources.
# Fails with the offending lines.
set -u
root=${1:?usage: layering_test.sh <source root>}
cd "$root" || exit 2
fail=0
report() {  # $1: what is wrong, stdin: the offending lines
  local lines
  lines=$(cat)
  if [ -n "$lines" ]; then
    echo "layering: $1:"
    echo "$lines" | sed 's/^/  /'
    fail=1
  fi
}

grep -rnE '#include "(rpcboot|discovery)/' rpcboot/base | grep -v '#include "rpcboot/base/' |
  report "rpcboot/base includes from above it"
grep -rnE '#include "rpcboot/' discovery | grep -v '#include "rpcboot/base/' |
  report "discovery/ includes from rpcboot/ other than rpcboot/base"
public_discovery='discovery/(instance|registrar|resolver|session)\.h'
grep -rnE '#include "discovery/' rpcboot | grep -vE "#include \"$public_discovery\"" |
  report "rpcboot/ includes discovery internals"
grep -nE '\$\{PROJECT_SOURCE_DIR\}/rpcboot|\.\./rpcboot' discovery/CMakeLists.txt |
  report "discovery/CMakeLists.txt builds sources of rpcboot/"
grep -rnE '\$\{PROJECT_SOURCE_DIR\}/discovery|\.\./discovery' rpcboot --include=CMakeLists.txt |
  report "rpcboot/ builds sources of discovery/"
grep -rnE '#include "rpcboot/(internal|transport|codec)/' samples |
  report "samples use rpcboot internals (samples use only the public API)"

if [ $fail -eq 0 ]; then echo "layering: ok"; fi
exit $fail
