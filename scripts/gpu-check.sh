#!/usr/bin/env bash
# gpu-check: the real-GPU check. It runs on a GPU machine that has no Go and
# no network, from a copy of the repository whose build/ was filled
# beforehand on a build host:
#
#   build/bin/gpufabric        the binary (server, run, smi, bench)
#   build/lib/libcuda.so.1     the interposer, found by `gpufabric run`
#   build/examples/*           the C examples (examples/c), optional
#   build/tests/cuda.test      optional: go test -c -o build/tests/cuda.test ./engine/backend/cuda
#
# It starts a server on the cuda backend, runs each step under a timeout and
# goes on when one fails, prints native and remote figures side by side,
# and stops the server on the way out. Everything goes to stdout and to a
# log ($OUT/gpu-check.log when $OUT is set, else build/gpu-check.log).
# Exit status: 0 when no step failed, 1 otherwise (skips are not failures).
#
# Environment: GPU_CHECK_PORT (default: derived from the pid),
# GPU_CHECK_BUDGET (seconds for the whole run, default 480, well inside 10
# minutes), PYTHON (default python3).

set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
BUILD=$ROOT/build
BIN=$BUILD/bin/gpufabric
PYTHON=${PYTHON:-python3}
if [ -n "${OUT:-}" ]; then
	LOGDIR=$OUT
else
	LOGDIR=$BUILD
fi
mkdir -p "$LOGDIR" || exit 2
LOG=$LOGDIR/gpu-check.log
SERVER_LOG=$LOGDIR/gpu-check-server.log
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX") || exit 2
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
echo "gpu-check: log in $LOG, server log in $SERVER_LOG"

START=$SECONDS
BUDGET=${GPU_CHECK_BUDGET:-480}
PORT=${GPU_CHECK_PORT:-$((20000 + $$ % 20000))}
ADDR=127.0.0.1:$PORT
SERVER_PID=
PASSED=0
FAILED=0
SKIPPED=0
SUMMARY=()

# The server, the native runs and the backend test must load NVIDIA's
# libcuda.so.1, never the interposer in build/lib: drop that directory from
# the library path they inherit.
NATIVE_LD_PATH=$(printf '%s' "${LD_LIBRARY_PATH:-}" | tr ':' '\n' | grep -v -x -e "$BUILD/lib" -e "build/lib" -e "./build/lib" | paste -sd: -)

note() { SUMMARY+=("$1"); }
pass() { PASSED=$((PASSED + 1)); note "PASS  $1"; echo "--- PASS: $1"; }
fail() { FAILED=$((FAILED + 1)); note "FAIL  $1${2:+: $2}"; echo "--- FAIL: $1${2:+: $2}"; }
skip() { SKIPPED=$((SKIPPED + 1)); note "SKIP  $1: $2"; echo "--- SKIP: $1: $2"; }

left() { echo $((BUDGET - (SECONDS - START))); }

now_ms() { date +%s%3N; }

# run_step NAME LIMIT OUTFILE CMD...: runs CMD with a timeout (cut to what is
# left of the budget), tees its output to OUTFILE, and records the outcome.
# The elapsed milliseconds are left in STEP_MS.
STEP_MS=
run_step() {
	local name=$1 limit=$2 out=$3 rem rc t0
	shift 3
	STEP_MS=
	rem=$(left)
	if [ "$rem" -le 10 ]; then
		skip "$name" "time budget ($BUDGET s) spent"
		return 1
	fi
	if [ "$limit" -gt $((rem - 10)) ]; then
		limit=$((rem - 10))
	fi
	echo
	echo "=== $name (timeout ${limit}s)"
	t0=$(now_ms)
	timeout -k 5 "$limit" "$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	STEP_MS=$(($(now_ms) - t0))
	case $rc in
	0) pass "$name (${STEP_MS} ms)" ;;
	124 | 137) fail "$name" "timed out after ${limit}s" ;;
	*) fail "$name" "exit status $rc" ;;
	esac
	return "$rc"
}

stop_server() {
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill "$SERVER_PID" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$SERVER_PID" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$SERVER_PID" 2>/dev/null; then
			echo "gpu-check: the server ignored SIGTERM for 10s; killing it"
			kill -9 "$SERVER_PID" 2>/dev/null
		fi
		wait "$SERVER_PID" 2>/dev/null
	fi
	SERVER_PID=
}

finish() {
	stop_server
	if [ -s "$SERVER_LOG" ]; then
		echo
		echo "=== server log (last 40 lines of $SERVER_LOG)"
		tail -n 40 "$SERVER_LOG"
	fi
	rm -rf "$WORK"
	echo
	echo "=== summary ($((SECONDS - START)) s)"
	local line
	for line in "${SUMMARY[@]}"; do
		echo "  $line"
	done
	echo "gpu-check: $PASSED passed, $FAILED failed, $SKIPPED skipped; log in $LOG"
}
trap finish EXIT
trap 'exit 130' INT TERM

# has_command NAME: whether the gpufabric binary has that subcommand (its
# help lists each as "  NAME  summary").
has_command() {
	"$BIN" help 2>&1 | grep -qE "^  $1[[:space:]]"
}

# figures FILE...: the "label  value unit" lines of example or smoke-test
# output as "label<TAB>value unit", so runs can be lined up by label.
figures() {
	sed -nE \
		-e 's/^[[:space:]]*([^[:space:]].*[^[:space:]])[[:space:]]{2,}([0-9.]+ (ms|us|s))[[:space:]]*$/\1\t\2/p' \
		-e 's/^[[:space:]]*([A-Za-z_ ]+): ([0-9.]+) ?(launches\/s|us|ms|GB\/s)( .*)?$/\1\t\2 \3/p' \
		-e 's/^torch_smoke: ([a-z0-9_]+)=([0-9.e+-]+)$/\1\t\2/p' "$1"
}

# wall FILE: adds the last step's wall time to its output, as a figure.
wall() {
	[ -n "$STEP_MS" ] && printf '  %-40s %10s ms\n' "wall time, whole run" "$STEP_MS.000" >>"$1"
}

# side_by_side TITLE FILE...: one row per label, one column per run.
side_by_side() {
	local title=$1 f
	shift
	echo
	echo "--- $title"
	printf '  %-42s' "figure"
	for f in "$@"; do
		printf ' %16s' "$(basename "$f" .out)"
	done
	echo
	local labels
	labels=$(for f in "$@"; do [ -s "$f" ] && figures "$f"; done | cut -f1 | awk '!seen[$0]++')
	[ -n "$labels" ] || {
		echo "  (no figures)"
		return
	}
	local label v
	while IFS= read -r label; do
		printf '  %-42s' "$label"
		for f in "$@"; do
			v=
			[ -s "$f" ] && v=$(figures "$f" | awk -F'\t' -v l="$label" '$1 == l { print $2; exit }')
			printf ' %16s' "${v:--}"
		done
		echo
	done <<<"$labels"
}

echo
echo "=== environment"
echo "host: $(uname -srm), $(nproc) CPUs"
if command -v nvidia-smi >/dev/null 2>&1; then
	timeout 20 nvidia-smi -L || echo "nvidia-smi -L failed"
	timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,pci.bus_id --format=csv,noheader || true
else
	echo "nvidia-smi: not found"
fi
if [ ! -x "$BIN" ]; then
	fail "build/bin/gpufabric" "not built (make build on the build host first)"
	exit 1
fi

# 1. The cuda backend's own suite, on this GPU, if its test binary was built.
# It runs in the package directory (it reads testdata/ and
# ../../../examples/kernels.ptx); GPUFABRIC_REQUIRE_GPU=1 turns its "no GPU,
# skip" into a failure.
if [ -x "$BUILD/tests/cuda.test" ]; then
	run_step "backend suite (cuda.test)" 150 "$WORK/cuda-test.out" \
		env -C engine/backend/cuda GPUFABRIC_REQUIRE_GPU=1 LD_LIBRARY_PATH="$NATIVE_LD_PATH" \
		"$BUILD/tests/cuda.test" -test.v -test.count=1 -test.timeout 140s -test.run 'TestOpenHere|TestSystemInventoryHere|TestRealGPU'
else
	skip "backend suite" "not built (go test -c -o build/tests/cuda.test ./engine/backend/cuda)"
fi

# 2. The server, on the cuda backend.
echo
echo "=== server on $ADDR (--backend cuda)"
LD_LIBRARY_PATH="$NATIVE_LD_PATH" "$BIN" server --listen "$ADDR" --backend cuda >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
ready=
for _ in $(seq 150); do
	if ! kill -0 "$SERVER_PID" 2>/dev/null; then
		break
	fi
	if grep -q 'msg=serving' "$SERVER_LOG" 2>/dev/null || (: <"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
		ready=1
		break
	fi
	sleep 0.2
done
if [ -z "$ready" ]; then
	if kill -0 "$SERVER_PID" 2>/dev/null; then
		fail "server start" "not serving on $ADDR within 30s"
	else
		wait "$SERVER_PID"
		fail "server start" "the server exited (status $?) before serving"
		SERVER_PID=
	fi
	tail -n 40 "$SERVER_LOG"
	exit 1
fi
pass "server start"

# 3. What the server sees.
run_step "smi" 30 "$WORK/smi.out" "$BIN" smi --server "$ADDR"

# 4. The C examples: natively, then through the fabric over shared memory
# and over TCP.
examples=()
for ex in "$BUILD"/examples/*; do
	if [ -f "$ex" ] && [ -x "$ex" ]; then
		examples+=("$ex")
	fi
done
if [ ${#examples[@]} -eq 0 ]; then
	skip "C examples" "none in build/examples"
elif ! has_command run; then
	skip "C examples" "'gpufabric run' not built"
else
	for ex in "${examples[@]}"; do
		name=$(basename "$ex")
		mkdir -p "$WORK/$name"
		run_step "$name native" 60 "$WORK/$name/native.out" \
			env LD_LIBRARY_PATH="$NATIVE_LD_PATH" "$ex" examples/kernels.ptx
		wall "$WORK/$name/native.out"
		for transport in shm tcp; do
			run_step "$name remote ($transport)" 60 "$WORK/$name/$transport.out" \
				env GPUFABRIC_TRANSPORT="$transport" \
				"$BIN" run --server "$ADDR" --transport "$transport" -- "$ex" examples/kernels.ptx
			wall "$WORK/$name/$transport.out"
		done
		side_by_side "$name: native vs remote" "$WORK/$name/native.out" "$WORK/$name/shm.out" "$WORK/$name/tcp.out"
	done
fi

# 5. PyTorch: natively, then under a half share of the GPU.
if ! command -v "$PYTHON" >/dev/null 2>&1; then
	skip "PyTorch smoke test" "$PYTHON not found"
elif ! timeout 60 "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
	skip "PyTorch smoke test" "torch is not installed for $PYTHON"
else
	run_step "PyTorch native" 150 "$WORK/torch-native.out" \
		env LD_LIBRARY_PATH="$NATIVE_LD_PATH" "$PYTHON" scripts/torch_smoke.py
	if has_command run; then
		run_step "PyTorch remote (-p 0.5)" 240 "$WORK/torch-remote.out" \
			"$BIN" run --server "$ADDR" -p 0.5 -- "$PYTHON" scripts/torch_smoke.py
	else
		skip "PyTorch remote" "'gpufabric run' not built"
	fi
	side_by_side "PyTorch: native vs remote" "$WORK/torch-native.out" "$WORK/torch-remote.out"
fi

# 6. The benchmark suite, where it is built.
if has_command bench; then
	run_step "bench" 120 "$WORK/bench.out" "$BIN" bench --server "$ADDR"
else
	echo
	echo "=== bench: not built"
	skip "bench" "not built"
fi

[ "$FAILED" -eq 0 ]
