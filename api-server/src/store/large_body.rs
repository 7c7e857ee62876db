//! Large event bodies. A body whose JSON is over the server's limit (`--event-body-limit`) is
//! stored whole once, beside the event, and the event carries a truncated copy: the same object
//! with every string longer than some cap cut to that cap and ended with `…`, the largest cap that
//! keeps the copy within the limit. The envelope says so (`body_truncated`, `body_bytes`,
//! `content_ref`); `GET …/events/{id}/content` serves the whole body.

use serde_json::Value;

/// The default limit, in bytes of a body's JSON (the size OpenComputer spills at).
pub const DEFAULT_EVENT_BODY_LIMIT: usize = 32 * 1024;

/// The smallest limit the server accepts: below it, ordinary message bodies would spill.
pub const MIN_EVENT_BODY_LIMIT: usize = 1024;

/// What the string cuts end with.
const ELLIPSIS: char = '…';

/// A body over the limit: the copy the event carries and the whole body's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Spilled {
    /// The truncated body (an object's keys and an array's items are all kept; only strings are
    /// cut). `{}` when even strings of one character would not fit.
    pub inline: Value,
    /// The whole body's JSON, as stored.
    pub whole: String,
}

/// Splits `body` when its JSON is over `limit` bytes; None when it fits.
pub fn spill(body: &Value, limit: usize) -> Option<Spilled> {
    let whole = body.to_string();
    if whole.len() <= limit {
        return None;
    }
    // The copy's size grows with the cap: the largest cap that fits, by bisection.
    let fits = |cap: usize| {
        let copy = capped(body, cap);
        (copy.to_string().len() <= limit).then_some(copy)
    };
    let (mut low, mut high) = (0, longest_string(body));
    let mut best = fits(0);
    if best.is_some() {
        while low < high {
            let mid = low + (high - low).div_ceil(2);
            match fits(mid) {
                Some(copy) => {
                    best = Some(copy);
                    low = mid;
                }
                None => high = mid - 1,
            }
        }
    }
    Some(Spilled {
        inline: best.unwrap_or_else(|| Value::Object(Default::default())),
        whole,
    })
}

/// The length in characters of the longest string in `value` (keys excluded).
fn longest_string(value: &Value) -> usize {
    match value {
        Value::String(s) => s.chars().count(),
        Value::Array(items) => items.iter().map(longest_string).max().unwrap_or(0),
        Value::Object(map) => map.values().map(longest_string).max().unwrap_or(0),
        _ => 0,
    }
}

/// `value` with every string longer than `cap` characters cut to `cap` and ended with `…`.
fn capped(value: &Value, cap: usize) -> Value {
    match value {
        Value::String(s) => match s.char_indices().nth(cap) {
            Some((end, _)) => {
                let mut cut = s[..end].to_owned();
                cut.push(ELLIPSIS);
                Value::String(cut)
            }
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| capped(v, cap)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), capped(v, cap)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_body_within_the_limit_is_kept() {
        let body = json!({"text": "x".repeat(100)});
        assert_eq!(spill(&body, body.to_string().len()), None);
    }

    #[test]
    fn a_large_body_keeps_its_shape_and_cuts_its_long_strings_to_fit() {
        let body = json!({
            "tool": "bash",
            "output": "é".repeat(50_000),
            "lines": ["short", "y".repeat(20_000)],
            "exit_code": 0,
        });
        let limit = 2048;
        let s = spill(&body, limit).expect("over the limit");
        assert_eq!(s.whole, body.to_string());
        let inline = s.inline.to_string();
        assert!(inline.len() <= limit, "{} > {limit}", inline.len());
        assert_eq!(s.inline["tool"], "bash");
        assert_eq!(s.inline["exit_code"], 0);
        assert_eq!(s.inline["lines"][0], "short");
        let output = s.inline["output"].as_str().expect("a string");
        assert!(output.ends_with(ELLIPSIS) && output.starts_with("éé"));
        // The largest cap: one more character per long string would not fit.
        let cap = output.chars().count() - 1;
        assert!(capped(&body, cap + 1).to_string().len() > limit);
    }

    #[test]
    fn a_body_that_cannot_fit_even_cut_is_empty_inline() {
        let body = Value::Array((0..2000).map(|i| json!(i)).collect());
        let s = spill(&json!({"numbers": body}), 1024).expect("over the limit");
        assert_eq!(s.inline, json!({}));
    }
}
