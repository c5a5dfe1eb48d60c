// Lists and fetches a whole inbox with imapflow, as a Node.js app would: STARTTLS
// when offered, the certificate checked against NODE_EXTRA_CA_CERTS.
// Usage: node imapflow.mjs HOST PORT USER PASS; prints "fetched N" and N subjects.
import { ImapFlow } from 'imapflow';

const [host, port, user, pass] = process.argv.slice(2);
const client = new ImapFlow({ host, port: Number(port), secure: false, auth: { user, pass }, logger: false });
await client.connect();
const lock = await client.getMailboxLock('INBOX');
let n = 0;
const subjects = [];
try {
  for await (const msg of client.fetch('1:*', { envelope: true, source: true })) {
    if (!msg.source || msg.source.length === 0) throw new Error(`message ${msg.seq} has no source`);
    subjects.push(msg.envelope.subject);
    n++;
  }
} finally {
  lock.release();
}
await client.logout();
console.log(`fetched ${n}`);
for (const s of subjects) console.log(s);
