// Checks deliveries a test receiver saved with the official Standard Webhooks library:
// node verify.mjs FILE, where FILE holds {"secret", "deliveries": [{"id", "timestamp",
// "signature", "body"}]}. Prints "verified N" or exits 1 naming the first that fails.
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const { secret, deliveries } = JSON.parse(readFileSync(process.argv[2], "utf8"));
const wh = new Webhook(secret);
for (const d of deliveries) {
  const headers = { "webhook-id": d.id, "webhook-timestamp": d.timestamp, "webhook-signature": d.signature };
  try {
    wh.verify(d.body, headers); // throws on a bad signature or a timestamp over 5 minutes off
  } catch (e) {
    console.error(`delivery ${d.id}: ${e.message}`);
    process.exit(1);
  }
}
console.log(`verified ${deliveries.length}`);
