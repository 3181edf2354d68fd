#!/usr/bin/env bash
# The pool demo: one embedded store and three GPU servers (host backend, two
# 1 GiB emulated devices each) on loopback; a token; request, list, runs
# from the pool (one across two servers), a killed client whose capacity comes back, and a quota
# refusing a request.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
GF=$BIN/gpufabric
DIR=$(mktemp -d -t gpufabric-demo-pool.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$DIR"
}
trap cleanup EXIT

waitlog() { # waitlog FILE PATTERN PID
	for _ in $(seq 200); do
		grep -q "$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || { cat "$1"; exit 1; }
		sleep 0.05
	done
	cat "$1"; exit 1
}

"$GF" pool --data-dir "$DIR/etcd" --listen 127.0.0.1:0 --peer 127.0.0.1:0 >"$DIR/store.log" 2>&1 &
pids+=($!)
waitlog "$DIR/store.log" "pool store serving" $!
export GPUFABRIC_POOL=$(grep -o 'url=[^ ]*' "$DIR/store.log" | cut -d= -f2)
export GPUFABRIC_POOL_ADMIN_TOKEN_FILE=$DIR/etcd/admin-token
echo "== the pool's store: an embedded etcd at $GPUFABRIC_POOL, data in $DIR/etcd, its authentication on;"
echo "   its broker on the same port; the admin token in $GPUFABRIC_POOL_ADMIN_TOKEN_FILE (0600)"

server_token=$("$GF" token create --server)
for i in 0 1 2; do
	"$GF" server --listen 127.0.0.1:0 --backend host --devices 2 --device-memory 1GiB \
		--pool "$GPUFABRIC_POOL" --pool-token "$server_token" --pool-name "gpu$i" --pool-ttl 2s >"$DIR/server$i.log" 2>&1 &
	pids+=($!)
	waitlog "$DIR/server$i.log" "joined the pool" $!
done
echo "== three servers joined with a server token, two emulated GPUs each"
export GPUFABRIC_POOL_TOKEN=$("$GF" token create --user ann --group lab)
echo "== a token for ann (group lab): the store keeps only its hash; ann reserves through the broker"
echo

echo "== gpufabric request -n 1 -p 0.5 --hold 10m"
id=$("$GF" request -n 1 -p 0.5 --hold 10m)
echo
echo "== gpufabric list"
"$GF" list
echo
if [ -x build/examples/vector_add ] && [ -e build/lib/libcuda.so.1 ]; then
	echo "== a program on that reservation: GPUFABRIC_RESERVATION=$id gpufabric run -- vector_add"
	GPUFABRIC_RESERVATION=$id "$GF" run -- build/examples/vector_add examples/kernels.ptx
	echo
	echo "== gpufabric run -n 2 -p 0.25 -- vector_add (two devices reserved for the run, released at its exit)"
	"$GF" run -n 2 -p 0.25 -- build/examples/vector_add examples/kernels.ptx
	echo
	echo "== gpufabric run -n 2 -p 0.5 --spread -- two_servers (device 0 and device 1 on two servers; peer copies pass through the client)"
	"$GF" run -n 2 -p 0.5 --spread -- build/examples/two_servers examples/kernels.ptx
	echo
	echo "== a session no reservation backs is refused by the server"
	addr=$(grep -o 'listen=[^ ]*' "$DIR/server0.log" | head -1 | cut -d= -f2)
	"$GF" run --server "$addr" -- build/examples/vector_add examples/kernels.ptx 2>&1 | grep -m1 -i "refused" || true
	echo
fi
"$GF" release "$id"
echo "== released $id"
echo

echo "== a client holding two whole GPUs is killed (SIGKILL); its lease has a 2 s TTL"
"$GF" run -n 2 -p 1 --pool-ttl 2s -- sleep 600 &
client=$!
for _ in $(seq 200); do "$GF" list | grep -q ' held' && break; sleep 0.05; done
"$GF" list | sed -n '/RESERVATION/,$p'
kill -KILL $client
start=$(date +%s%N)
while "$GF" list | grep -q ' held'; do sleep 0.1; done
echo "-- capacity free again $(( ($(date +%s%N) - start) / 1000000 )) ms after the kill"
"$GF" list | sed -n '1,7p'
echo

echo "== a quota: ann may hold 2 devices at once"
"$GF" quota set --user ann --max-devices 2
"$GF" request -n 3 -p 0.1 || echo "-- refused, as it should be"
echo
echo "== a token the pool never issued, at the broker"
GPUFABRIC_POOL_TOKEN=gftok_forged "$GF" request -n 1 -p 0.1 || echo "-- refused, as it should be"
echo
echo "== gpufabric health"
"$GF" health
echo
echo "demo finished"
