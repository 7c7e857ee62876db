// Webhooks through the official @opencomputer/sdk@0.12.4 against the real sealpod-api-server
// binary (insecure opt-in on, short retry schedule): inline and managed destinations, every
// signed delivery verified by the SDK's verifyWebhook, an unsigned one without a signature,
// dead letter then redelivery, and a SIGKILL of the server mid-retry that loses nothing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { OpenComputer, verifyWebhook } from "@opencomputer/sdk";
import { Harness } from "./lib/harness.mjs";

const h = new Harness();
const env = {
  SEALPOD_WEBHOOKS_ALLOW_INSECURE: "true",
  SEALPOD_WEBHOOKS_RETRY_SCHEDULE: "300ms",
  SEALPOD_WEBHOOKS_MAX_ATTEMPTS: "3",
  SEALPOD_WEBHOOKS_POLL: "50ms",
};
let oc, receiver, base;
const got = [];
const failAll = new Set();

before(async () => {
  await h.startCluster();
  await h.startServer(env);
  oc = new OpenComputer({ apiKey: h.orgKeyA, baseUrl: h.baseUrl });
  receiver = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      got.push({ path: req.url, headers: req.headers, body });
      res.statusCode = failAll.has(req.url) ? 503 : 200;
      res.end("ok");
    });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${receiver.address().port}`;
});

after(async () => {
  receiver?.close();
  await h.stop();
});

const uniq = (p) => `${p}-${Math.random().toString(36).slice(2, 8)}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function newSession(extra = {}) {
  const cred = await oc.credentials.create({ provider: "anthropic", key: "sk-ant-conformance-0001", name: uniq("c") });
  const agent = await oc.agents.create({ name: uniq("agent"), prompt: "p", model: "anthropic/claude-sonnet-4-5", credential: cred.id });
  return oc.sessions.create({ agent: agent.id, input: "hello", ...extra });
}

const at = (path) => got.filter((g) => g.path === path);

test("the server's own listeners are never a destination, on the ports it bound", async () => {
  // The harness starts the server on port 0: the ports it refuses are the ones it bound.
  for (const port of [h.port, h.runtimePort, h.adminPort]) {
    await assert.rejects(newSession({ webhook: `http://127.0.0.1:${port}/hook` }),
      (e) => e.status === 400 && e.param === "webhook" && /own listeners/.test(e.message));
  }
});

test("deliveries verify with verifyWebhook; unsigned destinations send no signature", async () => {
  const inline = `/inline-${uniq("s")}`;
  const signed = `/signed-${uniq("s")}`;
  const s = await newSession({ webhook: base + inline, metadata: { owner: "acme", pullNumber: 42 } });
  const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const d = await s.destinations.create({ url: base + signed, secret, level: "progress", types: ["turn.*"] });
  assert.equal(d.has_secret ?? d.hasSecret, true);
  assert.equal(JSON.stringify(d).includes(secret), false);
  const listed = await s.destinations.list();
  assert.equal(listed.length, 2);
  await h.runTurn("tenant-a", s.id, "answer");
  // inline (user): user.message, agent.message, turn.completed; signed (progress, turn.*): 2.
  await until("5 delivered", async () => {
    const all = await s.deliveries.list();
    return all.length === 5 && all.every((x) => x.status === "delivered");
  });
  assert.equal(at(inline).length, 3);
  assert.equal(at(signed).length, 2);
  for (const g of at(inline)) {
    assert.equal(g.headers["webhook-signature"], undefined);
    const body = JSON.parse(g.body);
    assert.deepEqual(body.metadata, { owner: "acme", pullNumber: 42 });
    assert.equal(body.eventId, g.headers["webhook-id"]);
  }
  for (const g of at(signed)) {
    const v = await verifyWebhook(g.body, g.headers, secret);
    assert.equal(v.sessionId, s.id);
    assert.equal(v.dedupeId, g.headers["webhook-id"]);
    assert.equal(v.deliveryId, g.headers["x-oc-delivery-id"]);
    assert.match(v.type, /^turn\./);
    await assert.rejects(verifyWebhook(g.body, g.headers, "whsec_d3Jvbmc="));
  }
});

test("dead letter after the configured attempts, then redeliver keeps the webhook-id", async () => {
  const path = `/dead-${uniq("s")}`;
  failAll.add(path);
  const s = await newSession();
  await s.destinations.create({ url: base + path, types: ["user.message"] });
  await s.steer("ping");
  const [dl] = await until("dead_letter", async () => {
    const all = await s.deliveries.list({ status: "dead_letter" });
    return all.length === 1 && all;
  });
  assert.equal(dl.attempts, 3);
  failAll.delete(path);
  await s.deliveries.redeliver(dl.id);
  await until("delivered", async () => (await s.deliveries.get(dl.id)).status === "delivered");
  const ids = new Set(at(path).map((g) => g.headers["webhook-id"]));
  assert.equal(at(path).length, 4);
  assert.equal(ids.size, 1);
});

test("a SIGKILL of the server mid-retry loses no delivery", async () => {
  const path = `/restart-${uniq("s")}`;
  failAll.add(path);
  const s = await newSession();
  await s.destinations.create({ url: base + path, types: ["user.message"] });
  await s.steer("ping");
  await until("a failed attempt", async () => (await s.deliveries.list({ status: "failed" })).length === 1);
  await h.stopServer("SIGKILL");
  failAll.delete(path);
  await h.startServer(env);
  const [d] = await until("delivered after the restart", async () => {
    const all = await s.deliveries.list({ status: "delivered" });
    return all.length === 1 && all;
  });
  assert.ok(d.attempts >= 2, `attempts ${d.attempts}`);
  assert.equal(new Set(at(path).map((g) => g.headers["webhook-id"])).size, 1);
});
