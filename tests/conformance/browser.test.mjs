// Browser: headless Chromium (Debian) opens a page on another loopback origin that streams a
// session with `EventSource` and `?token=<client token>` (CORS), receives events, survives a
// server-side close (the API server restarts, ending streams cleanly) by reconnecting with
// `Last-Event-ID`, and misses nothing: it ends with seq 1..N exactly once each. The URL keeps
// `after=0`, so a duplicate-free replay proves the server used Last-Event-ID.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OpenComputer } from "@opencomputer/sdk";
import { Harness, freePort } from "./lib/harness.mjs";

const h = new Harness();
before(async () => {
  await h.startCluster();
  await h.startServer();
});
after(async () => h.stop());

const page = `<!doctype html><html><body><script>
const q = new URLSearchParams(location.search);
const seen = []; let errors = 0;
const report = (done) => fetch("/report", { method: "POST", body: JSON.stringify({ seen, errors, done }) });
const es = new EventSource(q.get("api") + "/sessions/" + q.get("session") + "/events?stream=sse&after=0&level=internal&token=" + encodeURIComponent(q.get("token")));
es.onmessage = (m) => { const ev = JSON.parse(m.data); seen.push(ev.seq); report(ev.seq >= Number(q.get("until"))); };
es.onerror = () => { errors++; report(false); };
</script></body></html>`;

test("EventSource with ?token= reconnects with Last-Event-ID and misses nothing", async () => {
  const oc = new OpenComputer({ apiKey: h.orgKeyA, baseUrl: h.baseUrl });
  const cred = await oc.credentials.create({ key: "sk-ant-browser" });
  const agent = await oc.agents.create({ name: "browser", prompt: "p", model: "anthropic/claude-sonnet-4-5", credential: cred.id });
  const s = await oc.sessions.create({ agent: agent.id, input: "hi" });
  const token = await s.mintClientToken({ scopes: ["read"], ttlSeconds: 600 });

  let last = { seen: [], errors: 0, done: false };
  const waiters = [];
  const pagePort = await freePort();
  const server = createServer((req, res) => {
    if (req.method === "POST" && req.url === "/report") {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        last = JSON.parse(body);
        for (const w of waiters.splice(0)) w();
        res.end("ok");
      });
      return;
    }
    res.setHeader("content-type", "text/html");
    res.end(page);
  });
  await new Promise((r) => server.listen(pagePort, "127.0.0.1", r));
  const until = async (pred, what, ms = 30000) => {
    const deadline = Date.now() + ms;
    while (!pred(last)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
      await new Promise((r) => { waiters.push(r); setTimeout(r, 250); });
    }
  };
  const params = new URLSearchParams({ api: h.baseUrl, session: s.id, token, until: "10" });
  // Chromium's profile and everything it puts in TMPDIR live in one directory, removed at the
  // end; its processes are one group, stopped together.
  const scratch = mkdtempSync(join(tmpdir(), "sealpod-chromium-"));
  const chromium = spawn("chromium", [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    `--user-data-dir=${join(scratch, "profile")}`,
    `http://127.0.0.1:${pagePort}/?${params}`,
  ], { stdio: "ignore", detached: true, env: { ...process.env, TMPDIR: scratch } });
  const exited = new Promise((r) => {
    chromium.once("exit", r);
    chromium.once("error", r);
  });
  try {
    await until((l) => l.seen.includes(1), "the first event");
    await h.runTurn("tenant-a", s.id, "before the close");
    await until((l) => l.seen.includes(5), "the first turn");
    // Server-side close: a graceful restart ends every stream; the browser reconnects.
    await h.stopServer("SIGTERM");
    await h.startServer();
    await s.steer("after the close");
    await h.runTurn("tenant-a", s.id, "after the close");
    await until((l) => l.done, "seq 10");
    assert.ok(last.errors >= 1, "the stream was closed and reopened");
    assert.deepEqual(last.seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  } finally {
    try {
      process.kill(-chromium.pid, "SIGKILL");
    } catch {
      // The group is gone already.
    }
    await exited;
    server.close();
    rmSync(scratch, { recursive: true, force: true });
  }
});
