// Verifies captured webhook deliveries with the official SDK's `verifyWebhook`.
// stdin: JSON `[{headers: {name: value}, body: "<raw>", secret: "…"}]`.
// stdout: JSON `[{ok, error?, type?, sessionId?, eventId?, dedupeId?, deliveryId?, tampered}]`,
// where `tampered` is whether the same delivery with one changed body byte is refused (it must
// be: a verifier that accepts anything would prove nothing).
import { verifyWebhook } from "@opencomputer/sdk";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (c) => (text += c));
  process.stdin.on("end", () => resolve(text));
}));

const out = [];
for (const d of input) {
  const r = { ok: false };
  try {
    const v = await verifyWebhook(d.body, d.headers, d.secret);
    Object.assign(r, {
      ok: true, type: v.type, sessionId: v.sessionId, eventId: v.eventId,
      dedupeId: v.dedupeId, deliveryId: v.deliveryId,
    });
  } catch (e) {
    r.error = String(e && e.message ? e.message : e);
  }
  try {
    await verifyWebhook(d.body.replace(/}$/, " }"), d.headers, d.secret);
    r.tampered = false;
  } catch {
    r.tampered = true;
  }
  out.push(r);
}
process.stdout.write(JSON.stringify(out));
