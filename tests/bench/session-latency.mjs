// Session start latency (a benchmark, not a test): how long a new session takes to reach work,
// and a warm session to answer a steer, in local mode as a user runs it — `sealpod up
// --fake-model` (the fake model answers at once, so what is measured is the platform), driven
// with the official @opencomputer/sdk.
//
//   node tests/bench/session-latency.mjs [--sessions N] [--bin-dir DIR] [--control-plane KIND]
//
// Or `tests/bench/session-latency.sh`, which builds the binaries first. Needs root (as `sealpod
// up` does) and tests/conformance/node_modules. Sessions run one after another; each is archived
// before the next starts, so the machine runs one sandbox at a time. Printed per measure: p50,
// p95 and max in milliseconds over N sessions (default 5):
//
// - create → turn.started: from before the SDK's create call to the `turn.started` event reaching
//   the SDK's event stream;
// - create → model request: to the first request of the session reaching the fake model (its
//   arrival time, `received_unix_ms`, on the same machine clock);
// - steer → model request: on the warm session (its turn completed), from before the SDK's steer
//   call to the turn's first model request.
//
// Then where a cold start's time goes (median per phase), from the moments the components record:
// the session's `created_at` (API server), the runtime's `sandbox.started` event (pod created by
// the operator, proxy ready, runtime started, turn claimed) and the model request's arrival.
//
// Then the same from a warm pool: the agent's `spec.warmPool.size` is set to 1 (with kubectl, as
// a platform team would), and before each session the benchmark waits until the pool holds a
// ready pod again, so each session claims one (a pool sized for its arrival rate). A pooled
// start's phases: the session stored, the pod's runtime has its session (it read the files the
// claim wrote), the turn claimed, the model request.
//
// Everything it starts it stops (Ctrl-C to `sealpod up`), and its temporary directory goes unless
// SEALPOD_KEEP_BENCH_DIRS is set.
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { mkdtempSync, chmodSync, rmSync } from "node:fs";
import { tmpdir, loadavg, cpus } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "../..");
const lib = (name) => import(pathToFileURL(join(repo, "tests/conformance/lib", name)).href);
const { waitFor, fakeModelRequests } = await lib("sessions.mjs");
const { freePort } = await lib("harness.mjs");
const { startUp, stopUp } = await lib("up.mjs");
const { OpenComputer } = await import(
  pathToFileURL(join(repo, "tests/conformance/node_modules/@opencomputer/sdk/dist/index.js")).href
);

import { execFileSync } from "node:child_process";

const { values: opts } = parseArgs({
  options: {
    sessions: { type: "string", default: "5" },
    "bin-dir": { type: "string", default: process.env.SEALPOD_BIN_DIR ?? join(repo, "target/debug") },
    "control-plane": { type: "string", default: "devcluster" },
  },
});
const sessions = Number(opts.sessions);
if (!Number.isInteger(sessions) || sessions < 1) throw new Error("--sessions must be a positive integer");

const work = mkdtempSync(join(tmpdir(), "sealpod-bench-"));
chmodSync(work, 0o755); // sandbox users reach their volumes under it
const started = await startUp({
  binDir: opts["bin-dir"], dataDir: join(work, "data"), envFile: join(work, "env"), port: await freePort(),
  args: ["--control-plane", opts["control-plane"]],
});
const env = started.vars;

/** When the fake model first received a request whose messages carry `tag` (Unix ms). */
async function modelReached(tag) {
  const port = new URL(env.SEALPOD_FAKE_MODEL_URL).port;
  return waitFor(`a model request for ${tag}`, async () => {
    const hits = (await fakeModelRequests(port, env.SEALPOD_FAKE_MODEL_CA))
      .filter((r) => JSON.stringify(r.body?.messages ?? "").includes(tag));
    return hits.length > 0 && Math.min(...hits.map((r) => r.received_unix_ms));
  }, 60000);
}

/** GET a `/v3` path with the org key; the JSON answer. */
async function v3(path) {
  const res = await fetch(`${env.SEALPOD_URL}${path}`, { headers: { authorization: `Bearer ${env.SEALPOD_API_KEY}` } });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** The start of `session` in phases (ms), from `created` (client clock) to `modelAt`. */
async function phasesOf(session, created, modelAt, pooled) {
  const { created_at: createdAt } = await v3(`/sessions/${session}`);
  const page = await v3(`/sessions/${session}/events?level=internal&type=sandbox.started&limit=10`);
  const started = page.data[0]?.body ?? {};
  const at = (t) => (t ? Date.parse(t) : NaN);
  const moments = pooled ? [
    ["create call → session stored", created, at(createdAt)],
    ["stored → runtime has its session", at(createdAt), at(started.runtime_started_at)],
    ["runtime has it → claimed", at(started.runtime_started_at), at(started.claimed_at)],
    ["claimed → model request", at(started.claimed_at), modelAt],
  ] : [
    ["create call → session stored", created, at(createdAt)],
    ["stored → pod created", at(createdAt), at(started.pod_created_at)],
    ["pod created → proxy ready", at(started.pod_created_at), at(started.proxy_ready_at)],
    ["proxy ready → runtime started", at(started.proxy_ready_at), at(started.runtime_started_at)],
    ["runtime started → claimed", at(started.runtime_started_at), at(started.claimed_at)],
    ["claimed → model request", at(started.claimed_at), modelAt],
  ];
  return Object.fromEntries(moments.map(([name, from, to]) => [name, to - from]));
}

function kubectl(...args) {
  return execFileSync("kubectl", args, { env: { ...process.env, KUBECONFIG: env.KUBECONFIG }, encoding: "utf8" });
}

/** The Agent object of the `/v3` agent named `name`: its namespace and object name. */
function agentObject(name) {
  const item = JSON.parse(kubectl("get", "agents", "-A", "-o", "json")).items.find((a) => a.spec.displayName === name);
  if (!item) throw new Error(`no Agent object for ${name}`);
  return { ns: item.metadata.namespace, name: item.metadata.name };
}

function poolReady(agent) {
  return JSON.parse(kubectl("get", "agent", agent.name, "-n", agent.ns, "-o", "json")).status?.warmPool?.ready ?? 0;
}

/** Streams the session's events until `n` turns completed; returns when each type first arrived. */
async function streamTurns(session, n) {
  const firstSeen = {};
  let completed = 0;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 120000);
  try {
    for await (const ev of session.events({ signal: ac.signal })) {
      firstSeen[ev.type] ??= Date.now();
      if (ev.type === "turn.completed" && ++completed >= n) break;
    }
  } finally {
    clearTimeout(timer);
  }
  if (completed < n) throw new Error(`session ${session.id}: ${completed} of ${n} turns completed`);
  return firstSeen;
}

/** Runs the sessions of `agent` one after another; `pool`, when set, is waited on before each. */
async function measure(oc, agent, pool) {
  const measures = { "create → turn.started": [], "create → model request": [], "steer → model request": [] };
  const phases = {};
  for (let i = 0; i < sessions; i++) {
    if (pool) await waitFor("a ready pool pod", async () => poolReady(pool) >= 1, 120000);
    const tag = `bench-${randomBytes(6).toString("hex")}`;
    const created = Date.now();
    const s = await oc.sessions.create({ agent: agent.id, input: `[[scenario:answer]] ${tag}` });
    const first = await streamTurns(s, 1);
    measures["create → turn.started"].push(first["turn.started"] - created);
    const modelAt = await modelReached(tag);
    measures["create → model request"].push(modelAt - created);
    for (const [name, ms] of Object.entries(await phasesOf(s.id, created, modelAt, Boolean(pool)))) {
      (phases[name] ??= []).push(ms);
    }
    const steered = Date.now();
    await s.steer(`[[scenario:answer]] ${tag}-steer`);
    measures["steer → model request"].push((await modelReached(`${tag}-steer`)) - steered);
    await streamTurns(s, 2);
    await s.archive();
    process.stderr.write(`${pool ? "pooled" : "cold"} session ${i + 1}/${sessions} done\n`);
  }
  return { measures, phases };
}

const runs = {};
try {
  const oc = new OpenComputer({ apiKey: env.SEALPOD_API_KEY, baseUrl: env.SEALPOD_URL });
  const name = `bench-${randomBytes(4).toString("hex")}`;
  const agent = await oc.agents.create({ name, prompt: "You answer.", model: "anthropic/claude-bench-1" });
  runs.cold = await measure(oc, agent, undefined);
  const pool = agentObject(name);
  kubectl("patch", "agent", pool.name, "-n", pool.ns, "--type", "merge", "-p", JSON.stringify({ spec: { warmPool: { size: 1 } } }));
  runs["warm pool"] = await measure(oc, agent, pool);
} finally {
  await stopUp(started.run);
  if (!process.env.SEALPOD_KEEP_BENCH_DIRS) rmSync(work, { recursive: true, force: true });
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
console.log(`sealpod session latency: ${sessions} sessions, control plane ${opts["control-plane"]}, ` +
  `binaries ${opts["bin-dir"]}, ${cpus().length} CPUs, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
for (const [run, { measures, phases }] of Object.entries(runs)) {
  console.log(`\n${`${run}: measure`.padEnd(36)}${"p50 ms".padStart(9)}${"p95 ms".padStart(9)}${"max ms".padStart(9)}`);
  for (const [name, values] of Object.entries(measures)) {
    const sorted = [...values].sort((a, b) => a - b);
    const row = [50, 95, 100].map((p) => String(percentile(sorted, p)).padStart(9)).join("");
    console.log(`${name.padEnd(36)}${row}`);
  }
  console.log(`${`${run} start, by phase`.padEnd(36)}${"p50 ms".padStart(9)}`);
  for (const [name, values] of Object.entries(phases)) {
    const known = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
    console.log(`${name.padEnd(36)}${(known.length ? String(percentile(known, 50)) : "unknown").padStart(9)}`);
  }
}
