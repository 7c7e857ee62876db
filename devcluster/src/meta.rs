//! Object metadata helpers over `serde_json::Value`: names, resource versions, labels, fresh
//! uids and timestamps. Pure functions; never touches the store.

use rand::Rng;
use serde_json::{Map, Value};

/// `metadata` of an object (empty map if missing or not an object).
pub(crate) fn metadata(obj: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    obj.get("metadata")
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// Mutable `metadata`, created when missing.
pub(crate) fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("made an object above");
    let md = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !md.is_object() {
        *md = Value::Object(Map::new());
    }
    md.as_object_mut().expect("made an object above")
}

pub(crate) fn str_field<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    metadata(obj).get(field).and_then(Value::as_str)
}

pub(crate) fn name(obj: &Value) -> Option<&str> {
    str_field(obj, "name").filter(|s| !s.is_empty())
}

pub(crate) fn namespace(obj: &Value) -> Option<&str> {
    str_field(obj, "namespace").filter(|s| !s.is_empty())
}

pub(crate) fn uid(obj: &Value) -> Option<&str> {
    str_field(obj, "uid")
}

pub(crate) fn resource_version(obj: &Value) -> Option<&str> {
    str_field(obj, "resourceVersion").filter(|s| !s.is_empty())
}

pub(crate) fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    metadata(obj).get("labels").and_then(Value::as_object)
}

pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    metadata(obj)
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn set_finalizers(obj: &mut Value, fins: &[String]) {
    let md = metadata_mut(obj);
    if fins.is_empty() {
        md.remove("finalizers");
    } else {
        md.insert("finalizers".into(), Value::from(fins.to_vec()));
    }
}

/// Removes empty `labels`, `annotations`, `finalizers` and `ownerReferences`: kube-apiserver
/// stores ObjectMeta with `omitempty`, so `finalizers: []` (how a client releases an object) is
/// read back as no field at all.
pub(crate) fn drop_empty(obj: &mut Value) {
    let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    md.retain(|k, v| {
        let collection = matches!(
            k.as_str(),
            "labels" | "annotations" | "finalizers" | "ownerReferences"
        );
        let empty = match v {
            Value::Null => true,
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        !(collection && empty)
    });
}

pub(crate) fn is_deleting(obj: &Value) -> bool {
    metadata(obj)
        .get("deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

pub(crate) fn generation(obj: &Value) -> i64 {
    metadata(obj)
        .get("generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// ownerReferences as (uid, controller, blockOwnerDeletion) triples.
pub(crate) fn owner_uids(obj: &Value) -> Vec<String> {
    metadata(obj)
        .get("ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Now, RFC 3339 with second precision, as the API server writes `creationTimestamp`.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A random RFC 4122 version-4 uid.
pub(crate) fn new_uid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The 5-character suffix of `generateName`, from the alphabet the API server uses.
pub(crate) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A random token of 32 lowercase hex characters.
pub(crate) fn random_token() -> String {
    let b: [u8; 16] = rand::rng().random();
    hex(&b)
}

/// Validates a DNS-1123 subdomain name (what most kinds require of `metadata.name`).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name or generateName is required".into());
    }
    if name.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    let ok = name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case \
             alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
             character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ))
    }
}

/// Follows a dotted path (`spec.nodeName`, `involvedObject.name`) into an object.
pub(crate) fn lookup<'a>(obj: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(obj, |v, part| v.get(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_has_the_v4_shape() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("a-b.c1").is_ok());
        assert!(check_name("A").is_err());
        assert!(check_name("-a").is_err());
        assert!(check_name("").is_err());
    }
}
