// Secret scan: drive the API with recognisable fake keys, then look for them in every response
// body, every log line of the server, every custom resource, every Secret (decoded), every
// ConfigMap and the metrics. The org key and client tokens must not be logged either. A
// positive control proves the scanner finds what it looks for.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { OpenComputer, connectSession } from "@opencomputer/sdk";
import { Harness } from "./lib/harness.mjs";

const h = new Harness();
before(async () => {
  await h.startCluster();
  await h.startServer({ SEALPOD_LOG: "debug" });
});
after(async () => h.stop());

const marker = `SCANME${Math.random().toString(36).slice(2, 10)}`;
// Anthropic-shaped and OpenAI-shaped keys (`sk-proj-…` of a credential, `sk-…` inline on a
// `codex` agent).
const keys = [
  `sk-ant-${marker}-first-KEY1`, `sk-ant-${marker}-inline-KEY2`, `sk-ant-${marker}-rotated-KEY3`,
  `sk-proj-${marker}-openai-KEY4`, `sk-${marker}-codex-inline-KEY5`,
];

test("no fake key appears in responses, logs, objects, Secrets or metrics", async () => {
  const bodies = [];
  const requests = [];
  const recording = async (url, init) => {
    if (init?.body) requests.push(String(init.body));
    const res = await fetch(url, init);
    if (!(res.headers.get("content-type") ?? "").includes("event-stream")) bodies.push(await res.clone().text());
    return res;
  };
  const oc = new OpenComputer({ apiKey: h.orgKeyA, baseUrl: h.baseUrl, fetch: recording });
  const cred = await oc.credentials.create({ key: keys[0], name: "scan", isDefault: true });
  await oc.credentials.rotate(cred.id, keys[2]);
  const agent = await oc.agents.create({ name: "scan", prompt: "p", model: "anthropic/claude-sonnet-4-5", key: keys[1] });
  await oc.agents.get(agent.id);
  await oc.agents.list();
  await oc.credentials.list();
  await oc.credentials.create({ provider: "openai", key: keys[3], name: "scan-openai", isDefault: true });
  const codex = await oc.agents.create({ name: "scan-codex", prompt: "p", model: "openai/gpt-5", runtime: "codex", key: keys[4] });
  const cs = await oc.sessions.create({ agent: codex.id, input: "hello codex" });
  await h.runTurn("tenant-a", cs.id, "codex answer");
  const s = await oc.sessions.create({ agent: agent.id, input: "hello", metadata: { ok: true } });
  await h.runTurn("tenant-a", s.id, "answer");
  await s.steer("more");
  await s.listEvents();
  await s.result();
  await s.turns();
  const client = await connectSession({ sessionId: s.id, clientToken: s.clientToken, baseUrl: h.baseUrl, fetch: recording });
  await client.messages();
  const ac = new AbortController();
  for await (const ev of client.events({ signal: ac.signal })) if (ev.seq >= 3) ac.abort();
  await s.archive();
  bodies.push(await (await fetch(`http://127.0.0.1:${h.adminPort}/metrics`)).text());
  await new Promise((r) => setTimeout(r, 500)); // let status mirroring and logs settle

  const objects = h.kubectl(["get", "agents,sessions,credentials,configmaps", "-A", "-o", "json"]);
  const secrets = JSON.parse(h.kubectl(["get", "secrets", "-A", "-o", "json"]));
  const decoded = secrets.items.flatMap((sec) =>
    Object.entries(sec.data ?? {}).map(([k, v]) => `${sec.metadata.namespace}/${sec.metadata.name}/${k}=${Buffer.from(v, "base64").toString("utf8")}`));
  const logs = h.logs.api.join("");
  assert.ok(logs.split("\n").filter(Boolean).every((l) => { try { JSON.parse(l); return true; } catch { return false; } }), "JSON logs");
  assert.ok(logs.includes("request_id"), "logs carry the request id");

  const places = { responses: bodies.join("\n"), logs, objects, secrets: decoded.join("\n") };
  // Positive control: the requests we sent do contain the keys.
  assert.ok(requests.join("\n").includes(keys[0]), "the scanner sees a key where one is");
  for (const key of keys) {
    for (const [where, text] of Object.entries(places)) {
      assert.equal(text.includes(key), false, `${key} found in ${where}`);
      assert.equal(text.includes(marker), false, `marker found in ${where}`);
    }
  }
  for (const token of [h.orgKeyA, s.clientToken]) assert.equal(logs.includes(token), false, "no token in logs");
  // The sealed values live in the Credentials, as ciphertext only; no Secret holds one.
  assert.ok(objects.includes('"sealedValue": "spseal1.'), "sealed values are stored in the Credentials");
  assert.equal(decoded.some((d) => d.includes("/sealed=")), false, "no sealed-value Secret");
});
