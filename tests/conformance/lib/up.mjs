// `sealpod up`, run as a user runs it: started on a data directory, ready once its env file is
// written, stopped with Ctrl-C. Shared by the system test and the session-latency benchmark.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

import { waitFor } from "./sessions.mjs";

/**
 * Starts `BIN_DIR/sealpod up --fake-model` with `args` added and waits for its env file. With
 * `user` (`{ name, home }`) it runs as that user (setpriv, which execs it: signals reach `up`
 * itself), as a normal user starts it.
 * Returns `{ run: { child, stdout, stderr, exited }, vars }`, `vars` being the env file's lines.
 */
export async function startUp({ binDir, dataDir, envFile, port, args = [], user }) {
  rmSync(envFile, { force: true });
  const up = [
    join(binDir, "sealpod"),
    "up", "--fake-model", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--env-file", envFile, ...args,
  ];
  const [program, ...argv] = user
    ? ["setpriv", `--reuid=${user.name}`, `--regid=${user.name}`, "--init-groups", "--", ...up]
    : up;
  const env = { ...process.env, SEALPOD_UP_LOG: "info", ...(user ? { HOME: user.home, USER: user.name } : {}) };
  const child = spawn(program, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
  const run = { child, stdout: "", stderr: "", exited: null };
  child.stdout.on("data", (d) => (run.stdout += d));
  child.stderr.on("data", (d) => (run.stderr += d));
  child.on("exit", (code, signal) => (run.exited = { code, signal }));
  // Ready once its env file is written and its summary printed (the summary's last line comes
  // after the file). (`waitFor` retries a probe that throws: an early exit ends the wait instead.)
  const ready = () => existsSync(envFile) && run.stdout.includes("Ctrl-C stops everything");
  await waitFor("sealpod up to write its env file and print its summary", async () => run.exited || ready(), 180000)
    .catch((e) => {
      throw new Error(`${e.message}\n--- sealpod up stderr ---\n${run.stderr}`);
    });
  if (run.exited) throw new Error(`sealpod up exited early: ${JSON.stringify(run.exited)}\n${run.stderr}`);
  const vars = Object.fromEntries(
    readFileSync(envFile, "utf8").trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  return { run, vars };
}

/** Ctrl-C, as a user stops it; resolves with the exit status. */
export async function stopUp(run) {
  run.child.kill("SIGINT");
  await waitFor("sealpod up to stop", async () => run.exited, 90000);
  return run.exited;
}
