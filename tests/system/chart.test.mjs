// The Helm chart on the real control plane, with the chart's own identities: `helm install` of
// charts/sealpod into kube-apiserver (tenant-scoped RBAC, `rbac.tenantNamespaces`), then the
// operator and the API server run with tokens of the chart's ServiceAccounts (TokenRequest
// API), so every rule the chart grants is exercised and nothing more is available: a session
// created over `/v3` reaches Ready and runs a turn, neither component is ever refused by RBAC,
// and `kubectl auth can-i --as=system:serviceaccount:…` shows least privilege, including that
// the API server cannot read the operator's sealing keys. The Pod Security level of the
// sandbox namespace is shown too: admitted at `privileged`, refused at `baseline` with the
// reason.
//
// The chart's Deployments are scaled to zero: their images cannot run here (no container
// runtime); the same binaries run outside the cluster, with the same identities, under
// `sealpod up --control-plane kubernetes --operator-token-file … --api-server-token-file …`.
//
// Run by scripts/test.d/81-chart-kubernetes.sh. Needs root (the pod runner), node, helm, kubectl,
// the control plane's programs and tests/conformance/node_modules (the SDK).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync, chmodSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "../..");
const binDir = process.env.SEALPOD_BIN_DIR ?? join(repo, "target/debug");
const kubectlBin = process.env.KUBECTL ?? "kubectl";
const { waitFor, streamUntilCompleted } = await import(pathToFileURL(join(repo, "tests/conformance/lib/sessions.mjs")).href);
const { freePort } = await import(pathToFileURL(join(repo, "tests/conformance/lib/harness.mjs")).href);
const { OpenComputer } = await import(
  pathToFileURL(join(repo, "tests/conformance/node_modules/@opencomputer/sdk/dist/index.js")).href
);

const RELEASE = "sealpod";
const SYSTEM = "sealpod-system";
const TENANT = "default";
const OPERATOR_SA = `system:serviceaccount:${SYSTEM}:${RELEASE}-operator`;
const API_SERVER_SA = `system:serviceaccount:${SYSTEM}:${RELEASE}-api-server`;

const work = mkdtempSync(join(tmpdir(), "sealpod-chart-"));
chmodSync(work, 0o755); // sandbox users read their volumes under it
const dataDir = join(work, "data");
const envFile = join(work, "env");
let up; // the running `sealpod up`
let env; // its env file's variables

/** Starts `program args…`, collecting its output; `exited` is set when it ends. */
function start(program, args) {
  const child = spawn(program, args, { stdio: ["ignore", "pipe", "pipe"] });
  const run = { child, stdout: "", stderr: "", exited: null };
  child.stdout.on("data", (d) => (run.stdout += d));
  child.stderr.on("data", (d) => (run.stderr += d));
  child.on("exit", (code, signal) => (run.exited = { code, signal }));
  return run;
}

async function stop(run, what) {
  if (run.exited) return run.exited;
  run.child.kill("SIGTERM");
  await waitFor(`${what} to stop`, async () => run.exited, 90000);
  return run.exited;
}

const kubectl = (kubeconfig, ...args) =>
  execFileSync(kubectlBin, args, { env: { ...process.env, KUBECONFIG: kubeconfig }, encoding: "utf8" });

/** `kubectl auth can-i` as a ServiceAccount: "yes" or "no". `resource` is `kind[/name]` or
 * `kind:subresource`. */
function canI(kubeconfig, as, verb, resource, namespace) {
  const [kind, subresource] = resource.split(":");
  const args = ["auth", "can-i", verb, kind, `--as=${as}`];
  if (subresource) args.push(`--subresource=${subresource}`);
  if (namespace) args.push("-n", namespace);
  try {
    return kubectl(kubeconfig, ...args).trim();
  } catch (e) {
    return (e.stdout ?? "").trim(); // exit status 1 with "no"
  }
}

/** Phase one, on the bare control plane: install the chart and mint the two identities. */
async function installChart() {
  const kubeconfig = join(work, "admin.kubeconfig");
  const plane = start(join(binDir, "sealpod-controlplane"), [
    "serve", "--dir", join(dataDir, "kubernetes"), "--kubeconfig-out", kubeconfig,
  ]);
  try {
    await waitFor("the control plane", async () => {
      if (plane.exited) throw new Error(`the control plane exited: ${plane.stderr}`);
      return plane.stdout.includes("listening on");
    }, 120000);
    kubectl(kubeconfig, "create", "namespace", SYSTEM);
    execFileSync("helm", [
      "install", RELEASE, join(repo, "charts/sealpod"), "--namespace", SYSTEM,
      "--set", "managedCredential=fake-model", "--set", `rbac.tenantNamespaces={${TENANT}}`,
    ], { env: { ...process.env, KUBECONFIG: kubeconfig, HOME: work }, encoding: "utf8" });
    kubectl(kubeconfig, "scale", "deployment", "--all", "--replicas=0", "-n", SYSTEM);
    for (const component of ["operator", "api-server"]) {
      const token = kubectl(kubeconfig, "create", "token", `${RELEASE}-${component}`, "-n", SYSTEM, "--duration=2h").trim();
      writeFileSync(join(work, `${component}.token`), token, { mode: 0o600 });
    }
  } finally {
    await stop(plane, "the control plane");
  }
}

before(async () => {
  await installChart();
  const port = await freePort();
  up = start(join(binDir, "sealpod"), [
    "up", "--fake-model", "--control-plane", "kubernetes", "--data-dir", dataDir,
    "--listen", `127.0.0.1:${port}`, "--env-file", envFile, "--namespace", TENANT,
    "--watch-namespaces", TENANT,
    "--operator-token-file", join(work, "operator.token"),
    "--api-server-token-file", join(work, "api-server.token"),
  ]);
  await waitFor("sealpod up to write its env file", async () => {
    if (up.exited) throw new Error(`sealpod up exited early: ${JSON.stringify(up.exited)}\n${up.stderr}`);
    return existsSync(envFile);
  }, 180000).catch((e) => {
    throw new Error(`${e.message}\n--- sealpod up stderr ---\n${up.stderr}`);
  });
  env = Object.fromEntries(
    readFileSync(envFile, "utf8").trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
});

after(async () => {
  if (up) await stop(up, "sealpod up");
  if (!process.env.SEALPOD_KEEP_TEST_DIRS) rmSync(work, { recursive: true, force: true });
});

test("the operator and the API server run as the chart's ServiceAccounts", () => {
  for (const [component, sa] of [["operator", OPERATOR_SA], ["api-server", API_SERVER_SA]]) {
    const kubeconfig = join(dataDir, `${component}.kubeconfig`);
    assert.equal(kubectl(kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"), sa);
  }
});

test("a session created over /v3 reaches Ready and runs a turn", async () => {
  const oc = new OpenComputer({ apiKey: env.SEALPOD_API_KEY, baseUrl: env.SEALPOD_URL });
  const agent = await oc.agents.create({ name: "chart", prompt: "You are the chart test agent.", model: "anthropic/claude-test-1" });
  const s = await oc.sessions.create({ agent: agent.id, input: "[[scenario:answer]] hello from the chart" });
  const events = await streamUntilCompleted(s, 1, 120000);
  assert.ok(events.some((e) => e.type === "agent.message" && e.level === "user"), JSON.stringify(events.map((e) => e.type)));
  const session = JSON.parse(kubectl(env.KUBECONFIG, "get", "sessions.sealpod.dev", s.id.replace("_", "-"), "-n", TENANT, "-o", "json"));
  const ready = session.status.conditions.find((c) => c.type === "Ready");
  assert.equal(ready?.status, "True", JSON.stringify(session.status));
});

test("neither component was ever refused by RBAC", () => {
  const logs = join(dataDir, "logs");
  for (const file of ["operator.log", "api-server.log"]) {
    const text = readFileSync(join(logs, file), "utf8");
    const refused = text.split("\n").filter((l) => /forbidden/i.test(l));
    assert.deepEqual(refused, [], `${file} shows RBAC refusals`);
  }
});

test("kubectl auth can-i: each ServiceAccount has what it needs and no more", () => {
  const kc = env.KUBECONFIG;
  const expect = [
    // The operator builds sandboxes in tenant namespaces…
    [OPERATOR_SA, "create", "pods", TENANT, "yes"],
    [OPERATOR_SA, "delete", "pods", TENANT, "yes"],
    [OPERATOR_SA, "create", "networkpolicies.networking.k8s.io", TENANT, "yes"],
    [OPERATOR_SA, "patch", "sessions.sealpod.dev:status", TENANT, "yes"],
    [OPERATOR_SA, "get", "secrets/sealpod-sealing-keys", SYSTEM, "yes"],
    // …and nothing else.
    [OPERATOR_SA, "update", "pods", TENANT, "no"],
    [OPERATOR_SA, "create", "pods", "kube-system", "no"],
    [OPERATOR_SA, "create", "sessions.sealpod.dev", TENANT, "no"],
    [OPERATOR_SA, "delete", "sessions.sealpod.dev", TENANT, "no"],
    [OPERATOR_SA, "get", "secrets", "kube-system", "no"],
    [OPERATOR_SA, "create", "deployments.apps", SYSTEM, "no"],
    [OPERATOR_SA, "create", "clusterrolebindings.rbac.authorization.k8s.io", undefined, "no"],
    [OPERATOR_SA, "get", "nodes", undefined, "no"],
    // The API server writes the custom resources and reads its own token key…
    [API_SERVER_SA, "create", "sessions.sealpod.dev", TENANT, "yes"],
    [API_SERVER_SA, "patch", "sessions.sealpod.dev:status", TENANT, "yes"],
    [API_SERVER_SA, "create", "schedules.sealpod.dev", TENANT, "yes"],
    [API_SERVER_SA, "patch", "schedules.sealpod.dev:status", TENANT, "yes"],
    [OPERATOR_SA, "create", "schedules.sealpod.dev", TENANT, "no"],
    [API_SERVER_SA, "get", "secrets/sealpod-runtime-token-key", SYSTEM, "yes"],
    [API_SERVER_SA, "get", "credentials.sealpod.dev/fake-model", SYSTEM, "yes"],
    [API_SERVER_SA, "create", "configmaps", TENANT, "yes"],
    // …never a Secret of a tenant (a session's proxy Secret holds the real key), the operator's
    // private sealing keys, pods, or anything outside its namespaces.
    ...["get", "list", "watch", "create", "update", "delete"].map((verb) => [API_SERVER_SA, verb, "secrets", TENANT, "no"]),
    [API_SERVER_SA, "get", "secrets/ses-example-proxy", TENANT, "no"],
    [API_SERVER_SA, "get", "secrets/sealpod-sealing-keys", SYSTEM, "no"],
    [API_SERVER_SA, "list", "secrets", SYSTEM, "no"],
    [API_SERVER_SA, "create", "pods", TENANT, "no"],
    [API_SERVER_SA, "get", "pods", TENANT, "no"],
    [API_SERVER_SA, "patch", "credentials.sealpod.dev:status", TENANT, "no"],
    [API_SERVER_SA, "create", "sessions.sealpod.dev", "kube-system", "no"],
    [API_SERVER_SA, "get", "secrets", "kube-system", "no"],
    [API_SERVER_SA, "create", "leases.coordination.k8s.io", SYSTEM, "no"],
  ];
  const wrong = expect
    .map(([as, verb, resource, ns, want]) => ({ as, verb, resource, ns, want, got: canI(kc, as, verb, resource, ns) }))
    .filter((r) => r.got !== r.want);
  assert.deepEqual(wrong, []);
});

test("Pod Security: the sandbox pod is admitted at privileged and refused at baseline, with the reason", () => {
  const kc = env.KUBECONFIG;
  const pods = JSON.parse(kubectl(kc, "get", "pods", "-n", TENANT, "-l", "sealpod.dev/session", "-o", "json")).items;
  assert.ok(pods.length > 0, "a sandbox pod runs");
  const pod = pods[0];
  const copy = {
    apiVersion: "v1", kind: "Pod",
    metadata: { name: "psa-probe" },
    spec: { ...pod.spec, nodeName: undefined },
  };
  const file = join(work, "psa-probe.json");
  writeFileSync(file, JSON.stringify(copy));
  for (const [ns, level] of [["psa-privileged", "privileged"], ["psa-baseline", "baseline"]]) {
    kubectl(kc, "create", "namespace", ns);
    kubectl(kc, "label", "namespace", ns, `pod-security.kubernetes.io/enforce=${level}`);
  }
  // Server-side dry run: admission runs, nothing is created.
  kubectl(kc, "create", "--dry-run=server", "-n", "psa-privileged", "-f", file);
  let refusal = "";
  try {
    kubectl(kc, "create", "--dry-run=server", "-n", "psa-baseline", "-f", file);
  } catch (e) {
    refusal = String(e.stderr ?? e.message);
  }
  console.log(`refused at baseline: ${refusal.trim()}`);
  assert.match(refusal, /violates PodSecurity "baseline:latest"/, refusal);
  assert.match(refusal, /NET_ADMIN/, refusal);
});

test("no secret in the logs of the components running as the chart's identities", () => {
  const tokens = ["operator", "api-server"].map((c) => readFileSync(join(work, `${c}.token`), "utf8").trim());
  const logs = join(dataDir, "logs");
  for (const file of readdirSync(logs)) {
    const text = readFileSync(join(logs, file), "utf8");
    for (const token of [...tokens, env.SEALPOD_API_KEY]) {
      assert.ok(!text.includes(token), `${file} holds a token`);
    }
  }
});
