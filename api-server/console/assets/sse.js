// A server-sent events reader over fetch, so credentials travel in headers (never in the URL).
// It resumes after a dropped stream from the last seq seen (`after` and `Last-Event-ID`),
// with a short backoff, until `signal` aborts.

import { errorFrom, withQuery } from './api.js';

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

// url: the events URL with its query (stream=sse&level=…), without `after`.
// onEvent(event), onState('connecting'|'live'|'reconnecting'|'ended'|'stopped'), onFatal(ApiError)
// on a 4xx. After the server ends a stream, it resumes only while resume() says so.
export function readStream({ url, headers = {}, signal, onEvent, onState = () => {}, onFatal = () => {}, resume = () => true }) {
  let lastSeq = 0;

  const dispatch = (frame) => {
    let ev;
    try {
      ev = JSON.parse(frame.text);
    } catch {
      return false;
    }
    const seq = Number(ev && ev.seq != null ? ev.seq : frame.id);
    if (!ev || !Number.isFinite(seq) || seq <= lastSeq) return false;
    lastSeq = seq;
    try {
      onEvent(ev);
    } catch {
      // A rendering problem with one event must not end the stream.
    }
    return true;
  };

  const run = async () => {
    let delay = 500;
    while (!signal.aborted) {
      let progressed = false;
      try {
        onState('connecting');
        const res = await fetch(withQuery(url, { after: lastSeq }), {
          headers: { ...headers, Accept: 'text/event-stream', 'Last-Event-ID': String(lastSeq) },
          credentials: 'same-origin',
          cache: 'no-store',
          signal,
        });
        if (!res.ok) {
          const err = await errorFrom(res);
          if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
            onState('stopped');
            onFatal(err);
            return;
          }
        } else {
          onState('live');
          const reader = res.body.getReader();
          const dec = new TextDecoder();
          let buf = '';
          let frame = { text: '', lines: 0, id: '' };
          for (;;) {
            const { value, done } = await reader.read();
            if (done) {
              if (!resume()) {
                onState('ended');
                return;
              }
              break;
            }
            buf += dec.decode(value, { stream: true });
            let nl;
            while ((nl = buf.indexOf('\n')) >= 0) {
              let line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              if (line.endsWith('\r')) line = line.slice(0, -1);
              if (line === '') {
                if (frame.lines && dispatch(frame)) progressed = true;
                frame = { text: '', lines: 0, id: '' };
                continue;
              }
              if (line[0] === ':') continue; // comment or heartbeat
              const c = line.indexOf(':');
              const field = c < 0 ? line : line.slice(0, c);
              let v = c < 0 ? '' : line.slice(c + 1);
              if (v[0] === ' ') v = v.slice(1);
              if (field === 'data') {
                frame.text += (frame.lines ? '\n' : '') + v;
                frame.lines += 1;
              } else if (field === 'id') frame.id = v;
            }
          }
        }
      } catch {
        if (signal.aborted) return;
      }
      if (signal.aborted) return;
      onState('reconnecting');
      if (progressed) delay = 500;
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 15000);
    }
  };
  run().catch(() => onState('stopped'));
}
