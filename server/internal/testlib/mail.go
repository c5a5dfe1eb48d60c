package testlib

// MultipartMail is a message as the receiver's tests send it: encoded words in From
// and Subject, two recipients, a text part with lines that start with dots and a
// base64 attachment.
const MultipartMail = "From: =?UTF-8?Q?Zo=C3=A9?= <zoe@sender.test>\r\n" +
	"To: a@mayfly.test, \"Bee\" <b+news@mayfly.test>\r\n" +
	"Subject: =?ISO-8859-1?Q?Caf=E9_au_lait?=\r\n" +
	"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=XX\r\n" +
	"\r\n" +
	"--XX\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hello.\r\n" +
	".a line that starts with a dot\r\n" +
	"..and one with two\r\n" +
	"--XX\r\n" +
	"Content-Type: application/pdf; name=\"invoice.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQK\r\n" +
	"--XX--\r\n"
