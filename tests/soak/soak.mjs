// Soak (not a per-commit test; `tests/soak/run` builds the binaries and runs this): many
// sessions at once on `sealpod up --fake-model` with two API-server replicas on PostgreSQL (a
// private cluster this script starts) behind one address and two operator replicas, driven with the official @opencomputer/sdk for
// a bounded time, with faults injected at random, then invariants checked and printed as a
// table. Its last line is `invariants: all held`, or names the first one broken (exit code 1).
//
//   node tests/soak/soak.mjs [--minutes M] [--sessions N] [--faults K] [--bin-dir DIR]
//                            [--control-plane devcluster|kubernetes]
//
// Load: N sessions (default 200) start together; each runs turns back to back until the time is
// up: a tool chain (write, read, edit, bash) first, then steered answers, each streamed by the
// fake model over about a second (20 deltas 50 ms apart). Every session has one
// SSE subscriber, which drops its stream at random (about one event in 20) and resumes after the
// last sequence number it saw. Every fifth session has a webhook destination: a loopback receiver
// that fails one request in ten with 503.
//
// Faults (K, default 0), at random moments of the middle 80% of the run, each kind at least once
// when K allows (then at random): SIGKILL of an API-server replica, of the leading operator (the
// Lease's holder), of a random sandbox's runtime or proxy sidecar (the pod runner restarts both,
// as a kubelet restarts containers), of the pod runner (`up` restarts its children, as a node
// its kubelet); PostgreSQL restarted (an immediate stop, then a start); the webhook receiver
// down for a minute (for half the run, when that is shorter).
//
// Invariants, once the time is up and every session has ended its turn:
// - events: each session's events, paged through the API, number 1, 2, 3… with no gap or repeat;
// - SSE: each subscriber saw every event exactly once, in order, across its resumes;
// - turns: no session is left running, and every `turn.started` has its `turn.completed`;
// - webhooks: every delivery ended delivered or dead-lettered, and the receiver got each
//   delivered event (deliveries still failing a minute after the run — half the run when
//   shorter, at least 10 s — waiting for a late retry of the API server's schedule, are
//   redelivered first, as an operator does after an outage);
// - pods: every session that should run has its pod, a hibernated one none, and no pod lacks
//   its session; after archiving every session, no sandbox pod is left;
// - processes: once `up` stopped, no process of a pod (or under this run's directory) is left,
//   nor a directory of bridge sockets (`sealpod-bridges-*`) in the temporary directory;
// - secrets: no model key, sealed token, runtime token or API key in any log;
// - memory: each long-lived process's RSS at the end is at most 1.5× (plus 16 MiB) its RSS at
//   25% of the run (judged on runs of 10 minutes or more: a shorter one is still warming up).
//
// The per-commit tests run it for half a minute with three sessions and each fault kind once
// (scripts/test.d/84-soak-smoke.sh).
//
// Everything it starts it stops (Ctrl-C to `sealpod up`, the receiver closed); its temporary
// directory goes unless SEALPOD_KEEP_SOAK_DIRS is set. Needs root, as `sealpod up` does.
import { parseArgs } from "node:util";
import { createServer } from "node:http";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, chmodSync, chownSync, rmSync, readFileSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { tmpdir, loadavg } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "../..");
const lib = (name) => import(pathToFileURL(join(repo, "tests/conformance/lib", name)).href);
const { waitFor, sleep } = await lib("sessions.mjs");
const { freePort } = await lib("harness.mjs");
const { startUp, stopUp } = await lib("up.mjs");
const { OpenComputer } = await import(
  pathToFileURL(join(repo, "tests/conformance/node_modules/@opencomputer/sdk/dist/index.js")).href
);

const { values: opts } = parseArgs({
  options: {
    minutes: { type: "string", default: "30" },
    sessions: { type: "string", default: "200" },
    faults: { type: "string", default: "0" },
    "bin-dir": { type: "string", default: process.env.SEALPOD_BIN_DIR ?? join(repo, "target/debug") },
    "control-plane": { type: "string", default: "devcluster" },
  },
});
const positive = (name, min) => {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < min) throw new Error(`--${name} must be a number ≥ ${min}`);
  return v;
};
const minutes = positive("minutes", 0.1);
const sessionCount = Math.floor(positive("sessions", 1));
const faultCount = Math.floor(positive("faults", 0));
const runMs = minutes * 60000;

const work = mkdtempSync(join(tmpdir(), "sealpod-soak-"));
chmodSync(work, 0o755); // sandbox users reach their volumes under it
const dataDir = join(work, "data");
let up;
let receiver;
let postgres;

/** A private PostgreSQL 15 cluster (Debian's postgresql-15) on a loopback port. */
async function startPostgres() {
  const bin = "/usr/lib/postgresql/15/bin";
  const dir = join(work, "pg");
  mkdirSync(dir);
  const { uid, gid } = userIds("postgres");
  chownSync(dir, uid, gid);
  const asPostgres = (program, ...args) =>
    execFileSync("runuser", ["-u", "postgres", "--", join(bin, program), ...args], { stdio: "ignore" });
  asPostgres("initdb", "-D", dir, "-A", "trust", "-U", "postgres");
  const port = await freePort();
  const pg = {
    start: () => asPostgres("pg_ctl", "-D", dir, "-l", join(dir, "server.log"), "-w",
      "-o", `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=on -c max_connections=200`, "start"),
    stop: (mode) => asPostgres("pg_ctl", "-D", dir, "-m", mode, "-w", "stop"),
    url: `postgres://postgres@127.0.0.1:${port}/soak`,
    running: true,
  };
  pg.start();
  execFileSync("psql", ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-qc", "CREATE DATABASE soak"], { stdio: "ignore" });
  return pg;
}

function userIds(name) {
  const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no user ${name}: install postgresql-15 (scripts/setup does)`);
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** Every process's PID, as /proc lists them. */
const allPids = () => readdirSync("/proc").filter((p) => /^\d+$/.test(p));

/**
 * The processes of program `name` (their pids; the kernel keeps 15 bytes of a name) whose
 * arguments include every one of `withArgs`.
 */
function processes(name, ...withArgs) {
  const out = [];
  for (const pid of allPids()) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== name.slice(0, 15)) continue;
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (withArgs.every((a) => argv.includes(a))) out.push(Number(pid));
    } catch {}
  }
  return out;
}

function rssKiB(pid) {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
    return Number(line.split(/\s+/)[1]);
  } catch {
    return NaN;
  }
}

// The long-lived processes whose memory must stay flat: `up` itself (devcluster runs in it), the
// pod runner, the API servers and the operators, each by PID (a restarted one is a new process,
// measured only if it was there at both marks). (The fake model keeps every request it received,
// by design: it is not part of the platform.)
const LONG_LIVED = [["sealpod up", "sealpod", "up"], ["sealpod pod-runner", "sealpod", "pod-runner"],
  ["api-server", "sealpod-api-server", "serve"], ["operator", "sealpod-operator"]];
const memory = () => Object.fromEntries(LONG_LIVED.flatMap(([label, comm, ...args]) =>
  processes(comm, ...args).map((pid) => [`${label}[${pid}]`, rssKiB(pid)])));

// Progress on stderr: the phase, and each fault as it is injected.
const began = Date.now();
const progress = (what) => process.stderr.write(`[soak ${((Date.now() - began) / 1000).toFixed(0)} s] ${what}\n`);

// This run's pods, by network namespace: sampled from the processes working under this run's
// directory (a pod's runtime works in its claim, its sidecar reads its config there), so that
// at the end every process of them (holders and bridges too) is found, and no other run's.
const podNamespaces = new Set();
function pidsOfThisRun() {
  return allPids().filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/cwd`).startsWith(work) || readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(work);
    } catch {
      return false;
    }
  });
}
function samplePods() {
  const ownNet = readlinkSync("/proc/self/ns/net");
  for (const pid of pidsOfThisRun()) {
    try {
      const ns = readlinkSync(`/proc/${pid}/ns/net`);
      if (ns !== ownNet) podNamespaces.add(ns);
    } catch {}
  }
}

// The pods' bridge-socket directories in the temporary directory (of deep pod directories) that
// were there before this run.
const bridgeDirs = () => readdirSync(tmpdir()).filter((f) => f.startsWith("sealpod-bridges-"));
const bridgeDirsBefore = new Set(bridgeDirs());

/** The q-quantile (0 < q < 1) of `sorted`, ascending. */
const quantile = (sorted, q) => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];

async function main() {
  progress(`starting PostgreSQL and sealpod up in ${work}`);
  postgres = await startPostgres();
  up = (await startUp({
    binDir: opts["bin-dir"], dataDir, envFile: join(work, "env"), port: await freePort(),
    args: ["--control-plane", opts["control-plane"], "--database-url", postgres.url,
      "--api-server-replicas", "2", "--operator-replicas", "2"],
  }));
  const env = up.vars;
  const oc = new OpenComputer({ apiKey: env.SEALPOD_API_KEY, baseUrl: env.SEALPOD_URL });
  const fakeKey = readFileSync(join(dataDir, "fake-model/key"), "utf8").trim();

  // The webhook receiver: fails one request in ten (and is down for a minute once, a fault).
  const received = new Map(); // webhook-id → count of 2xx answers
  receiver = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const fail = Math.random() < 0.1;
      res.statusCode = fail ? 503 : 200;
      if (!fail) {
        const id = req.headers["webhook-id"];
        received.set(id, (received.get(id) ?? 0) + 1);
      }
      res.end();
    });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  const hookPort = receiver.address().port;
  const hookBase = `http://127.0.0.1:${hookPort}`;

  const cred = await oc.credentials.create({ provider: "anthropic", key: fakeKey, name: "soak" });
  const agent = await oc.agents.create({ name: "soak", prompt: "You are the soak agent.", model: "anthropic/claude-soak", credential: cred.id });

  const started = Date.now();
  const deadline = started + runMs;
  progress(`${sessionCount} sessions for ${minutes} min with ${faultCount} faults`);
  const latencies = []; // append (event createdAt) → SSE delivery, ms
  let reconnects = 0;

  /** One SSE subscriber: every sequence number once, in order, across random resumes. */
  function subscribe(s, record) {
    record.last = 0;
    record.broken = null;
    record.done = false;
    return (async () => {
      while (!record.done) {
        const ac = new AbortController();
        record.abort = () => ac.abort();
        try {
          for await (const ev of s.events({ after: record.last, signal: ac.signal })) {
            if (ev.seq !== record.last + 1 && !record.broken) {
              record.broken = `saw seq ${ev.seq} after ${record.last}`;
            }
            record.last = Math.max(record.last, ev.seq);
            const created = Date.parse(ev.ts ?? "");
            if (Number.isFinite(created)) latencies.push(Date.now() - created);
            // A turn re-claimed after a crash is started again: count turns by id.
            if (ev.type === "turn.started") record.started.add(ev.turnId);
            if (ev.type === "turn.completed") record.completed.add(ev.turnId);
            if (Math.random() < 0.05) {
              reconnects += 1;
              ac.abort();
            }
          }
        } catch (e) {
          if (!ac.signal.aborted) await sleep(200); // a broken stream: resume
        }
      }
      record.stopped = true;
    })();
  }

  const records = [];
  // Every write carries an idempotency key, as an app that retries must: the SDK then retries it
  // across a replica's death (and the server dedupes). A call that still fails is a broken
  // invariant, not a crash of the harness.
  const loadErrors = [];
  const worker = async (i) => {
    const record = { i, started: new Set(), completed: new Set() };
    const hook = i % 5 === 0 ? { webhook: `${hookBase}/s${i}` } : {};
    try {
      const s = await oc.sessions.create({
        agent: agent.id, input: `[[scenario:tool_chain]] soak ${i}`, idempotencyKey: `soak-create-${i}`, ...hook,
      });
      record.session = s;
      records.push(record);
      record.stream = subscribe(s, record);
      let turn = 1;
      while (Date.now() < deadline) {
        await waitFor(`turn ${turn} of session ${i}`, () => record.completed.size >= turn, deadline - Date.now() + 600000);
        if (Date.now() >= deadline) break;
        turn += 1;
        // An answer streamed over about a second, as a model writes.
        await s.steer(`[[scenario:slow:20:50]] soak ${i} turn ${turn}`, { idempotencyKey: `soak-steer-${i}-${turn}` });
      }
    } catch (e) {
      loadErrors.push(`session ${record.session?.id ?? i}: ${e.message}${e.cause ? ` (${e.cause.message ?? e.cause})` : ""}`);
    }
  };

  // Faults at random moments of the middle 80% of the run: every kind once (as K allows), the
  // rest SIGKILLs of kinds drawn at random, in a shuffled order.
  const kubectl = (...args) => execFileSync("kubectl", args, {
    env: { ...process.env, KUBECONFIG: env.KUBECONFIG }, encoding: "utf8", maxBuffer: 1 << 28, // 200 pods are MiBs of JSON
  });
  const leader = () => {
    const holder = kubectl("get", "lease", "-n", "sealpod-system", "sealpod-operator", "-o", "jsonpath={.spec.holderIdentity}").trim();
    return processes("sealpod-operator", `--identity=${holder}`);
  };
  const KILLS = {
    "api-server replica": () => processes("sealpod-api-server", "serve"),
    "leading operator": leader,
    "sandbox runtime": () => processes("sealpod-runtime"),
    "proxy sidecar": () => processes("sealpod-sidecar"),
    "pod runner": () => processes("sealpod", "pod-runner"),
  };
  const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];
  const kinds = [...Object.keys(KILLS), "postgres restart", "webhook receiver down"].slice(0, faultCount);
  while (kinds.length < faultCount) kinds.push(pick(Object.keys(KILLS)));
  kinds.sort(() => Math.random() - 0.5);
  const faults = [];
  const faultTimes = Array.from({ length: faultCount }, () => started + runMs * (0.1 + 0.8 * Math.random())).sort((a, b) => a - b);
  const pending = [];
  const injector = (async () => {
    for (const [n, at] of faultTimes.entries()) {
      await sleep(Math.max(0, at - Date.now()));
      const kind = kinds[n];
      const fault = { at: Math.round((Date.now() - started) / 1000), kind };
      faults.push(fault);
      progress(`fault: ${kind}`);
      if (kind === "postgres restart") {
        postgres.stop("immediate");
        postgres.start();
        fault.what = "immediate stop, then start";
      } else if (kind === "webhook receiver down") {
        receiver.close();
        receiver.closeAllConnections();
        const downMs = Math.min(60000, runMs / 2);
        fault.what = `closed for ${downMs / 1000} s`;
        pending.push(sleep(downMs).then(() => new Promise((r) => receiver.listen(hookPort, "127.0.0.1", r))));
      } else {
        const pids = KILLS[kind]();
        const pid = pick(pids);
        fault.what = pid ? `SIGKILL ${pid}` : "none running";
        if (pid) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {}
        }
      }
    }
    await Promise.all(pending);
  })();

  // Memory at every tenth of the run (printed as a timeline; the check compares the end with
  // the 25% mark).
  let memoryAtQuarter;
  const memoryTimeline = [];
  const quarter = sleep(runMs / 4).then(() => {
    memoryAtQuarter = memory();
    samplePods();
  });
  const tenths = (async () => {
    for (let k = 1; k <= 10; k += 1) {
      await sleep(Math.max(0, started + (runMs * k) / 10 - Date.now()));
      memoryTimeline.push(memory());
    }
  })();
  await Promise.all([...Array.from({ length: sessionCount }, (_, i) => worker(i)), injector, quarter, tenths]);
  const elapsedS = (Date.now() - started) / 1000;
  progress("time is up: waiting for every session to end its turn");

  // Every session ends its last turn (a steer just sent may still be queued); then each
  // subscriber catches up with its session's head.
  let statuses = [];
  const busy = (st) => st === "queued" || st === "running";
  await waitFor("every session to end its last turn", async () => {
    statuses = await Promise.all(records.map(async (r) => `${r.session.id} ${(await r.session.refresh()).status}`));
    return !statuses.some((st) => busy(st.split(" ")[1]));
  }, 600000).catch(() => {
    throw new Error(`sessions still busy: ${statuses.filter((st) => busy(st.split(" ")[1])).join(", ")}`);
  });
  const invariants = [];
  const check = (name, ok, detail) => {
    progress(`checked: ${name}: ${ok ? "held" : "BROKEN"}`);
    invariants.push({ name, ok, detail });
  };
  check("load: every call succeeded (the SDK retrying what it may)", loadErrors.length === 0,
    loadErrors[0] ?? `${records.length} sessions created, each steered until the time was up`);

  // The log still grows a little after a turn ends (the proxies' audit records arrive in
  // batches): list every session's events until two listings 3 s apart agree.
  const listAll = async (r) => {
    const all = [];
    for (;;) {
      const page = await r.session.listEvents({ after: all.at(-1)?.seq ?? 0, limit: 200 });
      all.push(...page.data);
      if (!page.nextCursor || page.data.length === 0) return all;
    }
  };
  let eventLogs = await Promise.all(records.map(listAll));
  for (let settled = false, tries = 0; !settled && tries < 20; tries += 1) {
    await sleep(3000);
    const again = await Promise.all(records.map(listAll));
    settled = again.every((l, k) => l.length === eventLogs[k].length);
    eventLogs = again;
  }
  const heads = new Map();
  let eventsProblem = null;
  records.forEach((r, k) => {
    const all = eventLogs[k];
    const seqs = all.map((e) => e.seq);
    const ids = new Set(all.map((e) => e.id));
    heads.set(r.i, seqs.length);
    if (!eventsProblem && (ids.size !== all.length || seqs.some((q, n) => q !== n + 1))) {
      eventsProblem = `session ${r.session.id}: seqs ${seqs.slice(0, 5).join(",")}… (${all.length} events, ${ids.size} ids)`;
    }
  });
  check("events: 1, 2, 3… once each, per session", !eventsProblem, eventsProblem ?? `${[...heads.values()].reduce((a, b) => a + b, 0)} events`);

  await waitFor("every subscriber to reach its session's head", () => records.every((r) => r.last >= heads.get(r.i)), 120000).catch(() => {});
  for (const r of records) {
    r.done = true;
    r.abort?.();
  }
  // A subscriber that does not stop when told is a broken stream too.
  await Promise.race([Promise.all(records.map((r) => r.stream)), sleep(30000)]);
  // A subscriber may have seen events appended after the listing; it checked their order itself.
  const sseProblem = records.find((r) => r.broken || r.last < heads.get(r.i) || !r.stopped);
  check("SSE: every event once, in order, across resumes", !sseProblem,
    sseProblem ? `session ${sseProblem.session.id}: ${sseProblem.broken ?? `last ${sseProblem.last} of ${heads.get(sseProblem.i)}${sseProblem.stopped ? "" : ", did not stop"}`}` : `${reconnects} resumes`);

  const stuck = [];
  for (const r of records) {
    const s = await r.session.refresh();
    const open = [...r.started].filter((t) => !r.completed.has(t));
    if (s.status !== "idle" || open.length > 0) {
      stuck.push(`${s.id} ${s.status} (last turn ${JSON.stringify(s.lastTurn ?? {})}), turns without an end: ${open.join(" ") || "none"}`);
    }
  }
  const turns = records.reduce((a, r) => a + r.completed.size, 0);
  check("turns: none left running, each started one completed", stuck.length === 0, stuck[0] ?? `${turns} turns`);

  // Deliveries retry on the API server's schedule (up to 10 min between late attempts): those
  // still failing a while after the run (a minute; half the run when shorter, at least 10 s, as
  // long as the receiver's outage) are redelivered, as an operator does after an outage.
  let hookProblem = null;
  let delivered = 0;
  let deadLetters = 0;
  const hooked = records.filter((x) => x.i % 5 === 0);
  const deliveriesOf = async (r) => {
    const list = [];
    for (;;) {
      const page = await r.session.deliveries.list({ limit: 200, ...(list.length ? { after: list.at(-1).id } : {}) });
      list.push(...page);
      if (page.length < 200) return list;
    }
  };
  const settled = (d) => d.status === "delivered" || d.status === "dead_letter";
  const allSettled = async () => {
    const lists = await Promise.all(hooked.map(deliveriesOf));
    return lists.every((l) => l.every(settled)) && lists;
  };
  const settleMs = Math.max(10000, Math.min(60000, runMs / 2));
  let lists = await waitFor("deliveries to settle", allSettled, settleMs).catch(() => null);
  let redelivered = 0;
  if (!lists) {
    for (const r of hooked) {
      for (const d of (await deliveriesOf(r)).filter((x) => x.status === "failed")) {
        await r.session.deliveries.redeliver(d.id);
        redelivered += 1;
      }
    }
    lists = await waitFor("redelivered deliveries to settle", allSettled, 300000).catch(() => null);
  }
  if (!lists) {
    const lists = await Promise.all(hooked.map(deliveriesOf));
    const k = lists.findIndex((l) => !l.every(settled));
    hookProblem = `session ${hooked[k].session.id}: ${lists[k].filter((d) => !settled(d)).length} deliveries not settled`;
  }
  for (const d of (lists ?? []).flat()) {
    if (d.status === "dead_letter") deadLetters += 1;
    else if (!received.has(d.eventId)) hookProblem ??= `delivery ${d.id} delivered but never received`;
    else delivered += 1;
  }
  check("webhooks: delivered (and received) or dead-lettered", !hookProblem, hookProblem ?? `${delivered} delivered, ${deadLetters} dead-lettered, ${redelivered} redelivered after the run`);

  const memoryAtEnd = memory();
  const grown = Object.entries(memoryAtEnd).filter(([k, end]) => memoryAtQuarter?.[k] && end > memoryAtQuarter[k] * 1.5 + 16384);
  const judged = minutes >= 10;
  check("memory: flat after warm-up (end ≤ 1.5× the 25% mark + 16 MiB)", !judged || grown.length === 0,
    (judged ? "" : "not judged (a run under 10 minutes): ")
    + Object.entries(memoryAtEnd).map(([k, end]) => `${k} ${Math.round((memoryAtQuarter?.[k] ?? NaN) / 1024)}→${Math.round(end / 1024)} MiB`).join(", "));

  // Every session that should run has its pod, every hibernated one none, and no pod lacks its
  // session (it may take a restart's backoff to settle after the last fault).
  const podsAndSessions = () => {
    const sessions = JSON.parse(kubectl("get", "sessions.sealpod.dev", "-A", "-o", "json")).items;
    const pods = JSON.parse(kubectl("get", "pods", "-A", "-o", "json")).items
      .filter((p) => !p.metadata.deletionTimestamp);
    const podOf = new Map(pods.map((p) => [`${p.metadata.namespace}/${p.metadata.labels?.["sealpod.dev/session"]}`, p]));
    const live = new Set(sessions.map((x) => `${x.metadata.namespace}/${x.metadata.name}`));
    const problems = [];
    for (const x of sessions) {
      const key = `${x.metadata.namespace}/${x.metadata.name}`;
      const desired = x.spec.desiredState ?? "Running";
      if (desired === "Running" && !podOf.has(key)) problems.push(`session ${key} has no pod`);
      if (desired !== "Running" && podOf.has(key)) problems.push(`${desired} session ${key} has a pod`);
    }
    for (const key of podOf.keys()) if (!live.has(key)) problems.push(`pod of ${key} has no session`);
    return { problems, sessions: sessions.length, pods: pods.length };
  };
  let pairing = podsAndSessions();
  await waitFor("pods and sessions to pair up", () => (pairing = podsAndSessions()).problems.length === 0, 180000).catch(() => {});
  check("pods: each running session has its pod, no pod without its session", pairing.problems.length === 0,
    pairing.problems[0] ?? `${pairing.sessions} sessions, ${pairing.pods} pods`);

  // The logs, read once before archiving (a deleted pod's directory goes, its containers' logs
  // with it) and again after `up` stopped.
  const logs = new Map();
  const readLogs = (d) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) readLogs(p);
      else if (f.endsWith(".log")) logs.set(p, readFileSync(p, "utf8"));
    }
  };
  readLogs(dataDir);
  samplePods();

  for (const r of records) await r.session.archive();
  const leftPods = await waitFor("the archived sessions' pods to go", () => {
    const pods = JSON.parse(kubectl("get", "pods", "-A", "-o", "json")).items;
    return pods.length === 0 ? [] : false;
  }, 300000).catch(() => JSON.parse(kubectl("get", "pods", "-A", "-o", "json")).items.map((p) => p.metadata.name));
  check("pods: none left once every session is archived", leftPods.length === 0, leftPods.slice(0, 3).join(", ") || "0 left");

  await stopUp(up.run);
  // Nothing the platform started outlives `up`: no process of this run's pods (by network
  // namespace) or under this run's directory is left, zombies aside.
  const underThisRun = new Set(pidsOfThisRun());
  const leftover = allPids().flatMap((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return [];
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      if (cmdline.includes("postgres")) return []; // this script's own, stopped last
      const ours = podNamespaces.has(readlinkSync(`/proc/${pid}/ns/net`)) || underThisRun.has(pid);
      return ours ? [`${pid} ${cmdline}`] : [];
    } catch {
      return []; // gone meanwhile
    }
  });
  leftover.push(...bridgeDirs().filter((f) => !bridgeDirsBefore.has(f)).map((f) => join(tmpdir(), f)));
  check("processes: none of the platform's left once up stopped", leftover.length === 0, leftover[0] ?? `none left (of ${podNamespaces.size} pod networks seen), nor a bridge-socket directory`);
  readLogs(dataDir);
  logs.set("sealpod up stderr", up.run.stderr);
  const leak = [...logs].find(([, t]) => t.includes(fakeKey) || t.includes(env.SEALPOD_API_KEY)
    || /sp_sealed_[0-9a-f]{32}/.test(t) || /sprt_[A-Za-z0-9_.-]{20,}/.test(t) || /\bsk-(ant|proj|svcacct|admin)-[A-Za-z0-9_-]{16,}/.test(t));
  check("secrets: no key or token in any log", !leak, leak ? leak[0] : `${logs.size} logs`);

  const events = [...heads.values()].reduce((a, b) => a + b, 0);
  console.log(`soak: ${sessionCount} sessions, ${minutes} min, ${faultCount} faults; load average at the end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  const sorted = latencies.sort((a, b) => a - b);
  console.log(`throughput: ${(events / elapsedS).toFixed(1)} events/s, ${(turns / elapsedS).toFixed(2)} turns/s, append→SSE p50 ${quantile(sorted, 0.5)} ms, p90 ${quantile(sorted, 0.9)} ms, p99 ${quantile(sorted, 0.99)} ms over ${sorted.length} deliveries`);
  for (const label of Object.keys(memoryAtEnd)) {
    console.log(`memory of ${label}, MiB at each tenth of the run: ${memoryTimeline.map((m) => m[label] === undefined ? "-" : Math.round(m[label] / 1024)).join(" ")}`);
  }
  for (const f of faults) console.log(`fault at ${f.at} s: ${f.kind}: ${f.what}`);
  console.log("| invariant | held | detail |\n|---|---|---|");
  for (const v of invariants) console.log(`| ${v.name} | ${v.ok ? "yes" : "NO"} | ${v.detail} |`);
  const broken = invariants.find((v) => !v.ok);
  console.log(broken ? `invariants: broken: ${broken.name}` : "invariants: all held");
  return broken ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  console.error(e);
  console.log(`invariants: not checked: ${e.message.split("\n")[0]}`);
} finally {
  receiver?.close();
  if (up?.run && !up.run.exited) await stopUp(up.run).catch(() => {});
  try {
    postgres?.stop("fast");
  } catch {}
  if (!process.env.SEALPOD_KEEP_SOAK_DIRS) rmSync(work, { recursive: true, force: true });
}
process.exit(code);
