#!/usr/bin/env bash
# redisstat.sh runs one Mayfly binary on a throwaway redis-server under receive.sh's
# kept-connection load (8 sessions, 10 KiB, verification against the DNS stub) and
# prints Mayfly's and redis-server's CPU per message and what Redis did for it:
# INFO stats (reads processed: one per round trip a client made) and the top of INFO
# commandstats. For A/B runs of two builds in turn (issue 23's Redis work):
#
#   for i in 1 2 3; do for b in /tmp/mayfly-a /tmp/mayfly-b; do cmd/mayfly-load/redisstat.sh $b 6000; done; done
#
# PROF=FILE also writes an 8 s CPU profile of Mayfly taken during the run (give it
# messages for more than 8 s). MEM=1 runs
# Mayfly on its memory store instead (redis-server idles beside it), NOVERIFY=1 with
# -verify=false: for A/B runs of one build against itself, e.g. verification's cost:
#
#   for i in 1 2 3 4; do MEM=1 TOPN=0 cmd/mayfly-load/redisstat.sh $b 20000; MEM=1 NOVERIFY=1 TOPN=0 cmd/mayfly-load/redisstat.sh $b 20000; done
set -euo pipefail
bin=$1 n=${2:-6000}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
(cd "$here/../.." && go build -o "$tmp/load" ./cmd/mayfly-load)
RP=$(free_port) SP=$(free_port) DP=$(free_port) PP=$(free_port)
"$tmp/load" -dns-stub "127.0.0.1:$DP" -from load@sender.test >/dev/null 2>&1 &
pids+=($!)
redis-server --bind 127.0.0.1 --port "$RP" --save '' --appendonly no >"$tmp/redis.log" 2>&1 &
pids+=($!) rp=$!
wait_port redis-server "$rp" "$RP" "$tmp/redis.log"
store=(-redis-url "redis://127.0.0.1:$RP/0")
if [[ -n ${MEM:-} ]]; then store=(); fi
if [[ -n ${NOVERIFY:-} ]]; then store+=(-verify=false); fi
"$bin" serve -log-level info -domains mayfly.test -hostname mx.bench.test -dns "127.0.0.1:$DP" \
	-recipient-rate off -receive-rate off -max-connections-per-ip 0 -http-addr "" -imap-addr "" \
	-pop3-addr "" -submission-addr "" -smtp-addr "127.0.0.1:$SP" -pprof-addr "127.0.0.1:$PP" \
	"${store[@]}" >"$tmp/mayfly.log" 2>&1 &
pids+=($!) mp=$!
wait_port mayfly "$mp" "$SP" "$tmp/mayfly.log"
"$tmp/load" -addr "127.0.0.1:$SP" -n 1000 -c 8 -per-conn 0 -size 10KiB >/dev/null 2>&1 # warm up
redis-cli -p "$RP" config resetstat >/dev/null
rb=$(cpu_ticks $rp) mb=$(cpu_ticks $mp)
cp=
if [[ -n ${PROF:-} ]]; then
	curl -sS -o "$PROF" "http://127.0.0.1:$PP/debug/pprof/profile?seconds=8" &
	cp=$!
fi
"$tmp/load" -addr "127.0.0.1:$SP" -n "$n" -c 8 -per-conn 0 -size 10KiB 2>&1 | grep -E 'throughput|latency'
ra=$(cpu_ticks $rp) ma=$(cpu_ticks $mp)
awk -v m=$((ma - mb)) -v r=$((ra - rb)) -v n="$n" 'BEGIN { printf "CPU ms/msg: mayfly %.3f, redis-server %.3f\n", m * 10 / n, r * 10 / n }'
redis-cli -p "$RP" info stats | grep -E 'total_(reads|writes)_processed|total_commands_processed|total_net_(input|output)_bytes'
redis-cli -p "$RP" info commandstats | grep -v '^#' | sort -t= -k3 -n -r | head -"${TOPN:-12}"
if [[ -n $cp ]]; then wait "$cp"; fi
