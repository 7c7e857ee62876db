// The official @opencomputer/sdk@0.12.4, unchanged, against sealpod-api-server over devcluster.
// Turn scenarios append their events through the runtime API from the test, as a runtime would.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  OpenComputer, connectSession, AuthError, NotFoundError, ConflictError, ValidationError, OpenComputerError,
} from "@opencomputer/sdk";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Harness } from "./lib/harness.mjs";
import { zipOf } from "./lib/zip.mjs";

const h = new Harness();
let oc, ocB;

before(async () => {
  await h.startCluster();
  await h.startServer();
  oc = new OpenComputer({ apiKey: h.orgKeyA, baseUrl: h.baseUrl });
  ocB = new OpenComputer({ apiKey: h.orgKeyB, baseUrl: h.baseUrl });
});

after(async () => {
  await h.stop();
});

const uniq = (p) => `${p}-${Math.random().toString(36).slice(2, 8)}`;

// The runtimes whose turn scenarios run: each with its provider's credential and model.
const RUNTIMES = [
  { runtime: "claude", provider: "anthropic", model: "anthropic/claude-sonnet-4-5", key: "sk-ant-conformance-0001" },
  { runtime: "codex", provider: "openai", model: "openai/gpt-5", key: "sk-proj-conformance-0001" },
];

async function newAgent(extra = {}, rt = RUNTIMES[0]) {
  const cred = await oc.credentials.create({ provider: rt.provider, key: rt.key, name: uniq("c") });
  return oc.agents.create({ name: uniq("agent"), prompt: "be brief", model: rt.model, runtime: rt.runtime, credential: cred.id, ...extra });
}

async function collect(iter, n, ms = 15000) {
  const out = [];
  const timer = setTimeout(() => {}, ms);
  for await (const ev of iter) {
    out.push(ev);
    if (out.length >= n) break;
  }
  clearTimeout(timer);
  return out;
}

test("agents: create is idempotent by name, get, list, update bumps the revision", async () => {
  const name = uniq("reviewer");
  const cred = await oc.credentials.create({ key: "sk-ant-agent-key-1234", name: "agent-cred" });
  const params = { name, prompt: "review PRs", model: "anthropic/claude-sonnet-4-5", credential: cred.id, limits: { turns: 4 } };
  const a = await oc.agents.create(params);
  assert.match(a.id, /^agt_/);
  assert.equal(a.name, name);
  assert.equal(a.revision, 1);
  assert.equal(a.activeRevision.number, 1);
  assert.equal(a.credentialId, cred.id);
  assert.equal(a.limits.turns, 4);
  const again = await oc.agents.create(params);
  assert.equal(again.id, a.id);
  await assert.rejects(oc.agents.create({ ...params, prompt: "something else" }), ConflictError);
  assert.equal((await oc.agents.get(a.id)).name, name);
  const listed = await oc.agents.list();
  assert.ok(listed.data.some((x) => x.id === a.id));
  const updated = await oc.agents.update(a.id, { prompt: "review PRs carefully" });
  assert.equal(updated.revision, 2);
  assert.notEqual(updated.promptHash, a.promptHash);
  await assert.rejects(oc.agents.create({ name: uniq("bad"), prompt: "x", model: "openai/gpt-5", runtime: "claude" }), (e) => e instanceof OpenComputerError && e.status === 400 && e.type === "invalid");
  // Another tenant cannot see it.
  await assert.rejects(ocB.agents.get(a.id), NotFoundError);
});

test("credentials: create, list, rotate, default, delete; the key never comes back", async () => {
  const c = await oc.credentials.create({ provider: "anthropic", key: "sk-ant-secret-ABCD", name: "prod" });
  assert.match(c.id, /^cred_/);
  assert.equal(c.last4, "ABCD");
  assert.equal(JSON.stringify(c).includes("sk-ant-secret"), false);
  const listed = await oc.credentials.list();
  assert.ok(listed.some((x) => x.id === c.id));
  const rotated = await oc.credentials.rotate(c.id, "sk-ant-secret-WXYZ");
  assert.equal(rotated.last4, "WXYZ");
  await oc.credentials.setDefault({ credential: c.id });
  const afterDefault = await oc.credentials.list();
  assert.equal(afterDefault.find((x) => x.id === c.id).isDefault, true);
  assert.equal(await oc.credentials.delete(c.id), undefined);
  await assert.rejects(oc.credentials.delete(c.id), NotFoundError);
});

test("sessions: create with metadata and key, get, list, get-or-create, idempotency key", async () => {
  const agent = await newAgent();
  const key = uniq("pr");
  const s = await oc.sessions.create({ agent: agent.id, input: "hello", key, metadata: { pullNumber: 42, nested: { a_b: 1 } }, limits: { turns: 3 } });
  assert.match(s.id, /^ses_/);
  assert.equal(s.status, "queued");
  assert.equal(s.snapshot.head, 1);
  assert.deepEqual(s.metadata, { pullNumber: 42, nested: { a_b: 1 } });
  assert.ok(s.clientToken);
  const same = await oc.sessions.create({ agent: agent.id, input: "hello", key, metadata: { pullNumber: 42, nested: { a_b: 1 } }, limits: { turns: 3 } });
  assert.equal(same.id, s.id);
  await assert.rejects(oc.sessions.create({ agent: agent.id, input: "different", key }), ConflictError);
  const idem = uniq("idem");
  const i1 = await oc.sessions.create({ agent: agent.id, input: "x", idempotencyKey: idem });
  const i2 = await oc.sessions.create({ agent: agent.id, input: "x", idempotencyKey: idem });
  assert.equal(i1.id, i2.id);
  const got = await oc.sessions.get(s.id);
  assert.equal(got.snapshot.limits.turns, 3);
  const listed = await oc.sessions.list({ agent: agent.id });
  assert.ok(listed.data.some((x) => x.id === s.id));
  const byKey = await oc.sessions.list({ key });
  assert.deepEqual(byKey.data.map((x) => x.id), [s.id]);
  await assert.rejects(ocB.sessions.get(s.id), NotFoundError);
});

test("sessions: credential resolution answers 422 no_credential / managed_unavailable", async () => {
  const managed = await oc.agents.create({ name: uniq("managed"), prompt: "x", model: "anthropic/claude-sonnet-4-5", credential: "managed" });
  await assert.rejects(oc.sessions.create({ agent: managed.id, input: "hi" }), (e) => e instanceof ValidationError && e.type === "managed_unavailable");
  const other = new OpenComputer({ apiKey: h.orgKeyB, baseUrl: h.baseUrl });
  const plain = await other.agents.create({ name: uniq("plain"), prompt: "x", model: "openai/gpt-5", runtime: "codex" });
  await assert.rejects(other.sessions.create({ agent: plain.id, input: "hi" }), (e) => e instanceof ValidationError && e.type === "no_credential");
});

for (const rt of RUNTIMES) test(`events: pages, filters and pagination (${rt.runtime})`, async () => {
  const agent = await newAgent({}, rt);
  const s = await oc.sessions.create({ agent: agent.id, input: "start" });
  assert.deepEqual([s.snapshot.agentSnapshot?.model, s.snapshot.agentSnapshot?.runtime], [rt.model, rt.runtime]);
  await h.runTurn("tenant-a", s.id, "first answer");
  await s.steer("again");
  await h.runTurn("tenant-a", s.id, "second answer");
  const all = await s.listEvents();
  const seqs = all.data.map((e) => e.seq);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1));
  assert.equal(all.data[0].type, "user.message");
  assert.equal(all.data[0].body.text, "start");
  const user = await s.listEvents({ level: "user" });
  assert.ok(user.data.every((e) => e.level === "user"));
  const turns = await s.listEvents({ type: "turn.*" });
  assert.ok(turns.data.length === 4 && turns.data.every((e) => e.type.startsWith("turn.")));
  const page1 = await s.listEvents({ limit: 3 });
  assert.equal(page1.data.length, 3);
  assert.equal(page1.nextCursor, "3");
  const page2 = await s.listEvents({ after: page1.nextCursor, limit: 3 });
  assert.equal(page2.data[0].seq, 4);
  const byTurn = await s.listEvents({ turnId: turns.data[0].body.turnId });
  assert.ok(byTurn.data.length >= 3 && byTurn.data.every((e) => e.turnId === turns.data[0].body.turnId));
  const one = await s.event(all.data[1].id);
  assert.equal(one.seq, 2);
  const messages = await s.messages();
  assert.deepEqual(messages.data.map((m) => m.type), ["user.message", "agent.message", "user.message", "agent.message"]);
  const result = await s.result();
  assert.equal(result.result.body.text, "second answer");
  assert.equal(result.lastTurn.yieldReason, "completed");
  const turnPage = await s.turns();
  assert.equal(turnPage.data.length, 2);
  assert.ok(turnPage.data[0].startedAt >= turnPage.data[1].startedAt);
  const t = await s.turn(turnPage.data[1].id);
  assert.equal(t.id, turnPage.data[1].id);
  const refreshed = await s.refresh();
  assert.equal(refreshed.status, "idle");
});

for (const rt of RUNTIMES) test(`events: a tool result over the body limit is truncated inline and whole through eventContent (${rt.runtime})`, async () => {
  const agent = await newAgent({}, rt);
  const s = await oc.sessions.create({ agent: agent.id, input: "read the log" });
  const token = h.runtimeToken("tenant-a", s.id);
  const turn = (await h.runtime(token, "POST", "/claim", { wait_seconds: 5 })).body;
  // 100,000 characters of output, over the default limit of 32 KiB.
  const output = Array.from({ length: 2000 }, (_, i) => `line ${String(i).padStart(5, "0")} ${"x".repeat(38)}`).join("\n");
  const big = { tool: "shell", command: "cat build.log", exit_code: 0, output };
  const appended = await h.runtime(token, "POST", "/events", {
    events: [
      { client_id: "big", type: "exec.completed", level: "progress", body: big, turn_id: turn.turn_id },
      { client_id: "small", type: "agent.message", level: "user", body: { text: "done" }, turn_id: turn.turn_id },
    ],
  });
  assert.equal(appended.status, 200);
  const [bigId, smallId] = appended.body.events.map((e) => e.id);
  const listed = (await s.listEvents({ type: "exec.completed" })).data[0];
  assert.equal(listed.id, bigId);
  assert.equal(listed.bodyTruncated, true);
  assert.equal(listed.bodyBytes, Buffer.byteLength(JSON.stringify(big)));
  assert.equal(listed.contentRef, `/sessions/${s.id}/events/${bigId}/content`);
  assert.ok(Buffer.byteLength(JSON.stringify(listed.body)) <= 32 * 1024, "the inline body fits the limit");
  assert.equal(listed.body.command, "cat build.log");
  assert.ok(listed.body.output.endsWith("…") && output.startsWith(listed.body.output.slice(0, -1)));
  // The whole body, once, through the content route: with the org key and with a read token.
  assert.deepEqual(JSON.parse(await s.eventContent(bigId)), big);
  const readTok = await s.mintClientToken({ scopes: ["read"], ttlSeconds: 120 });
  const reader = await connectSession({ sessionId: s.id, clientToken: readTok, baseUrl: h.baseUrl });
  assert.deepEqual(JSON.parse(await reader.eventContent(bigId)), big);
  // The same event on the SSE stream carries the truncated body too.
  const streamed = await collect(s.events({ after: listed.seq - 1, type: "exec.completed" }), 1);
  assert.deepEqual(streamed[0].body, listed.body);
  // An event under the limit is whole inline; its content is its body.
  const small = await s.event(smallId);
  assert.ok(!small.bodyTruncated && small.contentRef == null);
  assert.deepEqual(JSON.parse(await s.eventContent(smallId)), { text: "done" });
  await assert.rejects(s.eventContent("evt_doesnotexist"), NotFoundError);
  const steerTok = await s.mintClientToken({ scopes: ["steer"] });
  const steerer = await connectSession({ sessionId: s.id, clientToken: steerTok, baseUrl: h.baseUrl });
  await assert.rejects(steerer.eventContent(bigId), (e) => e instanceof AuthError && e.status === 403);
});

for (const rt of RUNTIMES) test(`SSE: replay, live tail, resume by after, type filter (${rt.runtime})`, async () => {
  const agent = await newAgent({}, rt);
  const s = await oc.sessions.create({ agent: agent.id, input: "stream me" });
  const ac = new AbortController();
  const got = [];
  const reader = (async () => {
    for await (const ev of s.events({ signal: ac.signal })) {
      got.push(ev);
      if (got.some((e) => e.type === "turn.completed")) ac.abort();
    }
  })();
  await h.runTurn("tenant-a", s.id, "live answer");
  await reader;
  assert.deepEqual(got.map((e) => e.seq), got.map((_, i) => i + 1));
  assert.equal(got[0].session, s.id);
  // Resume after a cursor: nothing before it, nothing missing after it.
  const ac2 = new AbortController();
  const resumed = [];
  for await (const ev of s.events({ after: 2, signal: ac2.signal })) {
    resumed.push(ev.seq);
    if (ev.seq === got.length) ac2.abort();
  }
  assert.deepEqual(resumed, got.slice(2).map((e) => e.seq));
  const ac3 = new AbortController();
  const typed = [];
  for await (const ev of s.events({ type: "turn.*", signal: ac3.signal })) {
    typed.push(ev.type);
    if (ev.type === "turn.completed") ac3.abort();
  }
  assert.deepEqual(typed, ["turn.started", "turn.completed"]);
});

for (const rt of RUNTIMES) test(`steer: idempotency per session; archived sessions refuse with 409 (${rt.runtime})`, async () => {
  const agent = await newAgent({}, rt);
  const s = await oc.sessions.create({ agent: agent.id, input: "hi" });
  const e1 = await s.steer("once", { idempotencyKey: "k1" });
  const e2 = await s.steer("once", { idempotencyKey: "k1" });
  assert.equal(e1.id, e2.id);
  assert.equal(e1.seq, 2);
  const s2 = await oc.sessions.create({ agent: agent.id, input: "hi" });
  const other = await s2.steer("once", { idempotencyKey: "k1" });
  assert.notEqual(other.id, e1.id);
  const archived = await s.archive();
  assert.equal(archived.status, "archived");
  await assert.rejects(s.steer("too late"), ConflictError);
  const events = await s.listEvents();
  assert.equal(events.data.length, 2);
});

test("client tokens: read and steer scopes, other sessions, archive revokes", async () => {
  const agent = await newAgent();
  const s = await oc.sessions.create({ agent: agent.id, input: "hi" });
  const other = await oc.sessions.create({ agent: agent.id, input: "hi" });
  const both = await connectSession({ sessionId: s.id, clientToken: s.clientToken, baseUrl: h.baseUrl });
  assert.equal((await both.listEvents()).data.length, 1);
  await both.steer("from the browser");
  const readTok = await s.mintClientToken({ scopes: ["read"], ttlSeconds: 120 });
  const reader = await connectSession({ sessionId: s.id, clientToken: readTok, baseUrl: h.baseUrl });
  assert.equal((await reader.messages()).data.length, 2);
  await assert.rejects(reader.steer("nope"), (e) => e instanceof AuthError && e.status === 403);
  const steerTok = await s.mintClientToken({ scopes: ["steer"] });
  const steerer = await connectSession({ sessionId: s.id, clientToken: steerTok, baseUrl: h.baseUrl });
  await steerer.steer("steer only");
  await assert.rejects(steerer.listEvents(), (e) => e instanceof AuthError && e.status === 403);
  const wrong = await connectSession({ sessionId: other.id, clientToken: readTok, baseUrl: h.baseUrl });
  await assert.rejects(wrong.listEvents(), NotFoundError);
  const asOrg = new OpenComputer({ apiKey: readTok, baseUrl: h.baseUrl });
  await assert.rejects(asOrg.sessions.get(s.id), AuthError);
  await assert.rejects(s.mintClientToken({ ttlSeconds: 5 }), (e) => e.status === 400 && e.param === "ttl");
  await s.archive();
  await assert.rejects(reader.listEvents(), (e) => e instanceof AuthError && e.status === 401);
});

for (const rt of RUNTIMES) test(`cancel: the runtime sees the signal and ends the turn canceled (${rt.runtime})`, async () => {
  const agent = await newAgent({}, rt);
  const s = await oc.sessions.create({ agent: agent.id, input: "long job" });
  const token = h.runtimeToken("tenant-a", s.id);
  const claim = await h.runtime(token, "POST", "/claim", { wait_seconds: 5 });
  assert.equal(claim.status, 200);
  const turnId = claim.body.turn_id;
  assert.equal((await s.refresh()).status, "running");
  const waiting = h.runtime(token, "GET", `/turns/${turnId}/signal?wait_seconds=10`);
  const canceled = await s.cancel();
  assert.equal(canceled.id, s.id);
  assert.deepEqual((await waiting).body, { cancel: true });
  const refused = await h.runtime(token, "POST", "/events", { events: [{ client_id: "late", type: "agent.message", level: "user", body: { text: "x" }, turn_id: turnId }] });
  assert.equal(refused.status, 409);
  assert.equal(refused.body.error.type, "turn_canceled");
  const done = await h.runtime(token, "POST", `/turns/${turnId}/complete`, { yield_reason: "canceled", usage: {} });
  assert.equal(done.body.yield_reason, "canceled");
  const after = await s.refresh();
  assert.equal(after.status, "idle");
  assert.equal(after.lastTurn.yieldReason, "canceled");
  // The runtime token of another session cannot touch this one; a forged one gets 401.
  const forged = await h.runtime(token.slice(0, -2) + "xx", "GET", "/session");
  assert.equal(forged.status, 401);
});

test("pagination: sessions list with cursor, newest first", async () => {
  const agent = await newAgent();
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await oc.sessions.create({ agent: agent.id, input: `n${i}` })).id);
  const seen = [];
  let cursor;
  for (;;) {
    const page = await oc.sessions.list({ agent: agent.id, limit: 2, cursor });
    seen.push(...page.data.map((x) => x.id));
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  assert.deepEqual(seen, ids.reverse());
});

test("schedules: create, list, get, update, fire, runs and delete, unchanged through the SDK", async () => {
  const cred = await oc.credentials.create({ provider: "anthropic", key: "sk-ant-conformance-0002", name: uniq("c") });
  const agent = await oc.agents.create({ name: uniq("agent"), prompt: "be brief", model: "anthropic/claude-sonnet-4-5", credential: cred.id });
  const schedules = oc.agents.schedules;
  // Bad input answers 400 naming the field.
  await assert.rejects(schedules.create(agent.id, { name: "bad", cron: "61 * * * *", input: "x" }), (e) => e.status === 400 && e.param === "cron");
  await assert.rejects(schedules.create(agent.id, { name: "bad", cron: "0 9 * * *", tz: "Mars/Olympus", input: "x" }), (e) => e.status === 400 && e.param === "tz");
  await assert.rejects(schedules.create(agent.id, { name: "bad", cron: "0 9 * * *", input: "x", overlap: "sometimes" }), (e) => e.status === 400 && e.param === "overlap");
  await assert.rejects(schedules.create("agt_doesnotexist", { name: "n", cron: "0 9 * * *", input: "x" }), NotFoundError);
  const { schedule } = await schedules.create(agent.id, { name: "nightly", cron: "30 2 * * *", tz: "America/New_York", input: "summarize the day" });
  assert.match(schedule.id, /^sch_/);
  assert.equal(schedule.agentId, agent.id);
  assert.equal(schedule.state, "active");
  assert.equal(schedule.overlap, "skip");
  assert.equal(schedule.tz, "America/New_York");
  assert.equal(schedule.consecutiveFailures, 0);
  assert.equal(schedule.lastFiredAt, null);
  assert.ok(Date.parse(schedule.nextFireAt) > Date.now());
  assert.equal(new Date(schedule.nextFireAt).getUTCMinutes(), 30);
  await assert.rejects(schedules.create(agent.id, { name: "nightly", cron: "0 9 * * *", input: "x" }), ConflictError);
  // The schedule is a Schedule object, visible to kubectl.
  const object = JSON.parse(h.kubectl(["-n", "tenant-a", "get", "schedule", schedule.id.replace("_", "-"), "-o", "json"]));
  assert.equal(object.spec.cron, "30 2 * * *");
  assert.equal((await schedules.list(agent.id)).schedules.map((s) => s.id).join(), schedule.id);
  assert.equal((await schedules.get(agent.id, schedule.id)).schedule.name, "nightly");
  const paused = (await schedules.update(agent.id, schedule.id, { paused: true, cron: "*/5 * * * *", tz: null })).schedule;
  assert.equal(paused.state, "paused");
  assert.equal(paused.cron, "*/5 * * * *");
  assert.equal(paused.tz, null);
  await assert.rejects(schedules.update(agent.id, schedule.id, { cron: "every day" }), (e) => e.status === 400 && e.param === "cron");
  // A test fire enacts at once even while paused: a normal session with the schedule's input.
  const { run } = await schedules.fire(agent.id, schedule.id);
  assert.equal(run.outcome, "enacted");
  assert.equal(run.scheduleId, schedule.id);
  assert.equal(run.scheduledFor, null);
  const session = await oc.sessions.get(run.sessionId);
  assert.equal(session.metadata.scheduleId ?? session.metadata.schedule_id, schedule.id);
  assert.equal((await session.listEvents()).data[0].body.text, "summarize the day");
  // A fire that cannot start its session is still 201, with outcome failed and the reason.
  await oc.credentials.delete(cred.id);
  const failed = (await schedules.fire(agent.id, schedule.id)).run;
  assert.equal(failed.outcome, "failed");
  assert.equal(failed.sessionId, null);
  assert.match(failed.error, /^no_credential: /);
  const history = await schedules.runs(agent.id, schedule.id, { limit: 1 });
  assert.deepEqual(history.runs.map((r) => r.id), [failed.id]);
  const rest = await schedules.runs(agent.id, schedule.id, { cursor: history.nextCursor });
  assert.deepEqual(rest.runs.map((r) => r.id), [run.id]);
  assert.ok(!rest.nextCursor);
  // Test fires neither count as failures nor advance the cron.
  assert.equal((await schedules.get(agent.id, schedule.id)).schedule.consecutiveFailures, 0);
  assert.equal(await schedules.delete(agent.id, schedule.id), undefined);
  await assert.rejects(schedules.get(agent.id, schedule.id), NotFoundError);
  await assert.rejects(ocB.agents.schedules.list(agent.id), NotFoundError);
});

/** The pinned configuration the session's runtime is given, and its Session object's skills. */
async function pinnedOf(sessionId) {
  const info = await h.runtime(h.runtimeToken("tenant-a", sessionId), "GET", "/session");
  assert.equal(info.status, 200);
  const object = JSON.parse(h.kubectl(["-n", "tenant-a", "get", "session", sessionId.replace("_", "-"), "-o", "json"]));
  const skills = object.spec.agentSnapshot.skills;
  let files = {};
  if (skills) {
    const map = JSON.parse(h.kubectl(["-n", "tenant-a", "get", "configmap", skills.configMap, "-o", "json"]));
    files = Object.fromEntries(skills.files.map((f) => [f.path, Buffer.from(map.binaryData[f.key], "base64").toString()]));
  }
  return { prompt: info.body.prompt, revision: object.spec.agentSnapshot.revision, files };
}

const SKILL_MD = "---\ndescription: Reads PDFs.\n---\nRun scripts/extract.sh.\n";

test("revisions: updates, inline deployments, staging, rollback and promote; sessions keep their revision", async () => {
  const agent = await newAgent({ prompt: "v1" });
  const revs = oc.agents.revisions;
  let listed = await revs.list(agent.id);
  assert.deepEqual(listed.data.map((r) => [r.number, r.active, r.prompt]), [[1, true, "v1"]]);
  assert.equal(listed.data[0].id, agent.activeRevisionId);
  assert.equal(listed.data[0].digest, agent.activeRevision.digest);

  const v2 = await oc.agents.update(agent.id, { prompt: "v2" });
  assert.equal(v2.revision, 2);
  assert.notEqual(v2.activeRevision.digest, agent.activeRevision.digest);

  // An inline deployment with skills; a retry with its key answers the same deployment.
  const files = [{ path: "pdf/SKILL.md", content: SKILL_MD }, { path: "pdf/scripts/extract.sh", content: "#!/bin/sh\necho text\n", mode: "0755" }];
  const params = { input: { type: "inline", prompt: "v3", model: agent.model, skills: files }, idempotencyKey: uniq("deploy"), clientContext: { ci: "run-1" } };
  const { deployment: d3 } = await oc.agents.deployments.create(agent.id, params);
  assert.match(d3.id, /^dep_/);
  assert.deepEqual([d3.state, d3.result, d3.active, d3.inputType], ["ready", "activated", true, "inline"]);
  assert.deepEqual(d3.clientContext, { ci: "run-1" });
  assert.equal((await oc.agents.deployments.create(agent.id, params)).deployment.id, d3.id);
  await assert.rejects(
    oc.agents.deployments.create(agent.id, { ...params, input: { ...params.input, prompt: "other" } }),
    (e) => e instanceof ConflictError && e.type === "idempotency_conflict",
  );
  const r3 = await revs.get(agent.id, d3.revisionId);
  assert.equal(r3.number, 3);
  assert.deepEqual(r3.files.map((f) => [f.path, f.mode]), [["pdf/SKILL.md", 0o444], ["pdf/scripts/extract.sh", 0o555]]);
  assert.match(r3.skillBundleDigest, /^sha256:/);
  assert.deepEqual(await revs.get(agent.id, 3), r3);
  const s3 = await oc.sessions.create({ agent: agent.id, input: "hi" });

  // Staged: made, not active. A refused deployment is recorded and activates nothing.
  const { deployment: d4 } = await oc.agents.deployments.create(agent.id, { input: { type: "inline", prompt: "v4" }, activate: false });
  assert.deepEqual([d4.state, d4.result, d4.active], ["ready", "staged", false]);
  const { deployment: bad } = await oc.agents.deployments.create(agent.id, { input: { type: "inline", prompt: "v5", skills: [{ path: "../escape/SKILL.md", content: "x" }] } });
  assert.deepEqual([bad.state, bad.errorClass, bad.error.type], ["failed", "validation", "invalid"]);
  assert.match(bad.error.message, /leaves its folder/);
  assert.equal(bad.revisionId, null);
  assert.equal((await oc.agents.get(agent.id)).revision, 3);
  const deployments = await oc.agents.deployments.list(agent.id);
  assert.deepEqual(deployments.data.map((d) => d.id), [bad.id, d4.id, d3.id]);
  assert.equal((await oc.agents.deployments.get(agent.id, bad.id)).state, "failed");

  // Rollback to 1: new sessions run it, the earlier one keeps 3; a session may pin 2.
  assert.deepEqual(await revs.activate(agent.id, 1), { activeRevisionId: agent.activeRevisionId });
  const rolledBack = await oc.agents.get(agent.id);
  assert.deepEqual([rolledBack.revision, rolledBack.prompt], [1, "v1"]);
  const s1 = await oc.sessions.create({ agent: agent.id, input: "hi" });
  const s2 = await oc.sessions.create({ agent: agent.id, input: "hi", revision: 2 });
  assert.deepEqual(await pinnedOf(s3.id), { prompt: "v3", revision: 3, files: { "pdf/SKILL.md": SKILL_MD, "pdf/scripts/extract.sh": "#!/bin/sh\necho text\n" } });
  assert.deepEqual(await pinnedOf(s1.id), { prompt: "v1", revision: 1, files: {} });
  assert.deepEqual(await pinnedOf(s2.id), { prompt: "v2", revision: 2, files: {} });
  assert.equal((await oc.sessions.get(s3.id)).snapshot.agentSnapshot.revision, 3);
  await assert.rejects(oc.sessions.create({ agent: agent.id, input: "hi", revision: 99 }), (e) => e.status === 400 && e.type === "invalid");

  // Promote the staged one; the log says who moved the pointer, and why.
  await revs.activate(agent.id, d4.revisionId);
  assert.equal((await oc.agents.get(agent.id)).prompt, "v4");
  const log = (await oc.agents.activations.list(agent.id)).data;
  assert.deepEqual(log.map((a) => [a.from, a.to, a.reason, a.actor]), [
    [`${agent.activeRevisionId.slice(0, -1)}1`, d4.revisionId, "promote", "api"],
    [d3.revisionId, agent.activeRevisionId, "rollback", "api"],
    [v2.activeRevisionId, d3.revisionId, "deploy", "api"],
    [agent.activeRevisionId, v2.activeRevisionId, "update", "api"],
    [null, agent.activeRevisionId, "create", "api"],
  ]);
  assert.ok(log.every((a) => a.id.startsWith("act_") && a.createdAt));
  await assert.rejects(revs.get(agent.id, 42), NotFoundError);
  await assert.rejects(ocB.agents.revisions.list(agent.id), NotFoundError);
  // GitHub deploys are a hosted integration.
  await assert.rejects(oc.agents.deployments.create(agent.id, { input: { type: "github", ref: "main" } }), (e) => e.status === 422 && e.type === "integration_not_supported");

  // The SDK's Node sugar: an agent directory (agent.toml, prompt.md, skills/) deployed inline.
  const dir = mkdtempSync(join(tmpdir(), "sealpod-agent-dir-"));
  try {
    writeFileSync(join(dir, "agent.toml"), `model = "${agent.model}"\n\n[agent]\nid = "${agent.id}"\n`);
    writeFileSync(join(dir, "prompt.md"), "from a directory");
    mkdirSync(join(dir, "skills/review"), { recursive: true });
    writeFileSync(join(dir, "skills/review/SKILL.md"), "---\ndescription: Reviews diffs.\n---\n");
    const { deployment: fromDir } = await oc.agents.deploy(dir);
    assert.deepEqual([fromDir.state, fromDir.active], ["ready", true]);
    const deployed = await revs.get(agent.id, fromDir.revisionId);
    assert.deepEqual([deployed.prompt, deployed.files.map((f) => f.path)], ["from a directory", ["review/SKILL.md"]]);
    assert.deepEqual((await oc.agents.skills.get(agent.id)).skills.map((k) => [k.name, k.description]), [["review", "Reviews diffs."]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("skills: a .zip upload and removal each deploy a revision; unsafe zips are refused with 400", async () => {
  const agent = await newAgent();
  const empty = await oc.agents.skills.get(agent.id);
  assert.deepEqual([empty.revision.number, empty.skillBundleDigest, empty.skills], [1, null, []]);
  const zip = zipOf([
    { path: "pdf/SKILL.md", content: SKILL_MD },
    { path: "pdf/scripts/extract.sh", content: "#!/bin/sh\n", mode: 0o100755 },
    { path: "notes/SKILL.md", content: "plain" },
  ]);
  const put = await oc.agents.skills.put(agent.id, zip);
  assert.deepEqual([put.deployment.state, put.deployment.inputType, put.deployment.active], ["ready", "zip", true]);
  const skills = await oc.agents.skills.get(agent.id);
  assert.equal(skills.revision.number, 2);
  assert.deepEqual(skills.skills.map((s) => [s.name, s.description, s.files.map((f) => f.path)]), [
    ["notes", null, ["notes/SKILL.md"]],
    ["pdf", "Reads PDFs.", ["pdf/SKILL.md", "pdf/scripts/extract.sh"]],
  ]);
  const session = await oc.sessions.create({ agent: agent.id, input: "hi" });
  assert.equal(Object.keys((await pinnedOf(session.id)).files).length, 3);
  for (const [files, why] of [
    [[{ path: "../x/SKILL.md", content: "x" }], /leaves its folder/],
    [[{ path: "/abs/SKILL.md", content: "x" }], /absolute path/],
    [[{ path: "pdf/SKILL.md", content: "x" }, { path: "pdf/link", content: "/etc/passwd", mode: 0o120777 }], /symbolic link/],
    [[{ path: "pdf/SKILL.md", content: "x" }, { path: "pdf/SKILL.md", content: "y" }], /appears twice/],
    [[{ path: "docs/readme.md", content: "x" }], /has no SKILL.md/],
  ]) {
    await assert.rejects(oc.agents.skills.put(agent.id, zipOf(files)), (e) => e instanceof OpenComputerError && e.status === 400 && e.type === "invalid" && why.test(e.message));
  }
  await assert.rejects(oc.agents.skills.put(agent.id, new Uint8Array(2 * 1024 * 1024)), (e) => e.status === 400 && /larger than/.test(e.message));
  assert.equal((await oc.agents.get(agent.id)).revision, 2);
  const removed = await oc.agents.skills.delete(agent.id);
  assert.deepEqual([removed.deployment.state, removed.deployment.inputType], ["ready", "remove"]);
  const after = await oc.agents.skills.get(agent.id);
  assert.deepEqual([after.revision.number, after.skillBundleDigest, after.skills], [3, null, []]);
  // The earlier session keeps its skills.
  assert.equal(Object.keys((await pinnedOf(session.id)).files).length, 3);
});

test("hosted integrations answer 422 integration_not_supported through every SDK call, never 404 or 500", async () => {
  const agent = await newAgent();
  const s = await oc.sessions.create({ agent: agent.id, input: "hi" });
  const repo = { repo: "acme/app", ref: "main" };
  const calls = {
    "repos.create": () => oc.repos.create({ url: "https://github.com/acme/app" }),
    "repos.get": () => oc.repos.get("repo_1"),
    "repos.update": () => oc.repos.update("repo_1", { defaultRef: "main" }),
    "repos.list": () => oc.repos.list(),
    "github.apps.list": () => oc.github.apps.list(),
    "github.apps.register": () => oc.github.apps.register({ appId: 1, privateKey: "x", webhookSecret: "y" }),
    "github.apps.update": () => oc.github.apps.update("ghapp_1", { name: "n" }),
    "github.apps.delete": () => oc.github.apps.delete("ghapp_1"),
    "github.apps.createManifestUrl": () => oc.github.apps.createManifestUrl(),
    "github.apps.createManifest": () => oc.github.apps.createManifest({ redirectUrl: "https://example.com/cb" }),
    "github.apps.completeManifest": () => oc.github.apps.completeManifest({ code: "c" }),
    "github.installations.list": () => oc.github.installations.list(),
    "agents.repository.review": () => oc.agents.repository.review(repo),
    "agents.repository.import": () => oc.agents.repository.import(repo),
    "agents.deploymentSource.link": () => oc.agents.deploymentSource.link(agent.id, repo),
    "agents.deploymentSource.get": () => oc.agents.deploymentSource.get(agent.id),
    "agents.deploymentSource.unlink": () => oc.agents.deploymentSource.unlink(agent.id),
    "agents.slackManifest": () => oc.agents.slackManifest(agent.id),
    "agents.connectSlack": () => oc.agents.connectSlack(agent.id, { botToken: "b", signingSecret: "s" }),
    "agents.getSlack": () => oc.agents.getSlack(agent.id),
    "agents.disconnectSlack": () => oc.agents.disconnectSlack(agent.id),
    "agents.authorizeManagedSlack": () => oc.agents.authorizeManagedSlack(agent.id),
    "agents.getManagedSlack": () => oc.agents.getManagedSlack(agent.id),
    "agents.listManagedSlackConnections": () => oc.agents.listManagedSlackConnections(),
    "agents.disconnectManagedSlack": () => oc.agents.disconnectManagedSlack(agent.id),
    "session.watches.create": () => s.watches.create({ pr: 1 }),
    "session.watches.list": () => s.watches.list(),
    "session.watches.delete": () => s.watches.delete("watch_1"),
    "session.listSources": () => s.listSources(),
  };
  for (const [name, call] of Object.entries(calls)) {
    await assert.rejects(call(), (e) => {
      assert.ok(e instanceof OpenComputerError, `${name}: ${e}`);
      assert.equal(e.status, 422, `${name}: ${e.status} ${e.message}`);
      assert.equal(e.type, "integration_not_supported", name);
      assert.match(e.message, /a hosted integration that sealpod does not offer/, name);
      return true;
    }, name);
  }
  // Authentication still comes first.
  const anonymous = new OpenComputer({ apiKey: "osb_wrong", baseUrl: h.baseUrl });
  await assert.rejects(anonymous.repos.list(), AuthError);
});
