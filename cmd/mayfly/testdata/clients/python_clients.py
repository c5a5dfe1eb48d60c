"""Reads an inbox over IMAP and POP3 and sends a reply over submission with Python's
standard library, each upgraded with STARTTLS and verifying against a CA file.

Usage: python3 python_clients.py HOST IMAP_PORT POP3_PORT SUBMISSION_PORT USER PASS CA_FILE RCPT
Prints the Subject of every message read over IMAP, a line "--- POP3", then the same
over POP3.
"""
import email
import imaplib
import poplib
import smtplib
import ssl
import sys

host, imap_port, pop3_port, sub_port, user, password, ca_file, rcpt = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca_file)

imap = imaplib.IMAP4(host, int(imap_port), timeout=60)
imap.starttls(ssl_context=ctx)
imap.login(user, password)
typ, data = imap.select("INBOX", readonly=True)
assert typ == "OK", data
typ, data = imap.fetch("1:*", "(BODY.PEEK[])")
assert typ == "OK", data
for part in data:
    if isinstance(part, tuple):
        print("Subject: " + str(email.message_from_bytes(part[1])["Subject"]))
imap.logout()

print("--- POP3")
pop = poplib.POP3(host, int(pop3_port), timeout=60)
pop.stls(context=ctx)
pop.user(user)
pop.pass_(password)
count, _ = pop.stat()
for i in range(1, count + 1):
    _, lines, _ = pop.retr(i)
    print("Subject: " + str(email.message_from_bytes(b"\r\n".join(lines))["Subject"]))
pop.quit()

with smtplib.SMTP(host, int(sub_port), timeout=60) as smtp:
    smtp.starttls(context=ctx)
    smtp.login(user, password)
    smtp.sendmail(user, [rcpt], (
        f"From: {user}\r\nTo: {rcpt}\r\nSubject: Re: Message 2\r\n"
        "In-Reply-To: <m2@sender.test>\r\n\r\nReplied with Python smtplib.\r\n"
    ).encode())
