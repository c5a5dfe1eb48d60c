#!/bin/sh
# readmem.sh measures the HTTP read path's memory against a running Mayfly: it mails
# one worst-case message (a text/html body of N bytes of "<", in 998-byte lines: one
# text token to an HTML tokenizer, six bytes each once JSON-escaped) to a fresh inbox
# over SMTP, reads it C times at once from one client through the message route (the
# parsed JSON), and prints each answer's status and size, then the server's peak
# resident size (VmHWM) from /proc/PID/status.
#
#	MAYFLY_HTTP=127.0.0.1:8025 MAYFLY_SMTP=127.0.0.1:2525 MAYFLY_PID=<pid> [N=10485000] [C=16] readmem.sh
#
# Needs curl (it speaks SMTP too). The server wants -max-message-size above N plus a
# header, e.g. 11MiB.
set -eu
: "${MAYFLY_HTTP:?}" "${MAYFLY_SMTP:?}" "${MAYFLY_PID:?}"
N=${N:-10485000}
C=${C:-16}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
box=$(curl -sf -X POST "http://$MAYFLY_HTTP/api/v1/inboxes" -H 'Content-Type: application/json' -d '{}')
address=$(printf '%s' "$box" | sed 's/.*"address":"\([^"]*\)".*/\1/')
token=$(printf '%s' "$box" | sed 's/.*"token":"\([^"]*\)".*/\1/')
{
	printf 'From: a@sender.test\r\nTo: %s\r\nSubject: lt\r\nContent-Type: text/html\r\n\r\n' "$address"
	line=$(printf '%998s' '' | tr ' ' '<')
	i=0
	while [ $((i * 1000)) -lt "$N" ]; do printf '%s\r\n' "$line"; i=$((i + 1)); done
} >"$dir/mail.eml"
curl -sf "smtp://$MAYFLY_SMTP" --mail-from a@sender.test --mail-rcpt "$address" -T "$dir/mail.eml"
id=$(curl -sf -H "Authorization: Bearer $token" "http://$MAYFLY_HTTP/api/v1/inboxes/$address/messages" | sed 's/.*"id":"\([^"]*\)".*/\1/')
grep VmHWM "/proc/$MAYFLY_PID/status" | sed 's/^/before the reads: /'
seq "$C" | xargs -P "$C" -I{} curl -s -o /dev/null -w '%{http_code} %{size_download}\n' \
	-H "Authorization: Bearer $token" "http://$MAYFLY_HTTP/api/v1/inboxes/$address/messages/$id" | sort | uniq -c
grep VmHWM "/proc/$MAYFLY_PID/status" | sed 's/^/after the reads:  /'
