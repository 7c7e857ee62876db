// Durability: SIGKILL the server during a stream of runtime appends, restart it on the same
// database, and show every acknowledged event present at its acknowledged seq with no gap in
// seq; re-sending the unacknowledged batches appends nothing twice. Runs on the database of
// SEALPOD_TEST_DATABASE_URL (SQLite by default, PostgreSQL in the second pass).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { OpenComputer } from "@opencomputer/sdk";
import { Harness } from "./lib/harness.mjs";

const h = new Harness();
before(async () => {
  await h.startCluster();
  await h.startServer();
});
after(async () => h.stop());

test("SIGKILL during appends loses no acknowledged event and leaves no gap", async () => {
  const oc = new OpenComputer({ apiKey: h.orgKeyA, baseUrl: h.baseUrl });
  const cred = await oc.credentials.create({ key: "sk-ant-durability" });
  const agent = await oc.agents.create({ name: "durable", prompt: "p", model: "anthropic/claude-sonnet-4-5", credential: cred.id });
  const s = await oc.sessions.create({ agent: agent.id, input: "go" });
  const token = h.runtimeToken("tenant-a", s.id);
  const acked = new Map(); // client_id -> seq
  const unacked = []; // batches sent without an answer
  let stop = false;
  const worker = async (w) => {
    for (let i = 0; !stop; i++) {
      const events = Array.from({ length: 5 }, (_, j) => {
        const id = `w${w}-b${i}-e${j}`;
        return { client_id: id, type: "agent.message", level: "progress", body: { text: id } };
      });
      try {
        const r = await fetch(`${h.runtimeUrl}/events`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ events }),
        });
        if (r.status !== 200) throw new Error(`status ${r.status}`);
        const body = await r.json();
        for (const e of body.events) acked.set(e.client_id, e.seq);
      } catch {
        unacked.push(events);
        return;
      }
    }
  };
  const workers = [0, 1, 2, 3].map(worker);
  const deadline = Date.now() + 20000;
  while (acked.size < 400 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.ok(acked.size >= 400, `only ${acked.size} events acknowledged before the kill`);
  await h.stopServer("SIGKILL");
  stop = true;
  await Promise.all(workers);
  await h.startServer();

  const seen = new Map();
  let after = 0;
  for (;;) {
    const page = await s.listEvents({ after, limit: 1000 });
    for (const e of page.data) seen.set(e.seq, e);
    if (!page.nextCursor) break;
    after = Number(page.nextCursor);
  }
  const seqs = [...seen.keys()].sort((a, b) => a - b);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), "no gap in seq");
  for (const [clientId, seq] of acked) {
    assert.equal(seen.get(seq)?.body?.text, clientId, `acknowledged ${clientId} at seq ${seq}`);
  }
  const head = seqs.length;
  assert.equal((await s.refresh()).snapshot.head, head);
  // Re-sending what was in flight is idempotent: events stored before the kill come back with
  // their seq, the rest are appended once.
  for (const events of unacked) {
    const r = await h.runtime(token, "POST", "/events", { events });
    assert.equal(r.status, 200);
  }
  const texts = new Map();
  after = 0;
  for (;;) {
    const page = await s.listEvents({ after, limit: 1000 });
    for (const e of page.data) texts.set(e.body?.text, (texts.get(e.body?.text) ?? 0) + 1);
    if (!page.nextCursor) break;
    after = Number(page.nextCursor);
  }
  for (const [text, n] of texts) assert.equal(n, 1, `${text} stored once`);
  console.log(`# durability: ${acked.size} acknowledged before SIGKILL, head ${head} after restart, ${unacked.length} batches re-sent`);
});
