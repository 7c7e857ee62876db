// A newcomer's first run: the README's first command, verbatim, in a fresh clone, ends with
// `sealpod is up.`, and the README's SDK snippet then completes a session against it; the
// install step it starts with looks for each program first, installs nothing a second time, and
// installs the package of a program it does not find.
//
// Run by scripts/test.d/82-first-run.sh, as root on a machine `scripts/setup` prepared. The clone
// builds into this checkout's target directory (`CARGO_TARGET_DIR`: only the workspace's own
// crates compile again) and `sealpod up` keeps its state in a temporary directory and listens on
// a free port (`SEALPOD_UP_DATA_DIR`, `SEALPOD_UP_LISTEN`): the environment changes, the command
// does not. `apt-get` on PATH is a stand-in that records every call: on a prepared machine
// nothing may be installed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, statSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "../..");
const { waitFor } = await import(pathToFileURL(join(repo, "tests/conformance/lib/sessions.mjs")).href);
const { freePort } = await import(pathToFileURL(join(repo, "tests/conformance/lib/harness.mjs")).href);

const work = mkdtempSync(join(tmpdir(), "sealpod-first-run-"));
chmodSync(work, 0o755); // sandbox users read their volumes under it
const clone = join(work, "clone");
const shims = join(work, "shims");
const aptCalls = join(work, "apt-get.calls");
const readme = readFileSync(join(repo, "README.md"), "utf8");
let up; // { child, stdout, stderr, exited }

/** The text between `<!-- NAME:start -->` and `<!-- NAME:end -->` of the README, fence dropped. */
function block(name, lang) {
  const text = readme.split(`<!-- ${name}:start -->`)[1]?.split(`<!-- ${name}:end -->`)[0] ?? "";
  return text.replace(new RegExp(`^\\s*\`\`\`${lang}\\n`), "").replace(/```\s*$/, "").trim();
}

const targetDir = JSON.parse(
  execFileSync("cargo", ["metadata", "--format-version", "1", "--no-deps"], { cwd: repo, encoding: "utf8" }),
).target_directory;

/** The environment of a command in the clone: the apt-get stand-in first on PATH. */
const cloneEnv = (extra = {}) => ({ ...process.env, PATH: `${shims}:${process.env.PATH}`, CARGO_TARGET_DIR: targetDir, ...extra });

before(() => {
  // A fresh clone of this checkout, with the working tree's uncommitted changes (none in CI), so
  // what it builds is what the other suites test.
  execFileSync("git", ["clone", "--quiet", repo, clone]);
  const diff = execFileSync("git", ["diff", "HEAD", "--binary"], { cwd: repo });
  if (diff.length > 0) execFileSync("git", ["apply", "--whitespace=nowarn"], { cwd: clone, input: diff });
  const untracked = execFileSync("git", ["ls-files", "--others", "--exclude-standard", "-z"], { cwd: repo, encoding: "utf8" })
    .split("\0").filter(Boolean);
  for (const f of untracked) {
    mkdirSync(dirname(join(clone, f)), { recursive: true });
    copyFileSync(join(repo, f), join(clone, f));
    chmodSync(join(clone, f), statSync(join(repo, f)).mode);
  }
  mkdirSync(shims);
  writeFileSync(join(shims, "apt-get"), `#!/bin/sh\necho "$@" >> '${aptCalls}'\nexit 1\n`, { mode: 0o755 });
});

after(async () => {
  if (up && !up.exited) {
    process.kill(-up.child.pid, "SIGKILL");
    await waitFor("the first run to stop", async () => up.exited, 30000).catch(() => {});
  }
  if (!process.env.SEALPOD_KEEP_TEST_DIRS) rmSync(work, { recursive: true, force: true });
});

test("the README's first command, verbatim in a fresh clone, brings the platform up", async () => {
  const command = block("first-run", "sh");
  assert.equal(command.split("\n").length, 1, command);
  const port = await freePort();
  const child = spawn("bash", ["-c", command], {
    cwd: clone,
    detached: true, // its own process group: stopped whole, as Ctrl-C stops it in a terminal
    env: cloneEnv({ SEALPOD_UP_DATA_DIR: join(work, "data"), SEALPOD_UP_LISTEN: `127.0.0.1:${port}` }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  up = { child, stdout: "", stderr: "", exited: null };
  child.stdout.on("data", (d) => (up.stdout += d));
  child.stderr.on("data", (d) => (up.stderr += d));
  child.on("exit", (code, signal) => (up.exited = { code, signal }));
  await waitFor("`sealpod is up.`", async () => up.exited || up.stdout.includes("sealpod is up."), 900000);
  assert.equal(up.exited, null, `the first command exited\n${up.stderr.slice(-4000)}`);
  assert.match(up.stdout, /^local mode: found every program it needs/m);
  assert.ok(!existsSync(aptCalls), "nothing installed on a prepared machine");
  assert.ok(existsSync(join(clone, "sealpod.env")), "the env file is written where the README says");
});

test("the README's SDK snippet then completes a session", async () => {
  assert.ok(up && !up.exited, "the platform is up");
  const vars = Object.fromEntries(
    readFileSync(join(clone, "sealpod.env"), "utf8").trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  // The SDK from the conformance suite's pinned install, as `npm install @opencomputer/sdk@0.12.4`
  // would put it beside hello.mjs.
  symlinkSync(join(repo, "tests/conformance/node_modules"), join(clone, "node_modules"));
  writeFileSync(join(clone, "hello.mjs"), block("sdk-snippet", "js"));
  const stdout = execFileSync("node", ["hello.mjs"], {
    cwd: clone,
    env: { ...process.env, SEALPOD_URL: vars.SEALPOD_URL, SEALPOD_API_KEY: vars.SEALPOD_API_KEY },
    encoding: "utf8",
    timeout: 180000,
  });
  const lines = stdout.trim().split("\n");
  assert.equal(lines[0], "user.message Say hello");
  assert.equal(lines.at(-1).trim(), "turn.completed", stdout);
});

test("Ctrl-C stops it, and the install step run twice more installs nothing", async () => {
  process.kill(-up.child.pid, "SIGINT");
  await waitFor("the first run to stop", async () => up.exited, 90000);
  assert.equal(up.exited.code, 0, up.stderr.slice(-4000));
  assert.match(up.stdout, /^sealpod stopped\.$/m);
  for (let run = 0; run < 2; run += 1) {
    const out = execFileSync(join(clone, "scripts/setup-local"), { cwd: clone, env: cloneEnv(), encoding: "utf8" });
    assert.match(out, /^local mode: found every program it needs \(ip nft socat curl setpriv unshare nsenter newuidmap newgidmap\)$/m);
  }
  assert.ok(!existsSync(aptCalls), "apt-get was never run");
});

test("the install step looks for each program: one hidden program is the one it installs", () => {
  // `socat` made unrunnable in a mount namespace of the step's own (its file bound over by a
  // file without execute bits); its package stays installed, so apt is not needed.
  const socat = execFileSync("bash", ["-c", "command -v socat"], { encoding: "utf8" }).trim();
  const blank = join(work, "not-a-program");
  writeFileSync(blank, "", { mode: 0o644 });
  const out = execFileSync("unshare", ["-m", "bash", "-c", `mount --bind ${blank} ${socat} && exec scripts/setup-local`], {
    cwd: clone, env: cloneEnv(), encoding: "utf8",
  });
  assert.match(out, /^local mode: socat missing; installing socat$/m);
});
