// The web console in a real browser: Playwright (playwright-core, pinned) drives Debian's
// Chromium against `sealpod up --fake-model`. An operator signs in with the org key, sees the
// sessions made through the official SDK (nothing is created by hand), opens one, steers it and
// watches the turn stream in live, sees its egress refusal, redelivers a failed webhook delivery,
// mints a client token, sees a long tool output collapsed, and rotates a credential and makes it
// the default; the end-user view opened with that token shows and steers its session and reaches
// nothing else; signing out makes the cookie worthless.
//
// Every page is saved as a screenshot in target/test-artifacts/console/ (or
// $SEALPOD_TEST_ARTIFACTS), and the test fails on any console error or uncaught exception of a
// page, on a key, token or cookie in any URL the browser requested, in any page or file the
// console served, or in any log line of the platform.
//
// Run by scripts/test.d/85-console.sh (which builds the binaries first), as root (the pod
// runner's network namespaces). Needs tests/conformance/node_modules (the SDK, playwright-core)
// and /usr/bin/chromium (scripts/setup.d/40-api-server.sh).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, chmodSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "../..");
const modules = join(repo, "tests/conformance/node_modules");
const { waitFor, streamUntilCompleted } = await import(pathToFileURL(join(repo, "tests/conformance/lib/sessions.mjs")).href);
const { freePort } = await import(pathToFileURL(join(repo, "tests/conformance/lib/harness.mjs")).href);
const { startUp, stopUp } = await import(pathToFileURL(join(repo, "tests/conformance/lib/up.mjs")).href);
const { OpenComputer } = await import(pathToFileURL(join(modules, "@opencomputer/sdk/dist/index.js")).href);
const { chromium } = await import(pathToFileURL(join(modules, "playwright-core/index.mjs")).href);

const binDir = process.env.SEALPOD_BIN_DIR ?? join(repo, "target/debug");
const artifacts = process.env.SEALPOD_TEST_ARTIFACTS ?? join(repo, "target/test-artifacts/console");
const work = mkdtempSync(join(tmpdir(), "sealpod-console-"));
chmodSync(work, 0o755); // sandbox users read their volumes under it
const dataDir = join(work, "data");
const tag = () => randomBytes(4).toString("hex");
const hex = (s) => Buffer.from(s, "utf8").toString("hex");

let up; // the running `sealpod up`
let env; // its env file
let base; // http://127.0.0.1:PORT
let browser;
let receiver; // the webhook receiver: answers `receiver.status`
const secrets = new Map(); // name → value: none may appear in a URL, a served file or a log
const problems = []; // console errors and uncaught exceptions of every page
const requested = []; // every URL any page requested
const served = []; // [url, body] of every page, script and style the console served

/** A browser context whose pages are watched for errors, requests and served files. */
async function watchedContext() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  context.on("page", (page) => {
    page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()} (${page.url()})`); });
    page.on("pageerror", (e) => problems.push(`exception: ${e.message} (${page.url()})`));
  });
  context.on("request", (r) => requested.push(r.url()));
  context.on("response", async (r) => {
    const kind = r.request().resourceType();
    if (["document", "script", "stylesheet"].includes(kind) && r.url().startsWith(`${base}/console`)) {
      served.push([r.url(), await r.text().catch(() => "")]);
    }
  });
  return context;
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

/** The `data-status` of delivery rows after reloading the page until `want` shows (the list is
 * read when the page opens). */
async function deliveryWith(page, status) {
  return waitFor(`a ${status} delivery in the console`, async () => {
    await page.reload();
    const row = page.locator(`#deliveries tr[data-status="${status}"]`).first();
    await row.waitFor({ timeout: 3000 });
    return row;
  }, 60000);
}

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  const port = await freePort();
  const started = await startUp({ binDir, dataDir, envFile: join(work, "env"), port, args: ["--control-plane", "devcluster"] });
  up = started.run;
  env = started.vars;
  base = `http://127.0.0.1:${port}`;
  secrets.set("org key", env.SEALPOD_API_KEY);
  receiver = { status: 500, bodies: [] };
  receiver.server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => { receiver.bodies.push(body); res.writeHead(receiver.status).end(); });
  });
  await new Promise((r) => receiver.server.listen(0, "127.0.0.1", r));
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    // As root Chromium needs --no-sandbox; the rest keeps it off the (closed) network.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  receiver?.server.close();
  if (up && !up.exited) await stopUp(up);
  if (!process.env.SEALPOD_KEEP_TEST_DIRS) rmSync(work, { recursive: true, force: true });
});

test("up prints the console's address, as the README shows it beside a screenshot", () => {
  assert.match(up.stdout, new RegExp(`^ {2}console: {4}${base}/console/$`, "m"), up.stdout);
  const readme = readFileSync(join(repo, "README.md"), "utf8");
  assert.ok(readme.includes("`console:    http://127.0.0.1:8780/console/`"), "the README shows the line with up's default address");
  assert.ok(readme.includes("](docs/console.png)") && statSync(join(repo, "docs/console.png")).size > 0);
});

test("an operator and an end user work in the console; nothing secret leaks", async () => {
  // What an app made through the SDK: a credential, an agent, two sessions; one tried to reach a
  // host its egress does not allow, and has a webhook destination whose receiver fails.
  const oc = new OpenComputer({ apiKey: env.SEALPOD_API_KEY, baseUrl: env.SEALPOD_URL });
  const fakeKey = readFileSync(join(dataDir, "fake-model/key"), "utf8").trim();
  secrets.set("model key", fakeKey);
  const cred = await oc.credentials.create({ provider: "anthropic", key: fakeKey, name: `fake-model-${tag()}` });
  const agent = await oc.agents.create({ name: `console-${tag()}`, prompt: "You are the console test agent.", model: "anthropic/claude-test-1", credential: cred.id });
  const curl = "curl -sS -m 5 https://blocked.example/ || echo refused";
  const a = await oc.sessions.create({ agent: agent.id, input: `[[scenario:bash:${hex(curl)}]] fetch blocked.example` });
  const b = await oc.sessions.create({ agent: agent.id, input: "[[scenario:big_output:lines=300]] count for me" });
  // A credential to rotate in the console (made through the SDK too: nothing by hand).
  const spare = `sk-ant-spare-${tag()}-AAAA`;
  secrets.set("spare key", spare);
  const spareCred = await oc.credentials.create({ provider: "anthropic", key: spare, name: `spare-${tag()}` });
  secrets.set("client token of a", a.clientToken ?? "");
  await streamUntilCompleted(a, 1, 120000);
  await streamUntilCompleted(b, 1, 120000);
  const dest = await fetch(`${env.SEALPOD_URL}/sessions/${a.id}/destinations`, {
    method: "POST",
    headers: { authorization: `Bearer ${env.SEALPOD_API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ url: `http://127.0.0.1:${receiver.server.address().port}/hook` }),
  });
  assert.equal(dest.status, 201, await dest.text());

  // Sign in.
  const operator = await watchedContext();
  const page = await operator.newPage();
  const firstLoad = [];
  const measure = async (r) => {
    const sizes = await r.request().sizes();
    firstLoad.push({ url: r.url(), bytes: sizes.responseHeadersSize + sizes.responseBodySize });
  };
  page.on("response", measure);
  await page.goto(`${base}/console/`);
  await page.locator("#sign-in").waitFor();
  await page.waitForLoadState("networkidle");
  page.off("response", measure);
  await shot(page, "01-sign-in");
  // What the first load transfers (headers and gzip bodies): under 150 KiB.
  const kib = firstLoad.reduce((sum, r) => sum + r.bytes, 0) / 1024;
  console.log(`console first load: ${firstLoad.length} requests, ${kib.toFixed(1)} KiB transferred`);
  assert.ok(kib < 150, `first load ${kib} KiB: ${JSON.stringify(firstLoad)}`);
  await page.fill("#api-key", env.SEALPOD_API_KEY);
  await page.press("#api-key", "Enter");
  await page.locator(`#sessions tr[data-session="${a.id}"]`).waitFor();
  await page.locator(`#sessions tr[data-session="${b.id}"]`).waitFor();
  const [cookie] = await operator.cookies();
  assert.equal(cookie.name, "sealpod_console");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.equal(cookie.path, "/console");
  secrets.set("console cookie", cookie.value);
  assert.equal(await page.evaluate(() => document.cookie), "", "no script can read the cookie");
  assert.deepEqual(await page.evaluate(() => [localStorage.length, sessionStorage.length]), [0, 0]);
  await shot(page, "02-sessions");

  await page.click('a[href="/console/agents"]');
  await page.getByText(agent.name).first().waitFor();
  await shot(page, "03-agents");

  // One session, live: its egress refusal, then a turn steered from here streams in.
  await page.click('a[href="/console/sessions"]');
  await page.locator(`#sessions tr[data-session="${a.id}"] a`).first().click();
  await page.locator("#events [data-seq]").first().waitFor();
  // Its bash call and what it said, each rendered as what it is, and the refusal it met.
  await page.locator('#events [data-type="tool.call"]').first().waitFor();
  await page.locator('#events [data-type="exec.completed"]').first().waitFor();
  await page.locator("#egress", { hasText: "blocked.example" }).waitFor();
  await page.evaluate(() => { window.sameDocument = true; });
  const before = await page.locator("#events [data-seq]").count();
  const steer = `steered from the console ${tag()}`;
  // The fake model answers by the latest scenario marker of the conversation: `answer` quotes it.
  await page.fill("#steer-text", `[[scenario:answer]] ${steer}`);
  await page.locator("#steer").evaluate((form) => form.requestSubmit());
  await page.locator('#events [data-type="agent.message"]', { hasText: steer }).first().waitFor({ timeout: 90000 });
  assert.ok(await page.locator("#events [data-seq]").count() > before);
  assert.equal(await page.evaluate(() => window.sameDocument), true, "the events arrived without a reload");
  await shot(page, "04-session");

  // The steered turn's events failed to reach the receiver; redelivered once it answers 2xx.
  const failed = await deliveryWith(page, "failed");
  const delivery = await failed.getAttribute("data-delivery");
  receiver.status = 204;
  const received = receiver.bodies.length;
  await page.locator(`#deliveries tr[data-delivery="${delivery}"] .redeliver`).click();
  await waitFor("the redelivery to arrive", () => receiver.bodies.length > received, 30000);
  await waitFor("the delivery to show delivered", async () => {
    await page.reload();
    const row = page.locator(`#deliveries tr[data-delivery="${delivery}"]`);
    return (await row.getAttribute("data-status", { timeout: 3000 })) === "delivered";
  }, 30000);
  await shot(page, "05-webhooks");

  // A client token for the end user: its link is shown once.
  await page.click("#mint-token");
  const link = await waitFor("the end-user link", async () => {
    const value = await page.locator("#client-link").inputValue();
    return value.includes("#token=") ? value : undefined;
  });
  assert.ok(link.startsWith(`${base}/console/s/${a.id}#token=sct_`), link);
  const token = link.split("#token=")[1];
  secrets.set("minted client token", token);

  // A long tool output collapses; the tool call and its result show as what they are.
  await page.goto(`${base}/console/sessions/${b.id}`);
  await page.locator('#events [data-type="exec.completed"] details').first().waitFor();
  await shot(page, "06-long-output");

  // Credentials: the spare one rotated and made the default; only last4 ever shows.
  await page.click('a[href="/console/credentials"]');
  const row = page.locator(`#credentials tr[data-credential="${spareCred.id}"]`);
  await row.getByText("AAAA").waitFor();
  const rotated = `sk-ant-spare-${tag()}-BBBB`;
  secrets.set("rotated key", rotated);
  await row.locator(".rotate").click();
  await row.locator(".rotate-key").fill(rotated);
  await row.locator(".rotate-key").press("Enter");
  await row.getByText("BBBB").waitFor();
  await row.locator(".set-default").click();
  await page.locator(`#credentials tr[data-credential="${spareCred.id}"][data-default="true"]`).waitFor();
  const listed = (await oc.credentials.list()).find((c) => c.id === spareCred.id);
  assert.equal(listed.last4, "BBBB");
  assert.ok(!(await page.content()).includes(rotated.slice(0, -4)), "the key is write-only");
  await shot(page, "07-credentials");

  // The end user: another browser profile, no cookie, the token only in the link's fragment.
  const endUser = await watchedContext();
  const view = await endUser.newPage();
  await view.goto(link);
  await view.locator("#end-user #events [data-seq]").first().waitFor();
  assert.equal(view.url(), `${base}/console/s/${a.id}`, "the token left the address bar");
  const asked = `asked by the end user ${tag()}`;
  await view.fill("#steer-text", `[[scenario:answer]] ${asked}`);
  await view.locator("#steer").evaluate((form) => form.requestSubmit());
  await view.locator('#events [data-type="agent.message"]', { hasText: asked }).first().waitFor({ timeout: 90000 });
  await shot(view, "08-end-user");
  // The token reaches this session and nothing else; the admin pages are closed to this profile.
  const as = (t) => ({ headers: { authorization: `Bearer ${t}` } });
  assert.equal((await endUser.request.get(`${base}/v3/sessions/${b.id}/events`, as(token))).status(), 404);
  assert.equal((await endUser.request.get(`${base}/v3/sessions`, as(token))).status(), 403);
  assert.equal((await endUser.request.get(`${base}/v3/credentials`, as(token))).status(), 403);
  assert.equal((await endUser.request.get(`${base}/console/api/v3/sessions/${b.id}`)).status(), 401);
  await view.goto(`${base}/console/sessions`);
  await view.locator("#sign-in").waitFor();

  // Sign out: the cookie, replayed, is refused.
  await page.click("#sign-out");
  await page.locator("#sign-in").waitFor();
  const replay = { headers: { cookie: `sealpod_console=${cookie.value}` } };
  const refused = await endUser.request.get(`${base}/console/api/v3/sessions`, replay);
  assert.equal(refused.status(), 401, await refused.text());

  // Nothing secret in a URL, a served file or a log; no page logged an error.
  assert.deepEqual(problems, []);
  for (const [name, value] of secrets) {
    assert.ok(value.length > 8, name);
    // The fragment never leaves the browser; every other part of a URL does.
    for (const url of requested) assert.ok(!url.split("#")[0].includes(value), `${name} in a URL: ${url.split("#")[0]}`);
    for (const [url, body] of served) assert.ok(!body.includes(value), `${name} served in ${url}`);
  }
  assert.ok(served.some(([url]) => url.endsWith("/assets/app.js")), "the scripts were watched");
  await operator.close();
  await endUser.close();
});

test("no key, token or cookie appears in any log of the platform", async () => {
  const logs = join(dataDir, "logs");
  const files = readdirSync(logs, { recursive: true }).map((f) => join(logs, f)).filter((f) => statSync(f).isFile());
  assert.ok(files.length > 0);
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    for (const [name, value] of secrets) assert.ok(!text.includes(value), `${name} in ${file}`);
  }
});
