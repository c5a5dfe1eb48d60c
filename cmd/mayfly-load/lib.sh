# lib.sh: what receive.sh, redisstat.sh and bench.sh share. Sourced, not run.
#
# Sourcing it makes tmp, a scratch directory, and pids, where the script adds each
# process it starts: on exit, interrupted too, every one is stopped and tmp removed.
tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
# Without these an interrupted script would skip the EXIT trap and leave servers running.
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '%s\n' "$*" >&2; }

# free_port prints a loopback port nobody listens on. Another process may take it before
# the caller binds it.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port NAME PID PORT LOG waits until PORT accepts a connection, failing when PID
# exits or after 10 s, with the end of LOG (NAME's output).
wait_port() {
	local name=$1 pid=$2 port=$3 out=$4 i
	for i in $(seq 200); do
		if ! kill -0 "$pid" 2>/dev/null; then
			printf '%s exited: %s\n' "$name" "$(tail -5 "$out")" >&2
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.05 # polling a server that is starting, bounded by the loop
	done
	printf '%s did not listen on %s within 10s: %s\n' "$name" "$port" "$(tail -5 "$out")" >&2
	return 1
}

# cpu_ticks PID prints utime+stime of PID in clock ticks (proc(5); after the ") " that
# ends the command name, utime and stime are fields 12 and 13).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
