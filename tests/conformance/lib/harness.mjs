// The conformance harness: starts devcluster and the real sealpod-api-server binary on loopback,
// prepares tenants with the real kubectl and `sealpod-api-server api-key create`, and mints
// runtime tokens so tests can append turn events through the runtime API as a runtime would.
//
// Environment: SEALPOD_BIN_DIR (default <repo>/target/debug), SEALPOD_TEST_DATABASE_URL
// (default: a fresh SQLite file; `postgres://…` to run on PostgreSQL).
import { spawn, execFileSync } from "node:child_process";
import { createHash, createHmac, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, existsSync, readFileSync, writeFileSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { sleep, waitFor } from "./sessions.mjs";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "../../..");
const binDir = process.env.SEALPOD_BIN_DIR ?? join(repo, "target/debug");

export async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on("error", rej);
  });
}

function b64url(buf) {
  return Buffer.from(buf).toString("base64url");
}

/** Reads a server's JSON log lines as they come; returns a getter of the fields of its
 * `listening` line (its bound addresses), undefined until it was written. */
function listeningLine(child) {
  let pending = "";
  let fields;
  child.stdout.on("data", (d) => {
    if (fields) return;
    pending += d;
    for (let end; !fields && (end = pending.indexOf("\n")) >= 0; pending = pending.slice(end + 1)) {
      try {
        const line = JSON.parse(pending.slice(0, end)).fields;
        if (line?.message === "listening") fields = line;
      } catch {}
    }
  });
  return () => fields;
}

const portOf = (address) => Number(address.slice(address.lastIndexOf(":") + 1));

export class Harness {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "sealpod-conf-"));
    this.kubeconfig = join(this.dir, "kubeconfig");
    this.children = [];
    this.logs = { api: [], devcluster: [] };
  }

  kubectl(args, input) {
    return execFileSync("kubectl", ["--kubeconfig", this.kubeconfig, ...args], {
      input,
      encoding: "utf8",
      stdio: ["pipe", "pipe", "pipe"],
    });
  }

  spawnLogged(name, bin, args, env = {}) {
    const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const sink = (this.logs[name] ??= []);
    child.stdout.on("data", (d) => sink.push(d.toString()));
    child.stderr.on("data", (d) => sink.push(d.toString()));
    this.children.push(child);
    return child;
  }

  async startCluster() {
    this.spawnLogged("devcluster", join(binDir, "devcluster"), [
      "serve", "--tls", "--listen", "127.0.0.1:0", "--kubeconfig-out", this.kubeconfig,
    ]);
    await waitFor("devcluster kubeconfig", () => existsSync(this.kubeconfig) && readFileSync(this.kubeconfig, "utf8").includes("server"));
    await waitFor("devcluster api", () => { this.kubectl(["get", "namespaces"]); return true; });
    const crds = join(repo, "crds");
    for (const f of readdirSync(crds).filter((f) => f.endsWith(".yaml"))) {
      this.kubectl(["apply", "-f", join(crds, f)]);
    }
    for (const ns of ["sealpod-system", "tenant-a", "tenant-b"]) {
      this.kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } }));
    }
    // The sealing public key set, as the operator would publish it. The private half stays here.
    const { publicKey } = generateKeyPairSync("x25519");
    const raw = Buffer.from(publicKey.export({ format: "jwk" }).x, "base64url");
    const id = createHash("sha256").update(raw).digest("hex").slice(0, 16);
    const keys = JSON.stringify({ current: id, keys: { [id]: raw.toString("base64") } });
    this.kubectl(["apply", "-f", "-"], JSON.stringify({
      apiVersion: "v1", kind: "ConfigMap",
      metadata: { name: "sealpod-sealing-public", namespace: "sealpod-system" },
      data: { "keys.json": keys },
    }));
    this.orgKeyA = this.apiKey("tenant-a");
    this.orgKeyB = this.apiKey("tenant-b");
  }

  apiKey(namespace) {
    return execFileSync(join(binDir, "sealpod-api-server"), [
      "api-key", "create", "--namespace", namespace, "--kubeconfig", this.kubeconfig,
    ], { encoding: "utf8" }).trim();
  }

  async startServer(extraEnv = {}) {
    // The first start lets the server pick its ports (a port picked here and bound later could be
    // taken in between); a restart keeps them, so clients built earlier keep working.
    const at = (port) => `127.0.0.1:${port ?? 0}`;
    this.databaseUrl ??= process.env.SEALPOD_TEST_DATABASE_URL ?? `sqlite://${join(this.dir, "api.db")}`;
    const server = (this.server = this.spawnLogged("api", join(binDir, "sealpod-api-server"), [
      "--listen", at(this.port),
      "--runtime-listen", at(this.runtimePort),
      "--admin-listen", at(this.adminPort),
      "--database-url", this.databaseUrl,
      "--kubeconfig", this.kubeconfig,
      "--sse-ping-seconds", "1",
    ], { SEALPOD_LOG: "info", ...extraEnv }));
    const gone = () => server.exitCode !== null || server.signalCode !== null;
    const listening = listeningLine(server);
    let ready = false;
    try {
      await waitFor("api readyz", async () => {
        if (gone()) return true;
        const ports = listening();
        if (!ports) return false;
        [this.port, this.runtimePort, this.adminPort] = [ports.public, ports.runtime, ports.admin].map(portOf);
        return (ready = (await fetch(`http://127.0.0.1:${this.adminPort}/readyz`)).ok);
      });
    } catch (e) {
      throw new Error(`${e.message}\n${this.logTail("api")}`);
    }
    if (!ready) {
      const how = server.exitCode !== null ? `status ${server.exitCode}` : server.signalCode;
      throw new Error(`sealpod-api-server exited (${how}) before it was ready\n${this.logTail("api")}`);
    }
    this.baseUrl = `http://127.0.0.1:${this.port}/v3`;
    this.runtimeUrl = `http://127.0.0.1:${this.runtimePort}/runtime/v1`;
  }

  /** The last lines a child wrote, for a failure message (the logs hold no secret: scan.test). */
  logTail(name, lines = 20) {
    const text = (this.logs[name] ?? []).join("").trimEnd();
    return `last ${lines} lines of ${name}'s output:\n${text.split("\n").slice(-lines).join("\n")}`;
  }

  async stopServer(signal = "SIGTERM") {
    const s = this.server;
    if (!s || s.exitCode !== null) return;
    const done = new Promise((r) => s.once("exit", r));
    s.kill(signal);
    await done;
  }

  async stop() {
    for (const c of this.children.reverse()) {
      if (c.exitCode === null) {
        const done = new Promise((r) => c.once("exit", r));
        c.kill("SIGTERM");
        await Promise.race([done, sleep(5000)]);
      }
    }
    // The database, kubeconfig and keys of this run: nothing reads them once the children
    // are stopped (a failing test has printed their logs already).
    rmSync(this.dir, { recursive: true, force: true });
  }

  runtimeKey() {
    if (!this._runtimeKey) {
      const secret = JSON.parse(this.kubectl(["-n", "sealpod-system", "get", "secret", "sealpod-runtime-token-key", "-o", "json"]));
      this._runtimeKey = Buffer.from(secret.data.key, "base64");
    }
    return this._runtimeKey;
  }

  /** A runtime token for a session, minted as the operator would (resources::runtime_token). */
  runtimeToken(namespace, sessionId, scope = "runtime") {
    const name = sessionId.replace("_", "-");
    const payload = b64url(`${scope}:${namespace}:${name}:${randomBytes(12).toString("hex")}`);
    const tag = b64url(createHmac("sha256", this.runtimeKey()).update(payload).digest());
    return `sprt_${payload}.${tag}`;
  }

  /** Calls the runtime API as the session's runtime. */
  async runtime(token, method, path, body) {
    const res = await fetch(`${this.runtimeUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** Runs one turn as a runtime would: claim, append an answer, complete. */
  async runTurn(namespace, sessionId, text, yieldReason = "completed") {
    const token = this.runtimeToken(namespace, sessionId);
    const claim = await this.runtime(token, "POST", "/claim", { wait_seconds: 5 });
    if (claim.status !== 200) throw new Error(`claim answered ${claim.status}`);
    const turn = claim.body;
    const appended = await this.runtime(token, "POST", "/events", {
      events: [
        { client_id: `${turn.turn_id}-tool`, type: "tool.call", level: "internal", body: { tool: "shell", args_summary: "ls" }, turn_id: turn.turn_id },
        { client_id: `${turn.turn_id}-answer`, type: "agent.message", level: "user", body: { text }, turn_id: turn.turn_id },
      ],
    });
    if (appended.status !== 200) throw new Error(`append answered ${appended.status}`);
    const result = appended.body.events[1].id;
    const done = await this.runtime(token, "POST", `/turns/${turn.turn_id}/complete`, {
      yield_reason: yieldReason, result_event_id: result, usage: { input_tokens: 10, output_tokens: 5 },
    });
    if (done.status !== 200) throw new Error(`complete answered ${done.status}`);
    return { turn, resultEventId: result };
  }
}
