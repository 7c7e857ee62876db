// The official @opencomputer/sdk@0.12.4, unchanged, against sealpod-api-server over devcluster.
// Turn scenarios append their events through the runtime API from the test, as a runtime would.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  OpenComputer, connectSession, AuthError, NotFoundError, ConflictError, ValidationError, OpenComputerError,
} from "@opencomputer/sdk";
import { Harness } from "./lib/harness.mjs";

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
