// End to end: the real sealpod-runtime binary, holding only a sealed token, runs sessions created
// with the official @opencomputer/sdk against the real sealpod-api-server over devcluster, and
// reaches the fake model API (which accepts only the real key) through the real sealpod-sidecar
// proxy. The test plays the operator's part of a pod: it mints the session's runtime token and
// sealed token and writes the proxy configuration with the credential's real key.
//
// Run by scripts/test.d/50-runtime-e2e.sh (which builds the binaries first).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Harness, repo, freePort } from "../../../tests/conformance/lib/harness.mjs";
import { waitFor, streamUntilCompleted, fakeModelRequests } from "../../../tests/conformance/lib/sessions.mjs";

const { OpenComputer } = await import(
  pathToFileURL(join(repo, "tests/conformance/node_modules/@opencomputer/sdk/dist/index.js")).href
);

const binDir = process.env.SEALPOD_BIN_DIR ?? join(repo, "target/debug");
const REAL_KEY = `sk-ant-api03-e2e-${randomBytes(12).toString("hex")}`;
const MODEL_HOST = "api.model.test";
const NS = "tenant-a";
const uniq = (p) => `${p}-${randomBytes(4).toString("hex")}`;

const h = new Harness();
let oc;
let model; // { port, cert, child }


function startModel() {
  const dir = mkdtempSync(join(h.dir, "model-"));
  writeFileSync(join(dir, "key"), REAL_KEY);
  const child = h.spawnLogged("model", join(binDir, "sealpod-fake-model"), [
    "--api-key-file", join(dir, "key"),
    "--host-name", MODEL_HOST, "--host-name", "127.0.0.1",
    "--cert-out", join(dir, "cert.pem"), "--addr-file", join(dir, "addr"),
  ]);
  return waitFor("fake model", async () => existsSync(join(dir, "addr")) && readFileSync(join(dir, "addr"), "utf8")).then((addr) => ({
    port: Number(addr.split(":")[1]),
    cert: join(dir, "cert.pem"),
    child,
  }));
}

/** Every request the fake model received (key slots redacted, `auth` classified). */
const modelRequests = () => fakeModelRequests(model.port, model.cert);

/** The model requests of one conversation (its first user message contains `tag`). */
async function requestsFor(tag) {
  return (await modelRequests()).filter((r) => JSON.stringify(r.body?.messages?.[0] ?? "").includes(tag));
}

/** A sandbox pod for one session: the sidecar proxy and the runtime, with their own files. */
class Pod {
  constructor(sessionId) {
    this.sessionId = sessionId;
    this.dir = mkdtempSync(join(h.dir, "pod-"));
    this.workspace = join(this.dir, "workspace");
    mkdirSync(this.workspace);
    this.sealed = `sp_sealed_${randomBytes(16).toString("hex")}`;
  }

  async start() {
    const secrets = join(this.dir, "proxy-secret");
    mkdirSync(secrets);
    writeFileSync(join(secrets, "anthropic"), REAL_KEY);
    writeFileSync(join(secrets, "events-token"), h.runtimeToken(NS, this.sessionId, "proxy"));
    this.proxyPort = await freePort();
    const adminPort = await freePort();
    this.ca = join(this.dir, "pod-ca.pem");
    writeFileSync(join(this.dir, "proxy.yaml"), [
      `listen: 127.0.0.1:${this.proxyPort}`,
      `admin_listen: 127.0.0.1:${adminPort}`,
      `ca_cert_out: ${this.ca}`,
      `allow_cidrs: [127.0.0.1/32]`,
      `credentials:`,
      `  - sealed: ${this.sealed}`,
      `    value_file: ${join(secrets, "anthropic")}`,
      `    hosts: [${MODEL_HOST}]`,
      `    headers:`,
      `      - name: x-api-key`,
      `events:`,
      `  url: http://127.0.0.1:${h.runtimePort}/runtime/v1/egress-events`,
      `  token_file: ${join(secrets, "events-token")}`,
      `resolve:`,
      `  "${MODEL_HOST}:443": ["127.0.0.1:${model.port}"]`,
      `extra_roots: [${model.cert}]`,
      "",
    ].join("\n"));
    this.proxy = h.spawnLogged(`proxy-${this.sessionId}`, join(binDir, "sealpod-sidecar"), ["proxy", "--config", join(this.dir, "proxy.yaml")], { SEALPOD_LOG: "info" });
    await waitFor("proxy ready", async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`)).ok);
    writeFileSync(join(this.dir, "runtime-token"), h.runtimeToken(NS, this.sessionId));
    this.startRuntime();
  }

  startRuntime() {
    const env = {
      PATH: process.env.PATH,
      SEALPOD_RUNTIME_API_URL: `http://127.0.0.1:${h.runtimePort}`,
      SEALPOD_SESSION_ID: this.sessionId,
      SEALPOD_RUNTIME_TOKEN_FILE: join(this.dir, "runtime-token"),
      SEALPOD_WORKSPACE: this.workspace,
      ANTHROPIC_API_KEY: this.sealed,
      ANTHROPIC_BASE_URL: `https://${MODEL_HOST}`,
      HTTPS_PROXY: `http://127.0.0.1:${this.proxyPort}`,
      NO_PROXY: "127.0.0.1,localhost",
      SSL_CERT_FILE: this.ca,
      SEALPOD_CLAIM_WAIT_SECONDS: "5",
      RUST_LOG: "info",
    };
    this.runtime = spawn(join(binDir, "sealpod-runtime"), [], { env, stdio: ["ignore", "ignore", "pipe"] });
    const sink = (h.logs[`runtime-${this.sessionId}`] ??= []);
    this.runtime.stderr.on("data", (d) => sink.push(d.toString()));
    h.children.push(this.runtime);
  }

  async kill(signal) {
    const r = this.runtime;
    const done = new Promise((res) => r.once("exit", (code, sig) => res({ code, sig })));
    r.kill(signal);
    return done;
  }

  /** Asserts the sandbox side (runtime environment, workspace, runtime logs) never held the real key. */
  assertSandboxHoldsOnlyTheSealedToken() {
    const environ = readFileSync(`/proc/${this.runtime.pid}/environ`, "utf8").split("\0");
    assert.ok(environ.includes(`ANTHROPIC_API_KEY=${this.sealed}`), "the runtime holds the sealed token");
    assert.ok(!environ.some((v) => v.includes(REAL_KEY)), "no real key in the runtime's environment");
    // The runtime may be writing (a `*.tmp` renamed into place) while this walks: a file that
    // vanished in between is skipped; its successor is read.
    const gone = (fn) => {
      try {
        return fn();
      } catch (e) {
        if (e.code === "ENOENT") return undefined;
        throw e;
      }
    };
    const walk = (d) => readdirSync(d).flatMap((f) => {
      const st = gone(() => statSync(join(d, f)));
      if (!st) return [];
      return st.isDirectory() ? walk(join(d, f)) : [join(d, f)];
    });
    for (const f of walk(this.workspace)) {
      const text = gone(() => readFileSync(f, "utf8"));
      assert.ok(text === undefined || !text.includes(REAL_KEY), `no real key in ${f}`);
    }
    const logs = (h.logs[`runtime-${this.sessionId}`] ?? []).join("");
    assert.ok(!logs.includes(REAL_KEY) && !logs.includes(this.sealed), "no key or token in runtime logs");
  }
}

let agentCache = new Map();
async function agent(limits) {
  const key = JSON.stringify(limits ?? {});
  if (!agentCache.has(key)) {
    const cred = await oc.credentials.create({ provider: "anthropic", key: REAL_KEY, name: uniq("model") });
    agentCache.set(key, await oc.agents.create({
      name: uniq("e2e"), prompt: "You are the end-to-end test agent.", model: "anthropic/claude-test-1",
      credential: cred.id, ...(limits ? { limits } : {}),
    }));
  }
  return agentCache.get(key);
}

/** Creates a session and its pod; returns { s, pod, tag }. */
async function session(input, { limits, sessionLimits } = {}) {
  const tag = uniq("t");
  const s = await oc.sessions.create({ agent: (await agent(limits)).id, input: `${input} ${tag}`, ...(sessionLimits ? { limits: sessionLimits } : {}) });
  const pod = new Pod(s.id);
  await pod.start();
  return { s, pod, tag };
}


const lastCompleted = (events) => events.filter((e) => e.type === "turn.completed").at(-1).body;

before(async () => {
  await h.startCluster();
  await h.startServer();
  oc = new OpenComputer({ apiKey: h.orgKeyA, baseUrl: h.baseUrl });
  model = await startModel();
});

after(async () => {
  await h.stop();
});

test("a plain answer: the SDK stream shows user.message, turn.started, sandbox.started, agent.message, turn.completed", async () => {
  const { s, pod, tag } = await session("[[scenario:answer]] hello");
  const all = await streamUntilCompleted(s, 1);
  // The sidecar's egress.* events (internal) interleave wherever its batches land.
  const events = all.filter((e) => !e.type.startsWith("egress."));
  assert.deepEqual(events.map((e) => e.type), ["user.message", "turn.started", "sandbox.started", "agent.message", "turn.completed"]);
  const [, started, sandbox, answer, done] = events;
  assert.equal(started.level, "progress");
  // The runtime's first claim reports the sandbox's start.
  assert.equal(sandbox.level, "internal");
  for (const moment of ["proxyReadyAt", "runtimeStartedAt", "claimedAt"]) {
    assert.ok(!Number.isNaN(Date.parse(sandbox.body[moment])), JSON.stringify(sandbox.body));
  }
  assert.equal(answer.level, "user");
  assert.match(answer.body.text, /^Answer to: hello/);
  assert.equal(done.level, "user");
  assert.equal(done.body.yieldReason, "completed");
  assert.equal(done.body.resultEventId, answer.id);
  assert.equal((await s.refresh()).status, "idle");
  const requests = await requestsFor(tag);
  assert.equal(requests.length, 1);
  assert.ok(requests.every((r) => r.auth === "real_key" && !r.real_key_elsewhere), "the model got the real key");
  assert.equal(requests[0].body.model, "claude-test-1");
  pod.assertSandboxHoldsOnlyTheSealedToken();
});

test("a tool chain: write, read, edit, bash", async () => {
  const { s, pod } = await session("[[scenario:tool_chain]] chain");
  const events = await streamUntilCompleted(s, 1);
  const calls = events.filter((e) => e.type === "tool.call");
  assert.deepEqual(calls.map((e) => e.body.tool), ["write_file", "read_file", "edit_file", "bash"]);
  assert.ok(calls.every((e) => e.level === "internal"));
  assert.equal(events.filter((e) => e.type === "exec.completed").length, 4);
  assert.equal(events.filter((e) => e.type === "agent.message" && e.level === "progress").length, 2);
  const answer = events.filter((e) => e.type === "agent.message" && e.level === "user");
  assert.deepEqual(answer.map((e) => e.body.text), ["Chain done: beta\nchain-ok"]);
  assert.equal(readFileSync(join(pod.workspace, "chain.txt"), "utf8"), "beta\n");
  pod.assertSandboxHoldsOnlyTheSealedToken();
});

test("ask: awaiting_input, then a steer continues the conversation with context", async () => {
  const { s, pod } = await session("[[scenario:ask]] paint the fence");
  let events = await streamUntilCompleted(s, 1);
  assert.equal(lastCompleted(events).yieldReason, "needs_input");
  assert.equal(events.find((e) => e.id === lastCompleted(events).resultEventId).body.text, "Which colour should I use?");
  assert.equal((await s.refresh()).status, "awaiting_input");
  await s.steer("blue");
  events = await streamUntilCompleted(s, 2);
  assert.equal(lastCompleted(events).yieldReason, "completed");
  const answer = events.find((e) => e.id === lastCompleted(events).resultEventId);
  assert.match(answer.body.text, /^Using blue for: paint the fence/);
  pod.assertSandboxHoldsOnlyTheSealedToken();
});

test("limits: tokens → budget_exceeded before the next model call", async () => {
  const budget = await session("[[scenario:huge_usage:5000]] spend", { sessionLimits: { tokens: 1000 } });
  const b = await streamUntilCompleted(budget.s, 1);
  assert.equal(lastCompleted(b).yieldReason, "budget_exceeded");
  assert.equal((await requestsFor(budget.tag)).length, 1);
});

// Known API server defect: GET /runtime/v1/session reads the stored limits (snake_case
// `turn_seconds`) into `Limits` (camelCase `turnSeconds`), so the runtime never learns
// `turn_seconds`. The runtime's own deadline handling is proven in runtime/tests/runtime_loop.rs.
test("limits: turn_seconds → deadline_exceeded, the running tool killed", async () => {
  const deadline = await session("[[scenario:slow_tool:600]] wait", { sessionLimits: { turnSeconds: 2 } });
  const d = await streamUntilCompleted(deadline.s, 1, 20000);
  assert.equal(lastCompleted(d).yieldReason, "deadline_exceeded");
  assert.equal(d.filter((e) => e.type === "exec.completed").length, 0, "the tool was killed, not finished");
});

test("limits: turns → max_turns without a model call", async () => {
  const turns = await session("[[scenario:answer]] once", { sessionLimits: { turns: 1 } });
  await streamUntilCompleted(turns.s, 1);
  await turns.s.steer("twice");
  const t = await streamUntilCompleted(turns.s, 2);
  assert.equal(lastCompleted(t).yieldReason, "max_turns");
  assert.equal((await requestsFor(turns.tag)).length, 1);
});

test("cancel mid-stream and mid-tool", async () => {
  const stream = await session("[[scenario:slow:300:100]] talk");
  await waitFor("the model stream", async () => (await requestsFor(stream.tag)).length === 1);
  await stream.s.cancel();
  const a = await streamUntilCompleted(stream.s, 1);
  assert.equal(lastCompleted(a).yieldReason, "canceled");
  assert.equal(a.filter((e) => e.type === "agent.message").length, 0);

  const tool = await session("[[scenario:slow_tool:600]] wait");
  const ac = new AbortController();
  for await (const ev of tool.s.events({ signal: ac.signal })) {
    if (ev.type === "tool.call") break;
  }
  await tool.s.cancel();
  const b = await streamUntilCompleted(tool.s, 1);
  assert.equal(lastCompleted(b).yieldReason, "canceled");
  assert.equal((await tool.s.refresh()).status, "idle");
});

test("a 401 fails the turn without retry; a 529 storm is retried to success", async () => {
  const denied = await session("[[scenario:auth_error]] hi");
  const a = await streamUntilCompleted(denied.s, 1);
  assert.equal(lastCompleted(a).yieldReason, "error");
  const err = a.find((e) => e.type === "error.model");
  assert.equal(err.level, "user");
  assert.equal(err.body.code, "model_auth");
  assert.equal((await requestsFor(denied.tag)).length, 1);
  assert.equal((await denied.s.refresh()).status, "failed");

  const storm = await session("[[scenario:storm:2:529]] hi");
  const b = await streamUntilCompleted(storm.s, 1);
  assert.equal(lastCompleted(b).yieldReason, "completed");
  assert.deepEqual((await requestsFor(storm.tag)).map((r) => r.status), [529, 529, 200]);
  storm.pod.assertSandboxHoldsOnlyTheSealedToken();
});

test("SIGKILL mid-turn and restart: the turn is re-run and nothing is appended twice", async () => {
  const { s, pod, tag } = await session("[[scenario:slow_tool:3]] crash");
  const ac = new AbortController();
  for await (const ev of s.events({ signal: ac.signal })) {
    if (ev.type === "tool.call") break;
  }
  const killed = await pod.kill("SIGKILL");
  assert.equal(killed.sig, "SIGKILL");
  pod.startRuntime();
  const events = await streamUntilCompleted(s, 1);
  const count = (t) => events.filter((e) => e.type === t).length;
  assert.deepEqual(events.filter((e) => e.type === "turn.started").map((e) => e.body.attempt), [1, 2]);
  assert.equal(count("tool.call"), 1);
  assert.equal(count("exec.completed"), 1);
  assert.equal(count("agent.message"), 1);
  assert.equal(count("turn.completed"), 1);
  assert.equal(lastCompleted(events).yieldReason, "completed");
  assert.equal((await requestsFor(tag)).length, 2, "the journaled model answer was not requested again");
  pod.assertSandboxHoldsOnlyTheSealedToken();
});
