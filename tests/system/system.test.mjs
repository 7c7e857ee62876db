// The whole system, as a user runs it: `sealpod up --fake-model` (devcluster, the operator, the
// API server, the pod runner with one network namespace per pod, the fake model API), driven
// with the official @opencomputer/sdk and the real kubectl. Nothing here plays a part of the
// platform: sessions run in sandbox pods the operator builds, through the real sidecar proxy.
//
// Run by scripts/test.d/80-system.sh (which builds the binaries first). Needs root (the pod
// runner's network namespaces and the egress lock), node, kubectl and
// tests/conformance/node_modules (the SDK).
//
// SEALPOD_TEST_UP_USER=NAME runs `up` as that normal user (rootless local mode; the user needs
// subordinate IDs, see scripts/test.d/83-rootless.sh), everything else still as root: every
// isolation check below then holds for the rootless path too.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, existsSync, readdirSync, statSync, rmSync, chmodSync, writeFileSync, symlinkSync, mkdirSync, copyFileSync, readlinkSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "../..");
const builtBinDir = process.env.SEALPOD_BIN_DIR ?? join(repo, "target/debug");
const { waitFor, streamUntilCompleted, fakeModelRequests } = await import(pathToFileURL(join(repo, "tests/conformance/lib/sessions.mjs")).href);
const { freePort } = await import(pathToFileURL(join(repo, "tests/conformance/lib/harness.mjs")).href);
const { startUp: startUpIn, stopUp } = await import(pathToFileURL(join(repo, "tests/conformance/lib/up.mjs")).href);
const { zipOf } = await import(pathToFileURL(join(repo, "tests/conformance/lib/zip.mjs")).href);
const { OpenComputer } = await import(
  pathToFileURL(join(repo, "tests/conformance/node_modules/@opencomputer/sdk/dist/index.js")).href
);

const uniq = (p) => `${p}-${randomBytes(4).toString("hex")}`;
const hex = (s) => Buffer.from(s, "utf8").toString("hex");
const objectName = (id) => id.replace("_", "-");

// SEALPOD_TEST_CONTROL_PLANE=kubernetes runs everything on the real control plane.
const controlPlane = process.env.SEALPOD_TEST_CONTROL_PLANE ?? "devcluster";
const work = mkdtempSync(join(tmpdir(), "sealpod-system-"));
chmodSync(work, 0o755); // sandbox users read their volumes under it
const dataDir = join(work, "data");
const envFile = join(work, "env");
// The user `up` runs as, when not root: it owns the test directory and runs copies of the
// binaries (the build's directory may be closed to it).
const upUser = process.env.SEALPOD_TEST_UP_USER
  ? { name: process.env.SEALPOD_TEST_UP_USER, home: work, uid: Number(execFileSync("id", ["-u", process.env.SEALPOD_TEST_UP_USER], { encoding: "utf8" })) }
  : undefined;
const binDir = upUser ? join(work, "bin") : builtBinDir;
if (upUser) {
  mkdirSync(binDir);
  for (const name of ["sealpod", "sealpod-api-server", "sealpod-operator", "sealpod-fake-model", "sealpod-sidecar", "sealpod-runtime", "sealpod-controlplane"]) {
    copyFileSync(join(builtBinDir, name), join(binDir, name));
    chmodSync(join(binDir, name), 0o755);
  }
  execFileSync("chown", ["-R", `${upUser.name}:`, work]);
}
let up; // { child, stdout, stderr, exited }
let env; // the env file's variables
let oc;
let fakeKey;

/** Starts `sealpod up --fake-model` on the data directory and waits for its env file. */
const startUp = (port) => startUpIn({
  binDir, dataDir, envFile, port, args: ["--idle-sweep-seconds", "1", "--control-plane", controlPlane], user: upUser,
});

function kubectl(...args) {
  return execFileSync("kubectl", args, { env: { ...process.env, KUBECONFIG: env.KUBECONFIG }, encoding: "utf8" });
}

function kubectlJson(...args) {
  return JSON.parse(kubectl(...args, "-o", "json"));
}

function podExists(name) {
  const pods = kubectlJson("get", "pods", "-n", "default");
  return pods.items.some((p) => p.metadata.name === name);
}

/** Every request the fake model received (key slots redacted, `auth` classified). */
const modelRequests = () => fakeModelRequests(new URL(env.SEALPOD_FAKE_MODEL_URL).port, env.SEALPOD_FAKE_MODEL_CA);

async function requestsFor(tag) {
  return (await modelRequests()).filter((r) => JSON.stringify(r.body?.messages ?? "").includes(tag));
}

/** The runtime process of a session: found by its environment, as the pod runner started it. */
// The session a runtime serves: the file SEALPOD_SESSION_ID_FILE names (the pod runner gives
// the host path of the mounted runtime Secret), or SEALPOD_SESSION_ID.
function sessionOf(environ) {
  const value = (name) => environ.find((e) => e.startsWith(`${name}=`))?.slice(name.length + 1);
  const file = value("SEALPOD_SESSION_ID_FILE");
  if (!file) return value("SEALPOD_SESSION_ID");
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
}

function runtimeProcess(sessionId) {
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    let environ;
    try {
      environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    } catch {
      continue;
    }
    const exe = (() => {
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      } catch {
        return "";
      }
    })();
    if (exe === "sealpod-runtime" && sessionOf(environ) === sessionId) {
      return { pid: Number(pid), environ };
    }
  }
  return undefined;
}


const completed = (events) => events.filter((e) => e.type === "turn.completed");
const answers = (events) => events.filter((e) => e.type === "agent.message" && e.level === "user").map((e) => e.body.text);

let agentWithKey;
let credentialId;
async function byoAgent() {
  if (!agentWithKey) {
    const cred = await oc.credentials.create({ provider: "anthropic", key: fakeKey, name: uniq("fake-model") });
    credentialId = cred.id;
    agentWithKey = await oc.agents.create({
      name: uniq("system"), prompt: "You are the system test agent.", model: "anthropic/claude-test-1", credential: cred.id,
    });
  }
  return agentWithKey;
}

let firstSession;

before(async () => {
  const port = await freePort();
  const started = await startUp(port);
  up = started.run;
  env = started.vars;
  oc = new OpenComputer({ apiKey: env.SEALPOD_API_KEY, baseUrl: env.SEALPOD_URL });
  fakeKey = readFileSync(join(dataDir, "fake-model/key"), "utf8").trim();
  up.port = port;
});

after(async () => {
  if (up && !up.exited) await stopUp(up);
  if (!process.env.SEALPOD_KEEP_TEST_DIRS) rmSync(work, { recursive: true, force: true });
});

test("up prints the API and a key that works; the env file says the same", async () => {
  assert.match(env.SEALPOD_URL, /^http:\/\/127\.0\.0\.1:\d+\/v3$/);
  assert.match(env.SEALPOD_API_KEY, /\S{20,}/);
  assert.ok(up.stdout.includes(env.SEALPOD_URL) && up.stdout.includes(env.SEALPOD_API_KEY), up.stdout);
  // Which isolation it runs with, and why.
  const isolation = upUser
    ? new RegExp(`^ {2}isolation: {2}a network namespace per pod, locked by nftables \\(rootless: in a user namespace over the subordinate IDs of ${upUser.name}, room for 16 pod\\(s\\) at once\\)$`, "m")
    : process.getuid() === 0 ? /^ {2}isolation: {2}a network namespace per pod/m : /^ {2}isolation: {2}none: not root/m;
  assert.match(up.stdout, isolation);
  assert.equal(statSync(envFile).mode & 0o777, 0o600);
  assert.ok(Array.isArray((await oc.agents.list()).data));
  const wrong = new OpenComputer({ apiKey: "osb_wrong", baseUrl: env.SEALPOD_URL });
  await assert.rejects(wrong.agents.list(), (e) => e.status === 401);
});

/** The real UID of process `pid`. */
const uidOf = (pid) => Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/^Uid:\s+(\d+)/m)[1]);

test("rootless: up runs as its user, and each pod's processes as subordinate IDs of a block of its own", async (t) => {
  if (!upUser) {
    t.skip("up runs as root here");
    return;
  }
  assert.equal(uidOf(up.child.pid), upUser.uid);
  const range = readFileSync("/etc/subuid", "utf8").split("\n").map((l) => l.split(":")).find((f) => f[0] === upUser.name);
  const [start, count] = [Number(range[1]), Number(range[2])];
  const sessions = [];
  for (const name of ["first", "second"]) {
    const s = await oc.sessions.create({ agent: (await byoAgent()).id, input: `rootless ${name}` });
    await streamUntilCompleted(s, 1, 120000);
    sessions.push(s);
  }
  const uids = [];
  for (const s of sessions) {
    const runtime = await waitFor(`the runtime of ${s.id}`, async () => runtimeProcess(s.id));
    uids.push(uidOf(runtime.pid));
  }
  for (const uid of uids) assert.ok(uid >= start && uid < start + count, `UID ${uid} is not one of ${upUser.name}'s subordinate IDs`);
  assert.notEqual(uids[0], uids[1], "two pods, two identities");
  assert.equal((uids[0] - start) % 65536, (uids[1] - start) % 65536, "the same container UID, in two blocks");
  for (const s of sessions) await s.archive();
});

test("the README's SDK snippet, as printed, completes a session", async () => {
  const readme = readFileSync(join(repo, "README.md"), "utf8");
  const block = readme.split("<!-- sdk-snippet:start -->")[1]?.split("<!-- sdk-snippet:end -->")[0] ?? "";
  const code = block.replace(/^\s*```js\n/, "").replace(/```\s*$/, "");
  assert.equal(code.trim().split("\n").length, 5, code);
  const dir = join(work, "snippet");
  mkdirSync(dir, { recursive: true });
  symlinkSync(join(repo, "tests/conformance/node_modules"), join(dir, "node_modules"));
  writeFileSync(join(dir, "hello.mjs"), code);
  const { stdout } = await promisify(execFile)("node", [join(dir, "hello.mjs")], {
    env: { ...process.env, SEALPOD_URL: env.SEALPOD_URL, SEALPOD_API_KEY: env.SEALPOD_API_KEY },
    timeout: 180000,
  });
  const lines = stdout.trim().split("\n");
  assert.equal(lines[0], "user.message Say hello");
  assert.ok(lines.includes("agent.message Answer to: Say hello (1 user messages so far)"), stdout);
  assert.equal(lines.at(-1).trim(), "turn.completed");
});

test("the SDK: credential, agent, a tool-using turn, a steer, the result, archive", async () => {
  const tag = uniq("t");
  const agent = await byoAgent();
  const s = await oc.sessions.create({ agent: agent.id, input: `[[scenario:tool_chain]] chain ${tag}` });
  firstSession = s.id;
  let events = await streamUntilCompleted(s, 1, 120000);
  assert.deepEqual(events.filter((e) => e.type === "tool.call").map((e) => e.body.tool), ["write_file", "read_file", "edit_file", "bash"]);
  assert.deepEqual(answers(events), ["Chain done: beta\nchain-ok"]);
  assert.equal(completed(events)[0].body.yieldReason, "completed");

  // The model got the real key; the sandbox held only the sealed token.
  const requests = await requestsFor(tag);
  assert.equal(requests.length, 5);
  assert.ok(requests.every((r) => r.auth === "real_key" && !r.real_key_elsewhere), JSON.stringify(requests.map((r) => r.auth)));
  const rt = runtimeProcess(s.id);
  assert.ok(rt, "the session's runtime process runs");
  const sealed = rt.environ.find((v) => v.startsWith("ANTHROPIC_API_KEY="))?.split("=")[1] ?? "";
  assert.match(sealed, /^sp_sealed_[0-9a-f]{32}$/);
  assert.ok(!rt.environ.some((v) => v.includes(fakeKey)), "no real key in the runtime's environment");

  await s.steer(`[[scenario:answer]] second ${tag}`);
  events = await streamUntilCompleted(s, 2, 120000);
  assert.equal(completed(events).length, 2);
  const result = await s.result();
  assert.equal(result.lastTurn.yieldReason, "completed");
  assert.match(result.result.body.text, /^Answer to: second t-[0-9a-f]+ \(2 user messages so far\)$/);

  await s.archive();
  assert.equal((await s.refresh()).status, "archived");
  await waitFor("the archived session's pod to go", async () => !podExists(objectName(s.id)));
});

test("a codex session: OpenAI's Responses API through the sidecar, the real key only in Authorization", async () => {
  const tag = uniq("x");
  const cred = await oc.credentials.create({ provider: "openai", key: fakeKey, name: uniq("fake-openai") });
  const agent = await oc.agents.create({
    name: uniq("codex"), prompt: "You are the codex system test agent.", model: "openai/gpt-test-1", runtime: "codex", credential: cred.id,
  });
  const s = await oc.sessions.create({ agent: agent.id, input: `[[scenario:tool_chain]] chain ${tag}` });
  const events = await streamUntilCompleted(s, 1, 120000);
  assert.deepEqual(events.filter((e) => e.type === "tool.call").map((e) => e.body.tool), ["write_file", "read_file", "edit_file", "bash"]);
  assert.deepEqual(answers(events), ["Chain done: beta\nchain-ok"]);
  assert.equal(completed(events)[0].body.yieldReason, "completed");

  // Every call went to the Responses API with the real key, only in Authorization.
  const requests = (await modelRequests()).filter((r) => JSON.stringify(r.body?.input ?? "").includes(tag));
  assert.equal(requests.length, 5);
  for (const r of requests) {
    assert.equal(r.path, "/v1/responses");
    assert.equal(r.body.model, "gpt-test-1");
    assert.equal(r.auth, "real_key");
    assert.equal(r.real_key_elsewhere, false);
    assert.ok(!r.headers.some(([name]) => name === "x-api-key"), "no x-api-key header");
  }
  // The sandbox held only the sealed token, in the OpenAI variable.
  const rt = runtimeProcess(s.id);
  assert.ok(rt, "the session's runtime process runs");
  const sealed = rt.environ.find((v) => v.startsWith("OPENAI_API_KEY="))?.split("=")[1] ?? "";
  assert.match(sealed, /^sp_sealed_[0-9a-f]{32}$/);
  assert.ok(!rt.environ.some((v) => v.startsWith("ANTHROPIC_API_KEY=")), "no Anthropic variable");
  assert.ok(!rt.environ.some((v) => v.includes(fakeKey)), "no real key in the runtime's environment");
  await s.archive();
});

test("kubectl apply -f examples/ starts a session whose events the API serves", async () => {
  kubectl("apply", "-n", "default", "-f", join(repo, "examples"));
  const s = await waitFor("the example session in the API", async () => oc.sessions.get("ses_example"), 60000);
  const events = await streamUntilCompleted(s, 1, 120000);
  assert.equal(events[0].type, "user.message");
  assert.equal(events[0].body.text, "Why does the auth test fail?");
  assert.match(answers(events)[0], /^Answer to: Why does the auth test fail\?/);
  const sessions = kubectlJson("get", "sessions", "-n", "default");
  const example = sessions.items.find((i) => i.metadata.name === "ses-example");
  // The pod runner is the node the example's pod runs on.
  const pods = kubectlJson("get", "pods", "-n", "default");
  const node = pods.items.find((p) => p.metadata.name === "ses-example")?.spec.nodeName;
  const nodes = kubectlJson("get", "nodes").items;
  const ready = nodes.find((n) => n.metadata.name === node)?.status.conditions.find((c) => c.type === "Ready");
  assert.equal(ready?.status, "True", `node ${node} of ${JSON.stringify(nodes.map((n) => n.metadata.name))}`);
  assert.ok(example.status.phase === "idle" || example.status.phase === "running", example.status.phase);
});

test("killing the runtime mid-turn restarts it and the session completes", async () => {
  const tag = uniq("t");
  const s = await oc.sessions.create({ agent: (await byoAgent()).id, input: `[[scenario:slow_tool:4]] crash ${tag}` });
  const ac = new AbortController();
  for await (const ev of s.events({ signal: ac.signal })) {
    if (ev.type === "tool.call") break;
  }
  const before = await waitFor("the runtime process", async () => runtimeProcess(s.id));
  process.kill(before.pid, "SIGKILL");
  const events = await streamUntilCompleted(s, 1, 180000);
  assert.equal(completed(events)[0].body.yieldReason, "completed");
  assert.deepEqual(answers(events), ["The slow tool finished."]);
  const after = runtimeProcess(s.id);
  assert.ok(after && after.pid !== before.pid, "a new runtime process serves the session");
});

test("an idle session hibernates (pod gone, workspace kept) and a steer wakes it with its files", async () => {
  const name = uniq("idle");
  const agent = await oc.agents.create({
    name, prompt: "You are the idle test agent.", model: "anthropic/claude-test-1", credential: (await byoAgent(), credentialId),
  });
  const cr = kubectlJson("get", "agents", "-n", "default").items.find((a) => a.spec.displayName === name);
  kubectl("patch", "agent", cr.metadata.name, "-n", "default", "--type", "merge", "-p", JSON.stringify({ spec: { sandbox: { idleTimeoutSeconds: 2 } } }));
  const tag = uniq("t");
  const s = await oc.sessions.create({ agent: agent.id, input: `[[scenario:bash:${hex(`echo kept-${tag} > keep.txt && echo written`)}]] ${tag}` });
  let events = await streamUntilCompleted(s, 1, 120000);
  assert.deepEqual(answers(events), ["The command said: written"]);
  const pod = objectName(s.id);
  await waitFor("hibernation (the pod deleted)", async () => !podExists(pod), 90000);
  const session = kubectlJson("get", "session", pod, "-n", "default");
  assert.equal(session.spec.desiredState, "Hibernated");
  assert.equal(kubectlJson("get", "pvc", `${pod}-workspace`, "-n", "default").metadata.name, `${pod}-workspace`);

  await s.steer(`[[scenario:bash:${hex("cat keep.txt")}]] again`);
  events = await streamUntilCompleted(s, 2, 180000);
  assert.equal(answers(events).at(-1), `The command said: kept-${tag}`);
  assert.ok(podExists(pod), "the steer woke the session into a new pod");
});

test("a session runs its revision's skills, read-only, listed in its system prompt; one after a rollback has none", async () => {
  const tag = uniq("skill");
  const agent = await oc.agents.create({
    name: uniq("skills"), prompt: `Skills agent ${tag}.`, model: "anthropic/claude-test-1", credential: (await byoAgent(), credentialId),
  });
  await oc.agents.skills.put(agent.id, zipOf([
    { path: "pdf/SKILL.md", content: `---\ndescription: Reads PDFs ${tag}.\n---\nRun run.sh.\n` },
    { path: "pdf/run.sh", content: `#!/bin/sh\necho ran-${tag}\n`, mode: 0o100755 },
  ]));
  // The model learns where the skills are from the system prompt, as a real one would.
  const s1 = await oc.sessions.create({ agent: agent.id, input: `[[scenario:answer]] ${tag}-1` });
  await streamUntilCompleted(s1, 1, 120000);
  const [first] = await requestsFor(`${tag}-1`);
  const system = typeof first.body.system === "string" ? first.body.system : JSON.stringify(first.body.system);
  assert.match(system, new RegExp(`^Skills agent ${tag}\\.`));
  const listed = system.match(new RegExp(`- pdf: Reads PDFs ${tag}\\. \\((\\S+)/SKILL\\.md\\)`));
  assert.ok(listed, system);
  const dir = `'${listed[1]}'`;
  const probe = [
    `tail -n 1 ${dir}/SKILL.md`,
    `${dir}/run.sh`,
    `(echo x > ${dir}/SKILL.md) 2>/dev/null && echo WROTE-FILE`,
    `touch ${dir}/planted 2>/dev/null && echo WROTE-DIR`,
    `chmod u+w ${dir}/SKILL.md 2>/dev/null && echo CHMOD`,
    `rm -f ${dir}/run.sh 2>/dev/null; test -e ${dir}/run.sh || echo REMOVED`,
    "echo probe-done",
  ].join("; ");
  await s1.steer(`[[scenario:bash:${hex(probe)}]] probe`);
  const said = answers(await streamUntilCompleted(s1, 2, 120000)).at(-1);
  assert.match(said, /Run run\.sh\.\s+ran-skill-/, said);
  assert.match(said, /probe-done/);
  assert.doesNotMatch(said, /WROTE|CHMOD|REMOVED/, said);

  // Back to revision 1 (no skills): a new session's prompt lists none; the first keeps its own.
  await oc.agents.revisions.activate(agent.id, 1);
  const s2 = await oc.sessions.create({ agent: agent.id, input: `[[scenario:answer]] ${tag}-2` });
  await streamUntilCompleted(s2, 1, 120000);
  const [second] = await requestsFor(`${tag}-2`);
  assert.equal(JSON.stringify(second.body.system), JSON.stringify(`Skills agent ${tag}.`));
  assert.equal((await oc.sessions.get(s1.id)).snapshot.agentSnapshot.revision, 2);
  for (const s of [s1, s2]) await s.archive();
});

test("a warm pool pod, keyless until claimed, serves a new session with its running runtime", async () => {
  const name = uniq("pooled");
  const agent = await oc.agents.create({
    name, prompt: "You are the pool test agent.", model: "anthropic/claude-test-1", credential: (await byoAgent(), credentialId),
  });
  const cr = kubectlJson("get", "agents", "-n", "default").items.find((a) => a.spec.displayName === name);
  const setSize = (size) => kubectl("patch", "agent", cr.metadata.name, "-n", "default", "--type", "merge", "-p", JSON.stringify({ spec: { warmPool: { size } } }));
  const poolPods = () => kubectlJson("get", "pods", "-n", "default", "-l", `sealpod.dev/pool=${cr.metadata.name}`).items
    .filter((p) => !p.metadata.deletionTimestamp);
  setSize(1);
  await waitFor("the pool to hold a ready pod", async () => {
    const a = kubectlJson("get", "agent", cr.metadata.name, "-n", "default");
    return a.status?.warmPool?.ready === 1;
  }, 120000);
  const [pooled] = poolPods();
  const podName = pooled.metadata.name;
  const dir = readdirSync(join(dataDir, "runner/pods")).find((d) => d.startsWith(`default_${podName}_`));
  assert.ok(dir, `no pod directory for ${podName}`);
  // Before the claim: no file of the pod's volumes and no process of the pod holds the key.
  for (const f of filesBelow(join(dataDir, "runner/pods", dir, "volumes"))) {
    assert.ok(!readFileSync(f, "utf8").includes(fakeKey), `the key is in ${f} before any claim`);
  }
  const waiting = readdirSync("/proc").filter((p) => /^\d+$/.test(p)).map((pid) => {
    try {
      return { pid: Number(pid), environ: readFileSync(`/proc/${pid}/environ`, "utf8").split("\0") };
    } catch {
      return undefined;
    }
  }).filter((p) => p?.environ.includes(`HOSTNAME=${podName}`));
  assert.ok(waiting.length >= 2, "the pool pod's proxy and runtime run before any session");
  for (const p of waiting) assert.ok(!p.environ.some((v) => v.includes(fakeKey)), "no key in a pool process's environment");
  const runtimeBefore = waiting.find((p) => p.environ.some((v) => v.startsWith("SEALPOD_SESSION_ID_FILE=")));
  assert.ok(runtimeBefore, "the pool pod's runtime waits");

  const tag = uniq("t");
  const s = await oc.sessions.create({ agent: agent.id, input: `[[scenario:answer]] pooled ${tag}` });
  const events = await streamUntilCompleted(s, 1, 120000);
  assert.deepEqual(answers(events), [`Answer to: pooled ${tag} (1 user messages so far)`]);
  const session = kubectlJson("get", "session", objectName(s.id), "-n", "default");
  assert.equal(session.metadata.annotations["sealpod.dev/sandbox-pod"], podName, "the session runs in the pool pod");
  assert.equal(runtimeProcess(s.id)?.pid, runtimeBefore.pid, "the runtime that waited serves the session");
  const requests = await requestsFor(tag);
  assert.ok(requests.length > 0 && requests.every((r) => r.auth === "real_key"), JSON.stringify(requests.map((r) => r.auth)));
  await waitFor("the pool to refill", async () => {
    const pods = poolPods();
    return pods.length === 1 && pods[0].metadata.name !== podName;
  }, 60000);
  setSize(0);
  await waitFor("the pool to empty", async () => poolPods().length === 0, 60000);
  await s.archive();
});

test("the sandbox's direct connection to a loopback server outside its namespace fails", async (t) => {
  if (process.getuid() !== 0) {
    t.skip("needs root: without it the pod runner cannot isolate pods");
    return;
  }
  let connections = 0;
  const server = createServer((c) => {
    connections += 1;
    // bash's /dev/tcp probe closes at once; a reset is expected, not a failure.
    c.on("error", () => {});
    c.end("HTTP/1.0 200 OK\r\n\r\nREACHED\n");
  });
  t.after(() => server.close());
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  const probe = `curl -sS --noproxy '*' -m 3 http://127.0.0.1:${port}/ || echo CURL-BLOCKED; ` +
    `(exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null && echo TCP-REACHED || echo TCP-BLOCKED`;
  // The same command on the host reaches the server: the probe can tell the difference.
  // (Asynchronously: the server above runs on this event loop.)
  const { stdout: onHost } = await promisify(execFile)("bash", ["-c", probe], { encoding: "utf8" });
  assert.match(onHost, /^REACHED$/m);
  assert.match(onHost, /^TCP-REACHED$/m);
  const seenOnHost = connections;
  assert.ok(seenOnHost >= 2);

  const s = await oc.sessions.create({ agent: (await byoAgent()).id, input: `[[scenario:bash:${hex(probe)}]] probe` });
  const events = await streamUntilCompleted(s, 1, 120000);
  const said = answers(events)[0];
  assert.match(said, /CURL-BLOCKED/);
  assert.match(said, /TCP-BLOCKED/);
  assert.doesNotMatch(said, /TCP-REACHED|^REACHED$/m);
  assert.equal(connections, seenOnHost, "no connection from the sandbox arrived");
});

test("an agent's allowlisted host is reachable through the proxy, any other is not", async (t) => {
  if (process.getuid() !== 0) {
    t.skip("needs root: without it the pod runner cannot isolate pods");
    return;
  }
  const connections = { allowed: 0, other: 0 };
  const listen = async (name) => {
    const server = createServer((c) => {
      connections[name] += 1;
      c.on("error", () => {});
      c.end(`HTTP/1.0 200 OK\r\n\r\nREACHED-${name.toUpperCase()}\n`);
    });
    t.after(() => server.close());
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    return server.address().port;
  };
  const allowed = await listen("allowed");
  const other = await listen("other");
  const cred = await oc.credentials.create({ provider: "anthropic", key: fakeKey, name: uniq("egress") });
  const agent = await oc.agents.create({
    name: uniq("egress"), prompt: "You reach the network.", model: "anthropic/claude-test-1", credential: cred.id,
  });
  // The allowlist is a Kubernetes-side field of the Agent: set it as a platform team would.
  kubectl("patch", "agent", objectName(agent.id), "-n", "default", "--type", "merge",
    "-p", JSON.stringify({ spec: { egress: { allow: [`localhost:${allowed}`] } } }));
  const via = (port) => `curl -sS -m 5 -p -x "$HTTPS_PROXY" --noproxy '' http://localhost:${port}/ 2>&1 || echo FAILED-${port}`;
  const probe = `${via(allowed)}; ${via(other)}`;
  const s = await oc.sessions.create({ agent: agent.id, input: `[[scenario:bash:${hex(probe)}]] probe` });
  const said = answers(await streamUntilCompleted(s, 1, 120000))[0];
  assert.match(said, /REACHED-ALLOWED$/m, said);
  assert.match(said, new RegExp(`FAILED-${other}`), said);
  assert.match(said, /403/, "the proxy refused the other host");
  assert.doesNotMatch(said, /REACHED-OTHER/);
  assert.equal(connections.other, 0, "nothing reached the host that is not on the list");
  assert.ok(connections.allowed >= 1);
  await s.archive();
});

/** Every regular file below `dir` (as root sees it). */
function filesBelow(dir) {
  const out = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    const st = statSync(p, { throwIfNoEntry: false });
    if (st?.isDirectory()) out.push(...filesBelow(p));
    else if (st?.isFile()) out.push(p);
  }
  return out;
}

/** The runner's directory of a session's live pod. */
function podDir(sessionId) {
  const prefix = `default_${objectName(sessionId)}_`;
  const dir = readdirSync(join(dataDir, "runner/pods")).find((d) => d.startsWith(prefix));
  assert.ok(dir, `no pod directory for ${sessionId}`);
  return join(dataDir, "runner/pods", dir);
}

test("one sandbox reaches no other session's files, its own proxy credential or any state file", async (t) => {
  if (process.getuid() !== 0) {
    t.skip("needs root: without it the pod runner cannot isolate pods");
    return;
  }
  // The victim: a session of its own agent and key, holding a workspace file.
  const victim = await oc.sessions.create({ agent: (await byoAgent()).id, input: `[[scenario:bash:${hex("echo victim-notes > notes.txt && echo ok")}]] victim` });
  await streamUntilCompleted(victim, 1, 120000);
  const attacker = await oc.sessions.create({ agent: (await byoAgent()).id, input: `[[scenario:bash:${hex("echo mine > mine.txt && echo ok")}]] attacker` });
  await streamUntilCompleted(attacker, 1, 120000);
  const victimPod = podDir(victim.id);
  const attackerPod = podDir(attacker.id);
  const victimClaim = join(dataDir, "runner/claims/default", `${objectName(victim.id)}-workspace`);
  const attackerClaim = join(dataDir, "runner/claims/default", `${objectName(attacker.id)}-workspace`);
  const victimRuntime = await waitFor("the victim's runtime process", async () => runtimeProcess(victim.id));
  // The attacker is told every path (more than a real one could list): reading any of them must fail.
  const targets = [
    ...filesBelow(join(victimPod, "volumes")),
    ...filesBelow(join(attackerPod, "volumes/proxy-config")),
    ...filesBelow(victimClaim),
    ...readdirSync(dataDir).map((f) => join(dataDir, f)).filter((p) => statSync(p).isFile()),
    ...filesBelow(join(dataDir, "logs")),
    ...filesBelow(join(dataDir, "fake-model")),
    ...(existsSync(join(dataDir, "kubernetes")) ? filesBelow(join(dataDir, "kubernetes")) : []),
    `/proc/${victimRuntime.pid}/environ`,
  ];
  assert.ok(targets.some((p) => p.includes("proxy-config")), targets.join(" "));
  assert.ok(targets.some((p) => p.endsWith("api.db")), targets.join(" "));
  const script = [
    ...targets.map((p) => `cat '${p}' >/dev/null 2>&1 && echo "READ ${p}"`),
    `touch '${victimClaim}/planted' 2>/dev/null && echo "WROTE victim workspace"`,
    `touch '${join(victimPod, "volumes/tmp/planted")}' 2>/dev/null && echo "WROTE victim tmp"`,
    `kill -0 ${victimRuntime.pid} 2>/dev/null && echo "SIGNALLED victim runtime"`,
    `ls '${join(dataDir, "runner/pods")}' >/dev/null 2>&1 && echo "LISTED pods"`,
    // The positive control: its own workspace, by the host path, is the attacker's to read.
    `cat '${attackerClaim}/mine.txt' >/dev/null 2>&1 && echo "OWN-WORKSPACE-READ"`,
    "echo probe-done",
  ].join("; ");
  await attacker.steer(`[[scenario:bash:${hex(script)}]] attack`);
  const events = await streamUntilCompleted(attacker, 2, 120000);
  const said = answers(events).at(-1);
  assert.match(said, /OWN-WORKSPACE-READ/, "the probe itself works");
  assert.match(said, /probe-done/);
  assert.doesNotMatch(said, /READ \/|WROTE|SIGNALLED|LISTED/, said);
  assert.ok(!existsSync(join(victimClaim, "planted")));
  for (const s of [victim, attacker]) await s.archive();
});

test("no file of the data directory is readable by another local user", async (t) => {
  if (process.getuid() !== 0) {
    t.skip("needs root to act as another local user");
    return;
  }
  const files = filesBelow(dataDir);
  assert.ok(files.some((p) => p.endsWith("api.db")) && files.some((p) => p.includes("/volumes/")), files.join(" "));
  const readable = files.filter((p) => {
    try {
      execFileSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "head", "-c1", p], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  });
  assert.deepEqual(readable, [], "files another local user can read");
  // At rest, the model key is nowhere but in its own file and in the proxy's live Secret
  // volume: not in the cluster's store (devcluster's state file, etcd), logs or the API's store.
  const clear = [fakeKey, Buffer.from(fakeKey).toString("base64")].map((k) => Buffer.from(k));
  const holding = files
    .filter((p) => p !== join(dataDir, "fake-model/key") && !/\/runner\/pods\/[^/]+\/volumes\/proxy-config\//.test(p))
    .filter((p) => {
      // A pod being removed (an archived session's) may take its files away meanwhile.
      let bytes;
      try {
        bytes = readFileSync(p);
      } catch {
        return false;
      }
      return clear.some((k) => bytes.includes(k));
    });
  assert.deepEqual(holding, [], "files holding the model key in clear");
});

/** The processes below `root` (by parent PID) that are in a network namespace other than ours. */
function inPodNetworks(root) {
  const parents = new Map();
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      // `pid (comm) state ppid …`: the comm may hold spaces, so read after its last parenthesis.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      parents.set(Number(pid), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone meanwhile
    }
  }
  const below = new Set([root]);
  for (let grown = true; grown;) {
    grown = false;
    for (const [pid, parent] of parents) {
      if (below.has(parent) && !below.has(pid)) {
        below.add(pid);
        grown = true;
      }
    }
  }
  const ours = readlinkSync("/proc/self/ns/net");
  return [...below].filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/ns/net`) !== ours;
    } catch {
      return false;
    }
  });
}

test("Ctrl-C stops everything cleanly and a second up resumes the same state", async () => {
  const key = env.SEALPOD_API_KEY;
  // A live pod: its namespaces' holder, bridges and containers must all end with `up`.
  const live = await oc.sessions.create({ agent: (await byoAgent()).id, input: "live at stop" });
  await streamUntilCompleted(live, 1, 120000);
  const podProcesses = inPodNetworks(up.child.pid);
  assert.ok(podProcesses.length >= 3, `holder, bridges, containers: ${podProcesses}`);
  const status = await stopUp(up);
  assert.equal(status.code, 0, up.stderr);
  assert.match(up.stdout, /sealpod stopped\./);
  // (An exited process whose parent is gone may stay a zombie where PID 1 reaps nothing.)
  const left = podProcesses.flatMap((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
      return state === "Z" ? [] : [`${pid} ${readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ")}`];
    } catch {
      return [];
    }
  });
  assert.deepEqual(left, [], "processes of pod networks left after up stopped");
  for (const dir of readdirSync(join(dataDir, "runner/pods"))) {
    assert.ok(!existsSync(join(dataDir, "runner/pods", dir, "volumes/proxy-config")), `${dir} keeps its proxy credential after up stopped`);
  }
  assert.equal(runtimeProcess(firstSession), undefined);

  const again = await startUp(up.port);
  up = again.run;
  env = again.vars;
  assert.equal(env.SEALPOD_API_KEY, key, "the same API key");
  oc = new OpenComputer({ apiKey: env.SEALPOD_API_KEY, baseUrl: env.SEALPOD_URL });
  const s = await oc.sessions.get(firstSession);
  assert.equal(s.status, "archived");
  const page = await s.messages();
  assert.ok(page.data.length >= 4, "the first session's messages survived");
});

test("no secret in any log: up's, the children's and every pod's", async () => {
  const files = [];
  const walk = (d) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith(".log")) files.push(p);
    }
  };
  walk(join(dataDir, "logs"));
  walk(join(dataDir, "runner"));
  assert.ok(files.length >= 6, files.join(" "));
  const texts = files.map((f) => [f, readFileSync(f, "utf8")]);
  texts.push(["sealpod up stderr", up.stderr]);
  for (const [name, text] of texts) {
    assert.ok(!text.includes(fakeKey), `the model key appears in ${name}`);
    // Any Anthropic- or OpenAI-shaped key, ours or not.
    assert.ok(!/\bsk-(ant|proj|svcacct|admin)-[A-Za-z0-9_-]{16,}/.test(text), `a model key appears in ${name}`);
    assert.ok(!/sp_sealed_[0-9a-f]{32}/.test(text), `a sealed token appears in ${name}`);
    assert.ok(!/sprt_[A-Za-z0-9_.-]{20,}/.test(text), `a runtime token appears in ${name}`);
    assert.ok(!text.includes(env.SEALPOD_API_KEY), `the API key appears in ${name}`);
  }
});
