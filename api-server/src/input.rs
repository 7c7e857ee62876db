//! Decoders of request input and the one check of user-given labels. Everything a client sends
//! passes through here before a handler acts on it: the JSON body, the query string, path
//! segments, the `Idempotency-Key` and `Last-Event-ID` headers, seq cursors, list cursors and page
//! sizes. (Credentials are decoded in `auth`.)
//!
//! Two rules hold for every function here, and the property tests at the end check them over
//! arbitrary bytes: a decoder never panics, and an error never repeats the caller's value — a key
//! pasted into the wrong field must not come back in a response or a log line. Errors name the
//! field and what it must be.

use std::fmt::Write as _;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use crate::error::{ApiError, ApiResult};

/// A JSON body; an empty body reads as `{}` (the SDK sends none on some POSTs).
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::invalid_json(None, "cannot read the body"))?;
        json_body(&bytes).map(Body)
    }
}

/// The query string decoded into `T` (see [`query`]).
#[derive(Debug)]
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        query(parts.uri.query()).map(Query)
    }
}

/// Path parameters; a segment that is not percent-encoded UTF-8 is a `400` in the envelope.
#[derive(Debug)]
pub(crate) struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // axum's rejection text can quote the segment: only its kind is answered.
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_| ApiError::Invalid {
                message: "a path segment is not valid percent-encoded UTF-8".into(),
                param: None,
            })
    }
}

/// Parses a JSON body into `T`; a blank body reads as `{}`.
pub(crate) fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(&e))?;
    de.end().map_err(|e| json_syntax(&e))?;
    Ok(value)
}

/// Converts a body already read as a JSON value (kept to fingerprint it) into `T`.
pub(crate) fn json_value<T: DeserializeOwned>(value: Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| json_error(&e))
}

fn json_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    if !e.inner().is_data() {
        return json_syntax(e.inner());
    }
    let (field, expected) = described(e);
    match field {
        Some(field) => ApiError::invalid_json(Some(&field), format!("{field} must be {expected}")),
        None => ApiError::invalid_json(None, format!("the body must be {expected}")),
    }
}

fn json_syntax(e: &serde_json::Error) -> ApiError {
    // serde_json's syntax messages are fixed texts; only the position is told, which is enough.
    ApiError::invalid_json(
        None,
        format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
    )
}

/// The field a deserialization error is about and what that field must be, both taken from the
/// target type, never from the input.
fn described(e: &serde_path_to_error::Error<serde_json::Error>) -> (Option<String>, &'static str) {
    (field_of(e.path()), expected_of(&e.inner().to_string()))
}

/// `limits.turns`, `scopes[2]`. Segments are the names of our fields (an error only happens
/// inside a field the type knows); anything that does not look like one is not repeated.
fn field_of(path: &serde_path_to_error::Path) -> Option<String> {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Seq { index } => {
                let _ = write!(out, "[{index}]");
            }
            Segment::Enum { .. } | Segment::Unknown => break,
        }
    }
    let plain = !out.is_empty()
        && out.len() <= 64
        && out
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.[]".contains(&b));
    plain.then_some(out)
}

/// What serde expected, from the last `, expected …` of its message (the value, when a message
/// quotes it, comes before that). Only the descriptions of known types are answered: anything
/// else could be a custom message that carries the value.
fn expected_of(message: &str) -> &'static str {
    let Some((_, tail)) = message.rsplit_once(", expected ") else {
        return "a valid value";
    };
    let tail = tail.split(" at line ").next().unwrap_or(tail);
    match tail {
        "a boolean" => "a boolean",
        "a string" | "a borrowed string" | "a character" => "a string",
        "a sequence" => "a list",
        "a map" => "an object",
        t if t.starts_with("struct ") => "an object",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer in range",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer in range",
        "f32" | "f64" => "a number",
        _ => "a valid value",
    }
}

/// Decodes a query string into `T` (a struct of optional string fields): names and values are
/// percent-decoded as forms are (`+` is a space, invalid UTF-8 becomes U+FFFD). A field given
/// twice is refused (which `after` would win is a guess); unknown parameters are ignored.
pub(crate) fn query<T: DeserializeOwned>(raw: Option<&str>) -> ApiResult<T> {
    let mut map = Map::new();
    let mut repeated = Vec::new();
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let name = name.into_owned();
        match map.get_mut(&name) {
            // A repeated parameter becomes a list, which a string field refuses below.
            Some(Value::Array(values)) => values.push(Value::String(value.into_owned())),
            Some(slot) => {
                let first = slot.take();
                *slot = Value::Array(vec![first, Value::String(value.into_owned())]);
                repeated.push(name);
            }
            None => {
                map.insert(name, Value::String(value.into_owned()));
            }
        }
    }
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let (field, expected) = described(&e);
        match field {
            Some(f) if repeated.contains(&f) => {
                ApiError::invalid(&f, format!("{f} must be given at most once"))
            }
            Some(f) => ApiError::invalid(&f, format!("{f} must be {expected}")),
            None => ApiError::Invalid {
                message: "the query string is not valid for this route".into(),
                param: None,
            },
        }
    })
}

/// A seq cursor (`after`, `cursor`): absent or empty is 0, otherwise a non-negative integer.
pub(crate) fn seq(param: &str, raw: Option<&str>) -> ApiResult<i64> {
    match raw.map(str::trim) {
        None | Some("") => Ok(0),
        Some(s) => {
            s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::invalid(param, format!("{param} must be a non-negative seq"))
            })
        }
    }
}

/// The opaque numeric cursor of a list (`None` when absent or empty).
pub(crate) fn cursor(raw: Option<&str>) -> ApiResult<Option<i64>> {
    match raw {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("cursor", "unknown cursor")),
    }
}

/// A page size: `default` when absent, clamped to `1..=max`.
pub(crate) fn page_limit(raw: Option<&str>, default: i64, max: i64) -> ApiResult<i64> {
    match raw {
        None | Some("") => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| n.min(max))
            .ok_or_else(|| ApiError::invalid("limit", "limit must be a positive integer")),
    }
}

/// An RFC 3339 time as Unix seconds (`None` when absent or empty).
pub(crate) fn rfc3339(param: &str, raw: Option<&str>) -> ApiResult<Option<i64>> {
    match raw {
        None | Some("") => Ok(None),
        Some(v) => chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.timestamp()))
            .map_err(|_| ApiError::invalid(param, format!("{param} must be an RFC 3339 time"))),
    }
}

/// `Last-Event-ID`: the seq a browser resumes from. It echoes an `id:` this server wrote, so
/// anything else (absent, unreadable, negative) resumes from 0 rather than failing the stream.
pub(crate) fn last_event_id(headers: &HeaderMap) -> i64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .unwrap_or(0)
}

/// The `Idempotency-Key` header of a create. A header that cannot be read is refused rather
/// than ignored: ignoring it would turn a retry into a second create.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    const PARAM: &str = "Idempotency-Key";
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid(
            PARAM,
            "Idempotency-Key must be given at most once",
        ));
    }
    let key = value
        .to_str()
        .map_err(|_| ApiError::invalid(PARAM, "Idempotency-Key must be visible ASCII"))?;
    check_idempotency_key(PARAM, key)?;
    Ok(Some(key.to_owned()))
}

/// An idempotency or routing key (`Idempotency-Key`, session `key`, steer `idempotency_key`):
/// 1-256 characters, and a label ([`check_label`]).
pub(crate) fn check_idempotency_key(param: &str, key: &str) -> ApiResult<()> {
    if key.is_empty() || key.len() > 256 {
        return Err(ApiError::invalid(
            param,
            format!("{param} must be 1-256 characters"),
        ));
    }
    check_label(param, key)
}

/// True for a character that hides or reorders text where an operator reads it (a listing, a
/// log line, a terminal): a control character (Unicode category Cc: U+0000-U+001F,
/// U+007F-U+009F) or a bidirectional formatting character (the embeddings and overrides
/// U+202A-U+202E, the isolates U+2066-U+2069, and the marks U+200E, U+200F and U+061C).
pub(crate) fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
        )
}

/// The one check of user-given names, keys and other identifiers or labels: no
/// [hidden](is_hidden) character. A `400 invalid` naming `param`; the value is never repeated.
pub(crate) fn check_label(param: &str, value: &str) -> ApiResult<()> {
    if value.chars().any(is_hidden) {
        return Err(ApiError::invalid(
            param,
            format!("{param} must not contain control or bidirectional formatting characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;
    use crate::dto::{CreateAgent, CreateSession, EventsQuery, MintToken, SessionsQuery, Steer};

    /// A body or query with typed fields, whose errors could quote the value.
    #[derive(Debug, Deserialize)]
    struct Typed {
        ttl: Option<i64>,
        flag: Option<bool>,
    }

    fn message(e: &ApiError) -> String {
        format!("{e} {e:?}")
    }

    #[test]
    fn json_errors_name_the_field_and_the_type() {
        let e = json_body::<MintToken>(br#"{"ttl": "sk-ant-api03-SECRET"}"#).expect_err("typed");
        assert_eq!(e.kind(), "invalid_json");
        assert_eq!(e.to_string(), "ttl must be an integer in range");
        assert!(!message(&e).contains("SECRET"), "{e:?}");
        let e = json_body::<CreateAgent>(br#"{"limits": {"turns": -1}}"#).expect_err("range");
        assert_eq!(
            e.to_string(),
            "limits.turns must be a non-negative integer in range"
        );
        let e = json_body::<MintToken>(br#"{"scopes": ["read", 7]}"#).expect_err("item");
        assert_eq!(e.to_string(), "scopes[1] must be a string");
        let e = json_body::<MintToken>(br#""sk-ant-SECRET""#).expect_err("shape");
        assert_eq!(e.to_string(), "the body must be an object");
        let e = json_body::<MintToken>(br#"{"ttl": 60} trailing"#).expect_err("trailing");
        assert!(
            e.to_string().starts_with("the body is not valid JSON"),
            "{e}"
        );
        let e = json_body::<MintToken>(br#"{"ttl": "sk-ant-api03-SECRET"#).expect_err("eof");
        assert!(!message(&e).contains("SECRET"), "{e:?}");
        assert!(json_body::<MintToken>(b"  \n").is_ok());
        let t: Typed = json_body(br#"{"ttl": 5, "flag": true}"#).expect("typed");
        assert_eq!((t.ttl, t.flag), (Some(5), Some(true)));
        let e = json_value::<Steer>(serde_json::json!({"idempotency_key": ["sk-SECRET"]}))
            .expect_err("value");
        assert_eq!(e.to_string(), "idempotency_key must be a string");
    }

    #[test]
    fn queries_decode_like_forms_and_refuse_repeats() {
        let q: EventsQuery = query(Some("after=5&type=turn.%2A&level=user+x")).expect("query");
        assert_eq!(q.after.as_deref(), Some("5"));
        assert_eq!(q.type_.as_deref(), Some("turn.*"));
        assert_eq!(q.level.as_deref(), Some("user x"));
        let e = query::<EventsQuery>(Some("after=1&after=2")).expect_err("repeat");
        assert_eq!(e.to_string(), "after must be given at most once");
        assert!(query::<EventsQuery>(Some("x=1&x=2&%zz=%a\u{e9}")).is_ok());
        let e = query::<Typed>(Some("ttl=sk-SECRET")).expect_err("typed");
        assert!(!message(&e).contains("SECRET"), "{e:?}");
    }

    #[test]
    fn hidden_characters_are_refused() {
        for bad in [
            "a\0b",
            "tab\there",
            "\u{7f}",
            "\u{85}",
            "\u{202e}txt.exe",
            "\u{2066}x",
            "\u{200f}",
            "\u{61c}",
        ] {
            let e = check_label("name", bad).expect_err(bad);
            assert_eq!(e.kind(), "invalid");
        }
        for good in ["reviewer", "Ünïcödé ✓", "日本語", "a b-c_d.e", "\u{200d}"] {
            assert!(check_label("name", good).is_ok(), "{good}");
        }
    }

    #[test]
    fn headers_and_cursors() {
        let mut h = HeaderMap::new();
        assert_eq!(idempotency_key(&h).expect("absent"), None);
        h.insert("idempotency-key", HeaderValue::from_static("k-1"));
        assert_eq!(idempotency_key(&h).expect("ok").as_deref(), Some("k-1"));
        h.insert(
            "idempotency-key",
            HeaderValue::from_bytes(b"k\xff").expect("obs-text"),
        );
        assert!(idempotency_key(&h).is_err());
        h.insert(
            "idempotency-key",
            HeaderValue::from_bytes(b"a\tb").expect("tab"),
        );
        assert!(idempotency_key(&h).is_err());
        h.insert("last-event-id", HeaderValue::from_static(" 7 "));
        assert_eq!(last_event_id(&h), 7);
        h.insert("last-event-id", HeaderValue::from_static("-3"));
        assert_eq!(last_event_id(&h), 0);
        assert_eq!(seq("after", Some(" 4 ")).expect("seq"), 4);
        assert!(seq("after", Some("-1")).is_err());
        assert_eq!(cursor(Some("12")).expect("cursor"), Some(12));
        assert!(cursor(Some("-12")).is_err());
        assert_eq!(page_limit(None, 100, 1000).ok(), Some(100));
        assert_eq!(page_limit(Some("5000"), 100, 1000).ok(), Some(1000));
        assert!(page_limit(Some("0"), 100, 1000).is_err());
        assert!(rfc3339("after", Some("2026-01-01T00:00:00Z")).is_ok());
        assert!(rfc3339("after", Some("yesterday")).is_err());
    }

    /// Text that reaches the percent and UTF-8 edge cases often: `%`, hex digits, `+`, `&`,
    /// `=`, and any character.
    fn tricky() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just('%'),
                Just('&'),
                Just('='),
                Just('+'),
                prop::sample::select(b"0123456789abcdefABCDEF".as_slice()).prop_map(char::from),
                any::<char>(),
            ],
            0..48,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..256)
    }

    proptest! {
        #[test]
        fn json_bodies_never_panic(body in bytes()) {
            let _ = json_body::<CreateAgent>(&body);
            let _ = json_body::<Value>(&body);
            let _ = json_body::<MintToken>(&body);
            if let Ok(v) = json_body::<Value>(&body) {
                let _ = json_value::<CreateSession>(v.clone());
                let _ = json_value::<Steer>(v);
            }
        }

        #[test]
        fn json_errors_never_repeat_the_value(secret in "[A-Za-z0-9_-]{12,64}", field in prop::sample::select(vec!["ttl", "flag"])) {
            let body = serde_json::json!({ field: secret }).to_string();
            let e = json_body::<Typed>(body.as_bytes()).expect_err("wrong type");
            prop_assert!(!message(&e).contains(&secret), "{:?}", e);
            prop_assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
            let cut = &body[..body.len() - 2];
            let e = json_body::<Typed>(cut.as_bytes()).expect_err("cut");
            prop_assert!(!message(&e).contains(&secret), "{:?}", e);
        }

        #[test]
        fn queries_never_panic(raw in tricky(), lossy in bytes()) {
            let lossy = String::from_utf8_lossy(&lossy).into_owned();
            for q in [&raw, &lossy] {
                let _ = query::<EventsQuery>(Some(q));
                let _ = query::<SessionsQuery>(Some(q));
                let _ = query::<Typed>(Some(q));
            }
        }

        #[test]
        fn query_errors_never_repeat_the_value(secret in "[A-Za-z0-9_-]{12,64}") {
            let e = query::<Typed>(Some(&format!("ttl={secret}"))).expect_err("typed");
            prop_assert!(!message(&e).contains(&secret), "{:?}", e);
        }

        #[test]
        fn scalars_never_panic(raw in tricky()) {
            let _ = seq("after", Some(&raw));
            let _ = cursor(Some(&raw));
            let _ = page_limit(Some(&raw), 100, 1000);
            let _ = rfc3339("after", Some(&raw));
            let _ = check_label("name", &raw);
            let _ = check_idempotency_key("key", &raw);
            if let Err(e) = check_label("name", &raw) {
                prop_assert_eq!(
                    e.to_string(),
                    "name must not contain control or bidirectional formatting characters"
                );
            }
        }

        #[test]
        fn headers_never_panic(raw in bytes()) {
            if let Ok(v) = HeaderValue::from_bytes(&raw) {
                let mut h = HeaderMap::new();
                h.insert("idempotency-key", v.clone());
                h.insert("last-event-id", v);
                let _ = idempotency_key(&h);
                prop_assert!(last_event_id(&h) >= 0);
            }
        }
    }
}
