// Helpers shared by the suites that drive sessions with the official SDK: polling with a bound,
// and reading a session's event stream until a number of turns completed.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` (sync or async) until it returns a truthy value (errors count as not yet); fails
 * after `ms`. */
export async function waitFor(what, fn, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve().then(fn).catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Streams the session's events with the SDK from the start until `n` turn.completed arrived;
 * the sequence numbers must run 1, 2, 3… without a gap or a repeat. */
export async function streamUntilCompleted(s, n, ms = 60000) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  const got = [];
  try {
    for await (const ev of s.events({ signal: ac.signal })) {
      got.push(ev);
      if (got.filter((e) => e.type === "turn.completed").length >= n) break;
    }
  } catch (e) {
    if (!ac.signal.aborted) throw e;
  }
  clearTimeout(timer);
  assert.ok(got.filter((e) => e.type === "turn.completed").length >= n, `timed out: ${got.map((e) => e.type).join(",")}`);
  assert.deepEqual(got.map((e) => e.seq), got.map((_, i) => i + 1));
  return got;
}

/** Every request the fake model API at `https://127.0.0.1:port` received (key slots redacted,
 * `auth` classified), trusting its certificate file `caFile`. */
export function fakeModelRequests(port, caFile) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: "127.0.0.1", port, path: "/_fake/requests", ca: readFileSync(caFile) }, (res) => {
      let data = "";
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve(JSON.parse(data)));
    });
    req.on("error", reject);
    req.end();
  });
}
