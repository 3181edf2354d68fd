#!/usr/bin/env bash
# rdma-check: the verbs transport on real RDMA NICs, beside perftest's
# floors measured on the same pair of hosts in the same run.
#
# Run it on the CLIENT host, from a repository whose build/bin/gpufabric was
# built beforehand (make build); the SERVER host needs the same binary at
# the same path (or RDMA_CHECK_REMOTE_BIN) and perftest, and is reached with
# ssh:
#
#   RDMA_CHECK_SERVER=host2 make rdma-check
#
# Steps, each under a timeout, going on when one fails:
#   1. gpufabric diag on both hosts (devices, ports, GIDs and their types, MTU, NUMA)
#   2. ib_send_lat (floor for the call lane) and ib_write_bw (floor for the bulk lane)
#   3. gpufabric bench --transport rdma against a listener on the server
# and prints the ratios the issue asks for: bench latency / ib_send_lat
# (at most 1.3) and bench bandwidth / ib_write_bw (at least 0.95).
#
# Environment: RDMA_CHECK_SERVER (required), RDMA_CHECK_DEVICE (verbs
# device; default: perftest's and gpufabric's first), RDMA_CHECK_GID (GID
# index for perftest; gpufabric chooses its own from the route unless
# set), RDMA_CHECK_PORT (TCP port of gpufabric's listener, default 7471),
# RDMA_CHECK_REMOTE_BIN (default: this build's path).
# Exit status: 0 when no step failed, 1 otherwise.

set -u
cd "$(dirname "$0")/.." || exit 2
BIN=$PWD/build/bin/gpufabric
SERVER=${RDMA_CHECK_SERVER:?set RDMA_CHECK_SERVER to the other host (ssh-reachable)}
REMOTE_BIN=${RDMA_CHECK_REMOTE_BIN:-$BIN}
PORT=${RDMA_CHECK_PORT:-7471}
DEV=${RDMA_CHECK_DEVICE:-}
GID=${RDMA_CHECK_GID:-}
failed=0

step() { # step NAME SECONDS CMD...
	local name=$1 secs=$2
	shift 2
	echo "== $name"
	if ! timeout "$secs" "$@"; then
		echo "!! $name failed"
		failed=1
		return 1
	fi
}

[ -x "$BIN" ] || { echo "rdma-check: $BIN missing: run make build"; exit 2; }
for tool in ib_send_lat ib_write_bw ssh; do
	command -v $tool >/dev/null || { echo "rdma-check: $tool missing (apt-get install perftest openssh-client)"; exit 2; }
done

perf_args=()
[ -n "$DEV" ] && perf_args+=(-d "$DEV")
[ -n "$GID" ] && perf_args+=(-x "$GID")
gf_args=()
[ -n "$DEV" ] && gf_args+=(--rdma-device "$DEV")
[ -n "$GID" ] && gf_args+=(--gid-index "$GID")

step "diag (client)" 60 "$BIN" diag
step "diag (server)" 60 ssh "$SERVER" "$REMOTE_BIN" diag

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rdma-check.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT

# perftest: the server side listens, the client connects; -F: no CPU
# frequency warning; 2 bytes for latency (a small SEND), 4 MiB writes for
# bandwidth (the size gpufabric's bulk lane writes).
ssh "$SERVER" ib_send_lat -F "${perf_args[@]}" -s 2 -n 10000 >/dev/null 2>&1 &
sleep 2
step "ib_send_lat" 120 ib_send_lat -F "${perf_args[@]}" -s 2 -n 10000 "$SERVER" | tee "$WORK/lat"
ssh "$SERVER" ib_write_bw -F "${perf_args[@]}" -s 4194304 -n 1000 >/dev/null 2>&1 &
sleep 2
step "ib_write_bw" 120 ib_write_bw -F "${perf_args[@]}" -s 4194304 -n 1000 --report_gbits "$SERVER" | tee "$WORK/bw"

ssh "$SERVER" "$REMOTE_BIN" bench --transport rdma --listen ":$PORT" "${gf_args[@]}" >"$WORK/listener.log" 2>&1 &
listener=$!
sleep 2
step "gpufabric bench --transport rdma" 300 "$BIN" bench --transport rdma --server "$SERVER:$PORT" "${gf_args[@]}" | tee "$WORK/gf"
kill "$listener" 2>/dev/null
ssh "$SERVER" pkill -f "bench --transport rdma --listen :$PORT" 2>/dev/null

# Ratios. ib_send_lat reports one-way latency (half a round trip), in us,
# "t_typical" in the 5th column of its results line; ib_write_bw reports
# the average Gb/s in the 4th column.
lat_floor=$(awk '$1 ~ /^[0-9]+$/ && NF >= 5 {print $5; exit}' "$WORK/lat")
bw_floor=$(awk '$1 ~ /^[0-9]+$/ && NF >= 4 {print $4; exit}' "$WORK/bw")
gf_p50=$(sed -n 's/.*round trip p50 \([^ ]*\) .*/\1/p' "$WORK/gf")
gf_bw=$(sed -n 's/.*bulk lane: \([0-9.]*\) Gb.*/\1/p' "$WORK/gf")
echo "== summary ($(date -u +%F), $(uname -n) -> $SERVER)"
echo "floor ib_send_lat one-way: ${lat_floor:-?} us; gpufabric round trip p50: ${gf_p50:-?} (compare half of it)"
echo "floor ib_write_bw: ${bw_floor:-?} Gb/s; gpufabric bulk lane: ${gf_bw:-?} Gb/s"
if [ -n "$bw_floor" ] && [ -n "$gf_bw" ]; then
	awk -v a="$gf_bw" -v b="$bw_floor" 'BEGIN {printf "bandwidth ratio: %.3f (target >= 0.95)\n", a / b}'
fi
exit $failed
