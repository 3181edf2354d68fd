#!/usr/bin/env bash
# The demo: a GPU server on the host backend (CPU emulation) on loopback, a
# Go client doing saxpy on 64 Mi floats under a 0.25 share, then the C
# examples under `gpufabric run` when they have been built.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
PORT=${GPUFABRIC_DEMO_PORT:-7171}
ADDR=127.0.0.1:$PORT
LOG=$(mktemp -t gpufabric-demo-server.XXXXXX.log)

"$BIN/gpufabric" server --listen "$ADDR" --backend host --devices 1 --device-memory 2GiB >"$LOG" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do
	grep -q 'msg=serving' "$LOG" && break
	kill -0 "$server" 2>/dev/null || { cat "$LOG"; exit 1; }
	sleep 0.05
done
echo "== server on $ADDR (host backend: a CPU emulation of a GPU), log in $LOG"
echo
echo "== saxpy on 64 Mi floats under a 0.25 share"
"$BIN/saxpy-demo" -server "$ADDR" -p 0.25
echo
if [ -x build/examples/saxpy ] && [ -e build/lib/libcuda.so.1 ]; then
	echo "== the C examples, unmodified CUDA driver-API programs, under gpufabric run"
	for ex in build/examples/*; do
		# session_end is a test harness: it waits to be told the server died.
		[ "$(basename "$ex")" = session_end ] && continue
		echo "-- $(basename "$ex")"
		"$BIN/gpufabric" run --server "$ADDR" -p 0.25 -- "$ex" examples/kernels.ptx
	done
	echo
fi
echo "== what the server saw"
"$BIN/gpufabric" smi --server "$ADDR"
echo
echo "demo finished: the server stops now"
