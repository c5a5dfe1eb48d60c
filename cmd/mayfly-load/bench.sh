#!/usr/bin/env bash
# bench.sh runs the mayfly-load matrix against Postfix's smtp-sink, which accepts and
# discards mail and so marks the ceiling of this machine, and against the Mayfly servers
# named in the environment, and prints a markdown table comparing them.
#
#   MAYFLY_MEM_ADDR=127.0.0.1:2525 MAYFLY_MEM_PID=1234 \
#   MAYFLY_REDIS_ADDR=127.0.0.1:2526 MAYFLY_REDIS_PID=1235 cmd/mayfly-load/bench.sh
#
# Environment:
#   MAYFLY_MEM_ADDR, MAYFLY_MEM_PID      Mayfly on the memory store; empty address: skipped
#   MAYFLY_REDIS_ADDR, MAYFLY_REDIS_PID  Mayfly on Redis; empty address: skipped. The PIDs
#                                        give the CPU ms/msg columns; they may be empty.
#   N          messages per run (default 5000 for 1KiB and 10KiB, 2000 for larger sizes)
#   SIZES      default "1KiB 10KiB 100KiB"
#   CONNS      concurrent sessions, default "1 8 32"
#   MODES      -per-conn values, default "1 0": a connection per message, one per session
#   SMTP_SINK  default /usr/sbin/smtp-sink (Debian package postfix; the postfix daemon is
#              never started)
#   LOAD_ARGS  more mayfly-load flags for every run, e.g. "-timeout 10s"
#
# The table goes to stdout, progress to stderr. The exit status is 1 when a run failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
SIZES=${SIZES:-1KiB 10KiB 100KiB}
CONNS=${CONNS:-1 8 32}
MODES=${MODES:-1 0}
SMTP_SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
read -ra load_args <<<"${LOAD_ARGS:-}"


log "building mayfly-load"
(cd "$repo" && go build -o "$tmp/mayfly-load" ./cmd/mayfly-load)
load=$tmp/mayfly-load
IFS=, read -ra columns <<<"$("$load" -csv-header)"


# start_sink starts smtp-sink on a free loopback port and sets sink_pid and sink_addr.
start_sink() {
	local user_args=() port try
	# smtp-sink refuses to run as root without dropping privileges.
	if [[ $EUID -eq 0 ]]; then user_args=(-u nobody); fi
	for try in 1 2 3; do
		port=$(free_port)
		"$SMTP_SINK" "${user_args[@]}" "127.0.0.1:$port" 1024 >"$tmp/smtp-sink.log" 2>&1 &
		sink_pid=$!
		pids+=("$sink_pid")
		if wait_port smtp-sink "$sink_pid" "$port" "$tmp/smtp-sink.log"; then
			sink_addr=127.0.0.1:$port
			return 0
		fi
		kill "$sink_pid" 2>/dev/null || true # exited (the port was taken) or never listened
		log "smtp-sink did not start on port $port (try $try)"
	done
	return 1
}

# measure ADDR PID SIZE CONNS MODE N runs mayfly-load once and fills the associative
# array res with the CSV columns by name; res[failed] is set when nothing usable came back.
declare -A res
measure() {
	local addr=$1 pid=$2 size=$3 conns=$4 mode=$5 n=$6 line values i
	local args=(-addr "$addr" -n "$n" -size "$size" -c "$conns" -per-conn "$mode" -csv "${load_args[@]}")
	if [[ -n $pid ]]; then args+=(-pid "$pid"); fi
	res=()
	# mayfly-load exits 1 when no message was accepted but still prints its line.
	line=$("$load" "${args[@]}" 2>"$tmp/load.err") || true
	if [[ -z $line ]]; then
		res[failed]="mayfly-load ${args[*]}: $(cat "$tmp/load.err")"
		return
	fi
	IFS=, read -ra values <<<"$line"
	for i in "${!columns[@]}"; do
		res[${columns[i]}]=${values[i]:-}
	done
	if [[ ${res[sent]} == 0 ]]; then
		res[failed]="mayfly-load ${args[*]}: no message accepted: ${res[error_codes]}"
	fi
}

# pct A B prints A as a percentage of B.
pct() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "-"
		else printf "%.0f%%", 100 * a / b
	}'
}

start_sink
log "smtp-sink (pid $sink_pid) on $sink_addr"

targets=(sink)
declare -A addr=([sink]=$sink_addr) pid=([sink]=) title=([sink]=sink)
if [[ -n ${MAYFLY_MEM_ADDR:-} ]]; then
	targets+=(mem)
	addr[mem]=$MAYFLY_MEM_ADDR pid[mem]=${MAYFLY_MEM_PID:-} title[mem]=mayfly-mem
fi
if [[ -n ${MAYFLY_REDIS_ADDR:-} ]]; then
	targets+=(redis)
	addr[redis]=$MAYFLY_REDIS_ADDR pid[redis]=${MAYFLY_REDIS_PID:-} title[redis]=mayfly-redis
fi

header="| size | conns | mode | sink msg/s"
rule="|---|---:|---|---:"
for t in "${targets[@]:1}"; do
	header+=" | ${title[$t]} msg/s | % of sink"
	rule+="|---:|---:"
done
for t in "${targets[@]}"; do
	header+=" | ${title[$t]} p99 ms"
	rule+="|---:"
done
for t in "${targets[@]:1}"; do
	header+=" | ${title[$t]} CPU ms/msg"
	rule+="|---:"
done

rows=()
notes=()
failed=0
for size in $SIZES; do
	n=${N:-}
	if [[ -z $n ]]; then
		case $size in
		1KiB | 1KB | 10KiB | 10KB) n=5000 ;;
		*) n=2000 ;;
		esac
	fi
	for conns in $CONNS; do
		for mode in $MODES; do
			case $mode in
			0) mode_name="conn kept" ;;
			1) mode_name="conn per msg" ;;
			*) mode_name="$mode msgs/conn" ;;
			esac
			declare -A rate=() p99=() cpu=()
			for t in "${targets[@]}"; do
				log "$size x $n, $conns sessions, $mode_name: ${title[$t]} (${addr[$t]})"
				measure "${addr[$t]}" "${pid[$t]}" "$size" "$conns" "$mode" "$n"
				if [[ -n ${res[failed]:-} ]]; then
					notes+=("- $size, $conns conns, $mode_name, ${title[$t]}: ${res[failed]}")
					failed=1
					rate[$t]=failed p99[$t]=- cpu[$t]=-
					continue
				fi
				rate[$t]=${res[msg_per_s]} p99[$t]=${res[p99_ms]} cpu[$t]=${res[server_cpu_ms_per_msg]:--}
				if [[ ${res[errors]} != 0 ]]; then
					notes+=("- $size, $conns conns, $mode_name, ${title[$t]}: ${res[errors]} errors (${res[error_codes]})")
					rate[$t]+=" (${res[errors]} err)"
				fi
			done
			row="| $size | $conns | $mode_name | ${rate[sink]}"
			for t in "${targets[@]:1}"; do
				row+=" | ${rate[$t]} | $(pct "${rate[$t]%% *}" "${rate[sink]%% *}")"
			done
			for t in "${targets[@]}"; do
				row+=" | ${p99[$t]}"
			done
			for t in "${targets[@]:1}"; do
				row+=" | ${cpu[$t]}"
			done
			rows+=("$row")
		done
	done
done

echo "mayfly-load against smtp-sink$(for t in "${targets[@]:1}"; do printf ', %s (%s)' "${title[$t]}" "${addr[$t]}"; done)"
echo "on $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ); N=${N:-5000 for 1/10 KiB, 2000 for 100 KiB}."
echo "p99 is end of DATA to reply; CPU is the server's, from /proc/PID/stat (10 ms ticks)."
echo
echo "$header |"
echo "$rule|"
for row in "${rows[@]}"; do
	echo "$row |"
done
if ((${#notes[@]})); then
	echo
	printf '%s\n' "${notes[@]}"
fi
exit "$failed"
