#!/bin/sh
# readparts.sh measures the HTML view of a many-part mail against a running Mayfly: it
# mails one message of an HTML body referring to 998 inline PNG images (cid:) and the
# 998 images, 6.8 KB each (9 MB in all, 1000 parts: the parser's bound), to a fresh
# inbox over SMTP, then reads its html route and its JSON three times each and prints,
# per request, the status, the size, the time and the server's CPU (utime+stime from
# /proc/PID/stat, in 10 ms ticks).
#
#	MAYFLY_HTTP=127.0.0.1:8025 MAYFLY_SMTP=127.0.0.1:2525 MAYFLY_PID=<pid> readparts.sh
#
# Needs curl and base64. The server wants -max-message-size above 9.5MB, e.g. 11MiB.
set -eu
: "${MAYFLY_HTTP:?}" "${MAYFLY_SMTP:?}" "${MAYFLY_PID:?}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
box=$(curl -sf -X POST "http://$MAYFLY_HTTP/api/v1/inboxes" -H 'Content-Type: application/json' -d '{}')
address=$(printf '%s' "$box" | sed 's/.*"address":"\([^"]*\)".*/\1/')
token=$(printf '%s' "$box" | sed 's/.*"token":"\([^"]*\)".*/\1/')
head -c 6800 /dev/urandom | base64 -w 76 | sed 's/$/\r/' >"$dir/image"
{
	printf 'From: a@sender.test\r\nTo: %s\r\nSubject: parts\r\nMIME-Version: 1.0\r\n' "$address"
	printf 'Content-Type: multipart/related; boundary=p\r\n\r\n--p\r\nContent-Type: text/html\r\n\r\n'
	seq 0 997 | sed 's/.*/<img src="cid:i&">/' | tr -d '\n'
	printf '\r\n'
	for i in $(seq 0 997); do
		printf -- '--p\r\nContent-Type: image/png\r\nContent-ID: <i%s>\r\nContent-Transfer-Encoding: base64\r\n\r\n' "$i"
		cat "$dir/image"
	done
	printf -- '--p--\r\n'
} >"$dir/mail.eml"
curl -sf "smtp://$MAYFLY_SMTP" --mail-from a@sender.test --mail-rcpt "$address" -T "$dir/mail.eml"
id=$(curl -sf -H "Authorization: Bearer $token" "http://$MAYFLY_HTTP/api/v1/inboxes/$address/messages" | sed 's/.*"id":"\([^"]*\)".*/\1/')
cpu() { awk '{print $14 + $15}' "/proc/$MAYFLY_PID/stat"; }
for route in /html /html /html "" "" ""; do
	before=$(cpu)
	curl -s -o /dev/null -w "${route:-json} %{http_code} %{size_download} bytes %{time_total} s" \
		-H "Authorization: Bearer $token" "http://$MAYFLY_HTTP/api/v1/inboxes/$address/messages/$id$route"
	echo " cpu $((($(cpu) - before) * 10)) ms"
done
