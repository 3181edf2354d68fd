#!/usr/bin/env bash
# The benchmark suite, as `make bench` runs it: `gpufabric bench` against an
# in-process server on the host backend (or the server given with
# --server ADDR), its results as JSON in build/bench.json, its charts in
# docs/bench/, and the generated section of docs/benchmarks.md (between
# <!-- bench:begin --> and <!-- bench:end -->) rewritten from the JSON.
# Arguments go to the measuring run; GPUFABRIC_BENCH_DURATION sets the length
# of each step (2s: about 30 seconds in all).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin/gpufabric
DURATION=${GPUFABRIC_BENCH_DURATION:-2s}
if [ ! -x "$BIN" ]; then
	echo "bench.sh: $BIN is not built: run make bench" >&2
	exit 1
fi
mkdir -p build docs/bench
"$BIN" bench --duration "$DURATION" --json build/bench.json --plot docs/bench "$@"
# The docs come from the JSON alone, so results recorded elsewhere (a GPU
# machine) can be published the same way.
"$BIN" bench --from build/bench.json --plot docs/bench --markdown docs/benchmarks.md >/dev/null
echo
echo "results in build/bench.json; charts in docs/bench/; docs/benchmarks.md regenerated between its markers"
