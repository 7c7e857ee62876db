//! Model usage metering (`meter.rs`, `Scan`) over arbitrary bodies cut at arbitrary points, as
//! SSE and as JSON.
//!
//! Input: a content-type selector, a size byte (at 254 and 255 a run of spaces in the middle takes
//! the body past the scanner's caps: 136 KiB, or 1.07 MiB), a list of cut points, then the body.
//!
//! Invariants: the bytes a scanner holds never exceed the bound it documents (one SSE line of
//! `MAX_LINE`, or twice the JSON `TAIL`), after every piece; and the usage does not depend on
//! where the body was cut: always for SSE, and for JSON as far as its tail allows (a body no
//! longer than twice the tail is read whole; a longer one is read from a tail of at least `TAIL`
//! bytes, so a usage found in the last `TAIL` bytes is found however the body was cut).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealpod_resources::runtime_api::Usage;
use sealpod_sidecar::fuzzing::MeterScan;

/// Content types, and whether the scanner must read them as SSE.
const CONTENT_TYPES: [(Option<&str>, bool); 6] = [
    (Some("text/event-stream"), true),
    (Some(" Text/Event-Stream ; charset=utf-8"), true),
    (Some("application/json"), false),
    (None, false),
    (Some("text/event-streams"), false),
    (Some(";text/event-stream"), false),
];

/// Feeds `body` in the pieces the cut points make, checking the bound after each one.
fn scan(content_type: Option<&str>, body: &[u8], cuts: &[usize]) -> (Option<Usage>, usize) {
    let mut s = MeterScan::new(content_type);
    let mut at = 0;
    let mut bound = 0;
    for &cut in cuts.iter().chain([&body.len()]) {
        s.feed(&body[at..cut]);
        let (held, b) = s.held();
        assert!(held <= b, "holds {held} bytes, bound {b}");
        bound = b;
        at = cut;
    }
    (s.finish(), bound)
}

fuzz_target!(|data: &[u8]| {
    let [kind, size, k, rest @ ..] = data else {
        return;
    };
    let (content_type, sse) = CONTENT_TYPES[usize::from(*kind) % CONTENT_TYPES.len()];
    let k = usize::from(*k % 16);
    let Some((cuts, body)) = (rest.len() >= k).then(|| rest.split_at(k)) else {
        return;
    };
    // Sizes 254 and 255 put a run of spaces in the middle of the body, past the JSON cap
    // (2 x 64 KiB) or past the SSE line cap (1 MiB): JSON whitespace, and one overlong line.
    let filler = match *size {
        254 => 136 * 1024,
        255 => 1100 * 1024,
        _ => 0,
    };
    let big;
    let body = if filler > 0 {
        let (head, tail) = body.split_at(body.len() / 2);
        big = [head, &vec![b' '; filler], tail].concat();
        &big[..]
    } else {
        body
    };
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) * body.len() / 256)
        .collect();
    cuts.sort_unstable();

    let (whole, bound) = scan(content_type, body, &[]);
    let sse_bound = MeterScan::new(Some("text/event-stream")).held().1;
    assert_eq!(
        bound == sse_bound,
        sse,
        "{content_type:?} read as the wrong kind"
    );
    let mut splits = vec![cuts];
    // Every byte its own piece, where that stays cheap.
    if body.len() <= 4096 {
        splits.push((1..body.len()).collect());
    }
    // Pieces of a fixed size, as a proxy's reads come.
    if filler == 0 {
        let piece = usize::from(*size % 61) * 257 + 1;
        splits.push((piece..body.len()).step_by(piece).collect());
    }
    for cuts in &splits {
        let (usage, _) = scan(content_type, body, cuts);
        if sse || body.len() <= bound {
            assert_eq!(usage, whole, "the cuts changed the usage");
        } else if whole.is_some() {
            assert_eq!(usage, whole, "a usage in the last tail was lost");
        }
    }
});
