//! Response redaction (`redact.rs`) across arbitrary frame boundaries, and the request-side slot
//! swap (`swap.rs`) on fuzzed header values.
//!
//! Input: `n` needles (a length byte and that many bytes of real value each), a list of cut
//! points, then the body, cut into frames at those points; the same bytes also feed header values
//! for `redact_headers` and `swap_slots`.
//!
//! Invariants, where they hold (see `overlaps`):
//! - no real value is left in the redacted body or in a header name or value;
//! - the frames put together equal `replace_all` over the whole body: where a frame ends never
//!   changes the result;
//! - nothing is held back but a possible key prefix: after each frame, what was sent is the
//!   redacted input so far less fewer bytes than the longest key;
//! - `swap_slots` writes the real value exactly where a declared slot held the sealed token,
//!   and leaves every other value as it was.

#![no_main]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame};
use libfuzzer_sys::fuzz_target;
use sealpod_resources::proxy_config::HeaderSlot;
use sealpod_resources::secret::Secret;
use sealpod_sidecar::fuzzing::{redact_headers, redacting, replace_all, swap_slots};

const SEALED: [&str; 3] = [
    "sp_sealed_0123456789abcdef0123456789abcdef",
    "sp_sealed_ffffffffffffffffffffffffffffffff",
    "sp_sealed_a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5",
];

/// A body that yields one frame per poll and is pending in between, so that what the redactor
/// sends after each frame can be observed.
struct Steps {
    frames: VecDeque<Bytes>,
    ready: bool,
}

impl Body for Steps {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if !self.ready {
            self.ready = true;
            return Poll::Pending;
        }
        self.ready = false;
        Poll::Ready(self.frames.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// The bytes the redactor sent after each input frame, then after the body ended.
fn redact_steps(frames: Vec<Bytes>, needles: &[(&str, &str)]) -> Vec<Vec<u8>> {
    let count = frames.len();
    let mut body = redacting(
        Steps {
            frames: frames.into(),
            ready: false,
        },
        needles,
    );
    let mut cx = Context::from_waker(Waker::noop());
    let mut steps = Vec::new();
    let mut current = Vec::new();
    let mut pendings = 0;
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Pending => {
                // The first pending comes before any frame.
                if pendings > 0 {
                    steps.push(std::mem::take(&mut current));
                }
                pendings += 1;
            }
            Poll::Ready(Some(Ok(frame))) => {
                let data = frame.into_data().expect("only data frames go in");
                current.extend_from_slice(&data);
            }
            Poll::Ready(None) => break,
        }
    }
    steps.push(current);
    assert_eq!(steps.len(), count + 1, "one step per frame, then the end");
    steps
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// True when some occurrence of `a` could share bytes with one of `b` without being inside it:
/// `a` inside `b`, `b` inside `a`, or a proper suffix of one equal to a prefix of the other.
fn overlaps(a: &[u8], b: &[u8]) -> bool {
    let fix =
        |x: &[u8], y: &[u8]| (1..x.len().min(y.len() + 1)).any(|k| x[x.len() - k..] == y[..k]);
    find(b, a) || find(a, b) || fix(a, b) || fix(b, a)
}

struct Input<'a> {
    reals: Vec<String>,
    cuts: Vec<usize>,
    body: &'a [u8],
}

fn split(data: &[u8]) -> Option<Input<'_>> {
    let (&n, mut rest) = data.split_first()?;
    let mut reals = Vec::new();
    for _ in 0..(n % 3) + 1 {
        let (&len, tail) = rest.split_first()?;
        let len = usize::from(len % 24) + 1;
        let real = tail.get(..len)?;
        rest = &tail[len..];
        // A real value is a trimmed, non-empty header value (`Credential::value`).
        let real = String::from_utf8_lossy(real).trim().to_owned();
        if real.is_empty() || HeaderValue::from_str(&real).is_err() {
            return None;
        }
        reals.push(real);
    }
    let (&k, rest) = rest.split_first()?;
    let k = usize::from(k % 16);
    let cuts = rest.get(..k)?;
    let body = &rest[k..];
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) * body.len() / 256)
        .collect();
    cuts.sort_unstable();
    Some(Input { reals, cuts, body })
}

fn check_body(input: &Input<'_>, needles: &[(&str, &str)], apart: bool, disjoint: bool) {
    let mut frames = Vec::new();
    let mut at = 0;
    for &cut in &input.cuts {
        frames.push(Bytes::copy_from_slice(&input.body[at..cut]));
        at = cut;
    }
    frames.push(Bytes::copy_from_slice(&input.body[at..]));
    let steps = redact_steps(frames, needles);
    let out: Vec<u8> = steps.concat();
    if apart {
        for (real, _) in needles {
            assert!(
                !find(&out, real.as_bytes()),
                "a real value passed the redactor"
            );
        }
    }
    if !(apart && disjoint) {
        return;
    }
    assert_eq!(
        out,
        replace_all(input.body, needles),
        "frame boundaries changed the result"
    );
    let longest = needles.iter().map(|(r, _)| r.len()).max().unwrap_or(1);
    let mut sent = 0;
    for (i, &cut) in input.cuts.iter().chain([&input.body.len()]).enumerate() {
        sent += steps[i].len();
        let so_far = replace_all(&input.body[..cut], needles);
        assert!(
            so_far.starts_with(&out[..sent]),
            "sent bytes after frame {i} that the rest of the body changed"
        );
        assert!(
            so_far.len() < sent + longest,
            "held back {} bytes after frame {i}, more than a key prefix",
            so_far.len() - sent
        );
    }
}

/// Header values from the body's bytes, under a few names (two of them declared slots).
fn headers(body: &[u8]) -> HeaderMap {
    const NAMES: [&str; 4] = ["x-api-key", "authorization", "x-other", "cookie"];
    let mut h = HeaderMap::new();
    for (i, value) in body.split(|&b| b == b'\n').enumerate().take(12) {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            h.append(NAMES[i % NAMES.len()], v);
        }
    }
    h
}

fn check_headers(body: &[u8], needles: &[(&str, &str)], apart: bool) {
    let mut h = headers(body);
    // Header names holding a key (a fuzzed one) are dropped, whatever their case.
    for (real, _) in needles {
        if let Ok(name) = HeaderName::from_bytes(real.as_bytes()) {
            h.append(name, HeaderValue::from_static("1"));
        }
    }
    redact_headers(&mut h, needles);
    for (name, value) in &h {
        for (real, _) in needles {
            let lower = real.to_ascii_lowercase();
            assert!(!find(name.as_str().as_bytes(), lower.as_bytes()));
            if apart {
                assert!(!find(value.as_bytes(), real.as_bytes()));
            }
        }
    }
}

/// The token in a slot's value, read as plainly as the README says it: the whole (trimmed)
/// value, or what follows `<scheme> `.
fn slot_holds(slot: &HeaderSlot, value: &HeaderValue, sealed: &str) -> bool {
    let Ok(v) = value.to_str() else { return false };
    let v = v.trim();
    match &slot.scheme {
        None => v == sealed,
        Some(scheme) => v
            .split_once(' ')
            .is_some_and(|(s, rest)| s.eq_ignore_ascii_case(scheme) && rest.trim_start() == sealed),
    }
}

fn check_swap(body: &[u8], real: &str) {
    let sealed = SEALED[0];
    let slots = [
        HeaderSlot {
            name: "x-api-key".into(),
            scheme: None,
        },
        HeaderSlot {
            name: "authorization".into(),
            scheme: Some("Bearer".into()),
        },
    ];
    // The fuzzed values, plus the sealed token in each slot written as a client would.
    let mut before = headers(body);
    before.append("x-api-key", HeaderValue::from_static(SEALED[0]));
    before.append(
        "authorization",
        HeaderValue::from_str(&format!("bearer  {sealed} ")).expect("value"),
    );
    before.append("x-other", HeaderValue::from_static(SEALED[0]));
    let mut after = before.clone();
    let swapped = swap_slots(&mut after, sealed, &slots, &Secret::new(real));
    let mut expected = 0;
    for name in before.keys() {
        let old: Vec<&HeaderValue> = before.get_all(name).iter().collect();
        let new: Vec<&HeaderValue> = after.get_all(name).iter().collect();
        assert_eq!(old.len(), new.len(), "{name}: values added or lost");
        let slot = slots.iter().find(|s| s.name == name.as_str());
        for (o, n) in old.iter().zip(&new) {
            match slot {
                Some(slot) if slot_holds(slot, o, sealed) => {
                    let want = match &slot.scheme {
                        Some(scheme) => format!("{scheme} {real}"),
                        None => real.to_owned(),
                    };
                    assert_eq!(n.as_bytes(), want.as_bytes(), "{name}");
                    expected += 1;
                }
                _ => assert_eq!(o, n, "{name}: a value that held no token changed"),
            }
        }
    }
    assert_eq!(swapped, expected);
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = split(data) else {
        return;
    };
    let needles: Vec<(&str, &str)> = input
        .reals
        .iter()
        .zip(SEALED)
        .map(|(r, s)| (r.as_str(), s))
        .collect();
    // Only whole keys are redacted: a part of a key next to a sealed token can spell the key out
    // when the key's edge could continue the token (the key `abcs`: `abc` + `abcs` becomes
    // `abc` + `sp_sealed_…`). The no-key check holds for keys whose edges cannot.
    let apart = needles.iter().all(|(r, _)| {
        needles
            .iter()
            .all(|(_, s)| !overlaps(r.as_bytes(), s.as_bytes()))
    });
    // Two real values that overlap each other are replaced one key after the other over the whole
    // buffer, but in the order their ends arrive when streamed: both redact, differently.
    let disjoint = needles.iter().enumerate().all(|(i, (a, _))| {
        needles
            .iter()
            .enumerate()
            .all(|(j, (b, _))| i == j || !overlaps(a.as_bytes(), b.as_bytes()))
    });
    check_body(&input, &needles, apart, disjoint);
    check_headers(input.body, &needles, apart);
    check_swap(input.body, &input.reals[0]);
});
