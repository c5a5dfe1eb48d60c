#!/usr/bin/env bash
# receive.sh measures receiving head to head, in one interleaved run: Postfix's smtp-sink
# (the machine's ceiling), Mayfly on the memory store, the same with verification off,
# Mayfly on Redis (a throwaway redis-server, whose CPU counts as the server's too) and a
# peer binary given by path (Inbucket), all started here with their defaults but Mayfly's
# per-client rates (one generator is one client). Mayfly verifies SPF, DKIM and DMARC
# against a loopback DNS stub (mayfly-load -dns-stub) that publishes the sender's SPF and
# DMARC records. It prints the medians of ROUNDS rounds and the same-run ratios (each
# round's ratio, then their median), and checks them against issue 23's targets. Each
# round runs the servers in turn, starting one further on each round.
#
#   PEER=$(go env GOPATH)/bin/inbucket cmd/mayfly-load/receive.sh
#
# Environment:
#   PEER            Inbucket binary (go install github.com/inbucket/inbucket/v3/cmd/inbucket@v3.2.0);
#                   empty: no peer column
#   MAYFLY          Mayfly binary; empty: built from this repository
#   ROUNDS          rounds, each running every scenario on every server in turn (default 3)
#   SCENARIOS       "size:sessions:per-conn ...", default "10KiB:32:1 10KiB:8:0 100KiB:32:1"
#   N10, N100       messages per run at 10 KiB and at larger sizes (default 10000, 3000:
#                   shorter runs moved ratios by 10% between rounds)
#   LOG_LEVEL       Mayfly's and Inbucket's log level (default info, their default; the logs
#                   go to files)
#   PROFILE_DIR     when set: after the rounds, a CPU profile of each Mayfly (memory, Redis)
#                   under PROFILE_LOAD for PROFILE_SECONDS (default 10) is written there
#                   (mem.pprof, redis.pprof), with its top entries in mem.top, redis.top
#   PROFILE_LOAD    default "-size 10KiB -c 8 -per-conn 0": the kept-connection run
#   SMTP_SINK       default /usr/sbin/smtp-sink; REDIS_SERVER default redis-server
#   LOAD_ARGS       more mayfly-load flags for every run
#   FLOOR           when set, one more column: Mayfly built with -tags mayfly_floor on the
#                   same redis-server, whose Put is one SET of the message's bytes and
#                   nothing else (storage/redisstore/floor.go): the least any Redis store
#                   could cost, and its ratio to the memory store
#
# The tables go to stdout, progress to stderr. Exit status 1 when a run failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
ROUNDS=${ROUNDS:-3}
SCENARIOS=${SCENARIOS:-10KiB:32:1 10KiB:8:0 100KiB:32:1}
N10=${N10:-10000}
N100=${N100:-3000}
LOG_LEVEL=${LOG_LEVEL:-info}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
PROFILE_LOAD=${PROFILE_LOAD:--size 10KiB -c 8 -per-conn 0}
SMTP_SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
read -ra load_args <<<"${LOAD_ARGS:-}"


log "building mayfly-load"
(cd "$repo" && go build -o "$tmp/mayfly-load" ./cmd/mayfly-load)
load=$tmp/mayfly-load
mayfly=${MAYFLY:-}
if [[ -z $mayfly ]]; then
	log "building mayfly"
	(cd "$repo" && go build -o "$tmp/mayfly" ./cmd/mayfly)
	mayfly=$tmp/mayfly
fi
if [[ -n ${FLOOR:-} ]]; then
	log "building mayfly -tags mayfly_floor"
	(cd "$repo" && go build -tags mayfly_floor -o "$tmp/mayfly-floor" ./cmd/mayfly)
fi


declare -A addr pid title
targets=()

port=$(free_port)
user_args=()
if [[ $EUID -eq 0 ]]; then user_args=(-u nobody); fi # smtp-sink refuses to run as root otherwise
"$SMTP_SINK" "${user_args[@]}" "127.0.0.1:$port" 1024 >"$tmp/sink.log" 2>&1 &
pids+=($!) pid[sink]=$! addr[sink]=127.0.0.1:$port title[sink]=smtp-sink targets+=(sink)
wait_port sink "${pid[sink]}" "$port" "$tmp/sink.log"

dns=127.0.0.1:$(free_port)
"$load" -dns-stub "$dns" -from load@sender.test >"$tmp/dns.log" 2>&1 &
pids+=($!)

rport=$(free_port)
"$REDIS_SERVER" --bind 127.0.0.1 --port "$rport" --save '' --appendonly no >"$tmp/redis-server.log" 2>&1 &
pids+=($!) redis_pid=$!
wait_port redis-server "$redis_pid" "$rport" "$tmp/redis-server.log"

# Mayfly's defaults, but the per-client and per-inbox rates: the generator is one client.
mayfly_flags=(serve -log-level "$LOG_LEVEL" -domains mayfly.test -hostname mx.bench.test -dns "$dns"
	-recipient-rate off -receive-rate off -max-connections-per-ip 0
	-http-addr "" -imap-addr "" -pop3-addr "" -submission-addr "")
declare -A pprof
start_mayfly() {
	local name=$1 port pp
	shift
	port=$(free_port) pp=127.0.0.1:$(free_port)
	"$mayfly" "${mayfly_flags[@]}" -smtp-addr "127.0.0.1:$port" -pprof-addr "$pp" "$@" >"$tmp/$name.log" 2>&1 &
	pids+=($!) pid[$name]=$! addr[$name]=127.0.0.1:$port pprof[$name]=$pp targets+=("$name")
	wait_port "$name" "${pid[$name]}" "$port" "$tmp/$name.log"
}
start_mayfly mem
title[mem]="Mayfly memory"
start_mayfly redis -redis-url "redis://127.0.0.1:$rport/0"
title[redis]="Mayfly Redis"
start_mayfly noverify -verify=false
title[noverify]="Mayfly memory, verify off"
if [[ -n ${FLOOR:-} ]]; then
	mayfly_real=$mayfly mayfly=$tmp/mayfly-floor
	start_mayfly floor -redis-url "redis://127.0.0.1:$rport/1"
	mayfly=$mayfly_real
	title[floor]="Redis floor: one SET"
fi

if [[ -n ${PEER:-} ]]; then
	port=$(free_port)
	INBUCKET_SMTP_ADDR=127.0.0.1:$port INBUCKET_POP3_ADDR=127.0.0.1:$(free_port) INBUCKET_WEB_ADDR=127.0.0.1:$(free_port) \
		INBUCKET_STORAGE_TYPE=memory INBUCKET_STORAGE_MAILBOXMSGCAP=200 INBUCKET_LOGLEVEL=$LOG_LEVEL \
		"$PEER" >"$tmp/peer.log" 2>&1 &
	pids+=($!) pid[peer]=$! addr[peer]=127.0.0.1:$port title[peer]="$(basename "$PEER")" targets+=(peer)
	wait_port peer "${pid[peer]}" "$port" "$tmp/peer.log"
fi

# measure TARGET SIZE CONNS PERCONN N appends "target scenario msg/s cpu-ms/msg p99-ms errors"
# to $tmp/results; Redis's CPU (and the floor's) is Mayfly's plus redis-server's over the
# same run.
failed=0
measure() {
	local t=$1 size=$2 conns=$3 per=$4 n=$5 line before=0 after=0 v
	local args=(-addr "${addr[$t]}" -n "$n" -size "$size" -c "$conns" -per-conn "$per" -csv "${load_args[@]}")
	if [[ -n ${pid[$t]} ]]; then args+=(-pid "${pid[$t]}"); fi
	if [[ $t == redis || $t == floor ]]; then before=$(cpu_ticks "$redis_pid"); fi
	line=$("$load" "${args[@]}" 2>"$tmp/load.err") || true
	if [[ $t == redis || $t == floor ]]; then after=$(cpu_ticks "$redis_pid"); fi
	if [[ -z $line ]]; then
		log "  $t failed: $(cat "$tmp/load.err")"
		failed=1
		return
	fi
	IFS=, read -ra v <<<"$line"
	# columns: addr,size_bytes,conns,per_conn,sent,errors,wall_s,msg_per_s,mb_per_s,p50_ms,p90_ms,p99_ms,max_ms,server_cpu_ms_per_msg,...
	local sent=${v[4]} errors=${v[5]} rate=${v[7]} p99=${v[11]} cpu=${v[13]:-}
	if [[ ($t == redis || $t == floor) && $sent -gt 0 ]]; then
		cpu=$(awk -v c="$cpu" -v d=$((after - before)) -v n="$sent" 'BEGIN { printf "%.3f", c + d * 10 / n }')
	fi
	if [[ $errors != 0 || $sent == 0 ]]; then
		log "  $t: $errors errors (${v[17]:-})"
		failed=1
	fi
	log "  ${title[$t]}: $rate msg/s, ${cpu:--} CPU ms/msg, p99 $p99 ms"
	printf '%s\t%s:%s:%s\t%s\t%s\t%s\t%s\n' "$t" "$size" "$conns" "$per" "$rate" "${cpu:--}" "$p99" "$errors" >>"$tmp/results"
}

nfor() { case $1 in 1KiB | 10KiB | 1KB | 10KB) echo "$N10" ;; *) echo "$N100" ;; esac }

log "warming up"
for t in "${targets[@]}"; do
	"$load" -addr "${addr[$t]}" -n 500 -size 10KiB -c 8 -per-conn 0 >/dev/null 2>&1 || true
done
: >"$tmp/results"
for round in $(seq "$ROUNDS"); do
	for sc in $SCENARIOS; do
		IFS=: read -r size conns per <<<"$sc"
		log "round $round: $size, $conns sessions, per-conn $per"
		# Each round starts one server further on, so none always runs right after
		# the same other one (the machine's state after a server moves the next).
		for i in "${!targets[@]}"; do
			t=${targets[$(((i + round) % ${#targets[@]}))]}
			measure "$t" "$size" "$conns" "$per" "$(nfor "$size")"
		done
	done
done

echo "Receiving, same run: $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ); $ROUNDS interleaved rounds, N=$N10 (10 KiB), $N100 (larger)."
echo "Mayfly: $("$mayfly" version 2>/dev/null | head -1 || echo "$mayfly"); log level $LOG_LEVEL; verification against a loopback DNS stub."
echo "CPU is the server's user+sys from /proc/PID/stat (10 ms ticks) per accepted message; Redis's includes redis-server's."
echo
python3 - "$tmp/results" "${targets[@]}" <<'EOF'
import sys, statistics
from collections import defaultdict
path, targets = sys.argv[1], sys.argv[2:]
titles = {"sink": "smtp-sink", "mem": "Mayfly memory", "noverify": "memory, verify off", "redis": "Mayfly Redis (+ redis-server CPU)", "peer": "Inbucket", "floor": "Redis floor: one SET (+ redis-server CPU)"}
runs = defaultdict(list)  # (target, scenario) -> [(rate, cpu, p99)] in round order
scenarios = []
for line in open(path):
    t, sc, rate, cpu, p99, errs = line.rstrip("\n").split("\t")
    f = lambda x: float(x) if x not in ("", "-") else None
    runs[(t, sc)].append((f(rate), f(cpu), f(p99)))
    if sc not in scenarios:
        scenarios.append(sc)
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def fmt(x, d=0):
    return "-" if x is None else f"{x:,.{d}f}"
def name(sc):
    size, conns, per = sc.split(":")
    return f"{size}, {conns} sessions, " + ("a connection per message" if per == "1" else "kept connections" if per == "0" else f"{per} per connection")
cols = [t for t in targets]
print("| scenario | " + " | ".join(titles.get(t, t) for t in cols) + " |")
print("|---|" + "---:|" * len(cols))
for sc in scenarios:
    for label, i, d in (("msgs/s", 0, 0), ("server CPU ms/msg", 1, 3), ("DATA->250 p99 ms", 2, 2)):
        print(f"| {name(sc)}, {label} | " + " | ".join(fmt(med([r[i] for r in runs[(t, sc)]]), d) for t in cols) + " |")
print()
# Same-run ratios: each round's ratio, then the median of those.
def ratio(a, b, sc, i):
    xs = [x[i] / y[i] for x, y in zip(runs[(a, sc)], runs[(b, sc)]) if x[i] and y[i]]
    return statistics.median(xs) if xs else None
pairs = [("mem", "peer", "memory / Inbucket"), ("redis", "mem", "Redis / memory"), ("mem", "noverify", "verify on / off (memory)"),
         ("floor", "mem", "Redis floor / memory")]
pairs = [p for p in pairs if p[0] in targets and p[1] in targets]
print("| same-run ratio (median of rounds) | " + " | ".join(f"{p[2]}, msgs/s | {p[2]}, CPU" for p in pairs) + " |")
print("|---|" + "---:|---:|" * len(pairs))
for sc in scenarios:
    print(f"| {name(sc)} | " + " | ".join(f"{fmt(ratio(a, b, sc, 0), 2)} | {fmt(ratio(a, b, sc, 1), 2)}" for a, b, _ in pairs) + " |")
print()
# Issue 23's targets, where this run's scenarios allow.
checks = []
def add(what, value, ok):
    checks.append(f"| {what} | {value} | {'met' if ok else 'NOT met'} |")
def cpu(t, sc): return med([r[1] for r in runs[(t, sc)]])
for sc, bound in (("10KiB:32:1", 0.30), ("10KiB:8:0", 0.20)):
    c = cpu("mem", sc)
    if c is not None:
        add(f"memory CPU/msg, {name(sc)} <= {bound} ms", f"{c:.3f} ms", c <= bound)
    if "peer" in targets and ratio("mem", "peer", sc, 1) is not None:
        r = ratio("mem", "peer", sc, 1)
        add(f"memory CPU/msg <= 0.8 x Inbucket's, {name(sc)}", f"{r:.2f}x", r <= 0.8)
    if "redis" in targets and ratio("redis", "mem", sc, 1) is not None:
        r = ratio("redis", "mem", sc, 1)
        add(f"Redis CPU/msg (+ redis-server) <= 1.15 x memory, {name(sc)}", f"{r:.2f}x", r <= 1.15)
    if "floor" in targets and ratio("floor", "mem", sc, 1) is not None:
        r = ratio("floor", "mem", sc, 1)
        add(f"(bound) the floor's CPU/msg (+ redis-server) <= 1.15 x memory, {name(sc)}", f"{r:.2f}x", r <= 1.15)
    if "noverify" in targets and ratio("mem", "noverify", sc, 0) is not None:
        r = ratio("mem", "noverify", sc, 0)
        add(f"verification costs <= 10% of throughput, {name(sc)}", f"{(1 - r) * 100:.0f}%", r >= 0.9)
sc = "10KiB:8:0"
if "peer" in targets and ratio("mem", "peer", sc, 0) is not None:
    r = ratio("mem", "peer", sc, 0)
    add(f"memory msgs/s >= 1.1 x Inbucket, {name(sc)}", f"{r:.2f}x", r >= 1.1)
if "redis" in targets and ratio("redis", "mem", sc, 0) is not None:
    r = ratio("redis", "mem", sc, 0)
    add(f"Redis msgs/s >= 0.85 x memory, {name(sc)}", f"{r:.2f}x", r >= 0.85)
if "floor" in targets and ratio("floor", "mem", sc, 0) is not None:
    r = ratio("floor", "mem", sc, 0)
    add(f"(bound) the floor's msgs/s >= 0.85 x memory, {name(sc)}", f"{r:.2f}x", r >= 0.85)
for sc in scenarios:
    if sc.startswith("100KiB") and "redis" in targets:
        p = med([r[2] for r in runs[("redis", sc)]])
        if p is not None:
            add(f"Redis DATA->250 p99 < 10 ms, {name(sc)}", f"{p:.2f} ms", p < 10)
if checks:
    print("| target | measured | |")
    print("|---|---:|---|")
    print("\n".join(checks))
EOF

if [[ -n ${PROFILE_DIR:-} ]]; then
	mkdir -p "$PROFILE_DIR"
	read -ra profile_load <<<"$PROFILE_LOAD"
	for t in mem redis; do
		log "profiling ${title[$t]} for ${PROFILE_SECONDS}s under $PROFILE_LOAD"
		curl -sS -o "$PROFILE_DIR/$t.pprof" "http://${pprof[$t]}/debug/pprof/profile?seconds=$PROFILE_SECONDS" &
		prof=$!
		"$load" -addr "${addr[$t]}" -duration "$((PROFILE_SECONDS + 2))s" "${profile_load[@]}" >&2 || true
		wait "$prof"
		go tool pprof -top -nodecount 40 "$mayfly" "$PROFILE_DIR/$t.pprof" >"$PROFILE_DIR/$t.top" 2>/dev/null || true
	done
	log "profiles in $PROFILE_DIR"
fi
exit "$failed"
