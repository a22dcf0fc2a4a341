#!/usr/bin/env bash
# The order/shop demo lands with the samples issue; until then this says so and fails.
echo "demo.sh: not yet: the order and shop samples are not built yet (see docs/)." >&2
exit 1
