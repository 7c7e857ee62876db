//! Decoding of the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`) for the
//! built-in kinds kubectl's imperative generators send that way (`kubectl create namespace |
//! configmap | secret | serviceaccount`): the `k8s\0` envelope, `runtime.Unknown`, and a
//! table-driven reader of the few messages involved, into the same JSON the server stores.
//! Responses stay JSON (clients accept it). Other kinds answer 415.

use base64::Engine as _;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy)]
enum F {
    Str,
    Bytes,
    Int,
    Bool,
    Time,
    Msg(&'static [(u64, &'static str, F)]),
    RepStr,
    RepMsg(&'static [(u64, &'static str, F)]),
    MapStr,
    MapBytes,
}

const OWNER_REF: &[(u64, &str, F)] = &[
    (1, "kind", F::Str),
    (3, "name", F::Str),
    (4, "uid", F::Str),
    (5, "apiVersion", F::Str),
    (6, "controller", F::Bool),
    (7, "blockOwnerDeletion", F::Bool),
];

const OBJECT_META: &[(u64, &str, F)] = &[
    (1, "name", F::Str),
    (2, "generateName", F::Str),
    (3, "namespace", F::Str),
    (5, "uid", F::Str),
    (6, "resourceVersion", F::Str),
    (7, "generation", F::Int),
    (8, "creationTimestamp", F::Time),
    (11, "labels", F::MapStr),
    (12, "annotations", F::MapStr),
    (13, "ownerReferences", F::RepMsg(OWNER_REF)),
    (14, "finalizers", F::RepStr),
];

const OBJECT_REF: &[(u64, &str, F)] = &[
    (1, "kind", F::Str),
    (2, "namespace", F::Str),
    (3, "name", F::Str),
    (4, "uid", F::Str),
    (5, "apiVersion", F::Str),
];
const LOCAL_REF: &[(u64, &str, F)] = &[(1, "name", F::Str)];

const NAMESPACE: &[(u64, &str, F)] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(&[(1, "finalizers", F::RepStr)])),
];
const CONFIG_MAP: &[(u64, &str, F)] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapStr),
    (3, "binaryData", F::MapBytes),
    (4, "immutable", F::Bool),
];
const SECRET: &[(u64, &str, F)] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapBytes),
    (3, "type", F::Str),
    (4, "stringData", F::MapStr),
    (5, "immutable", F::Bool),
];
const SERVICE_ACCOUNT: &[(u64, &str, F)] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "secrets", F::RepMsg(OBJECT_REF)),
    (3, "imagePullSecrets", F::RepMsg(LOCAL_REF)),
    (4, "automountServiceAccountToken", F::Bool),
];

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.i).ok_or("truncated varint")?;
            self.i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self) -> Result<&[u8], String> {
        let n = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        let end = self
            .i
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or("truncated field")?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => {
                self.i += 8;
                Ok(())
            }
            2 => self.bytes().map(|_| ()),
            5 => {
                self.i += 4;
                Ok(())
            }
            other => Err(format!("unsupported wire type {other}")),
        }
    }
}

fn text(b: &[u8]) -> Result<Value, String> {
    String::from_utf8(b.to_vec())
        .map(Value::String)
        .map_err(|_| "invalid UTF-8".to_string())
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let mut r = Reader { b, i: 0 };
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while r.i < b.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => k = String::from_utf8(r.bytes()?.to_vec()).map_err(|_| "invalid UTF-8")?,
            (2, 2) if bytes_value => {
                v = Value::String(base64::engine::general_purpose::STANDARD.encode(r.bytes()?));
            }
            (2, 2) => v = text(r.bytes()?)?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok((k, v))
}

fn message(b: &[u8], fields: &[(u64, &str, F)]) -> Result<Value, String> {
    let mut r = Reader { b, i: 0 };
    let mut out = Map::new();
    while r.i < b.len() {
        let tag = r.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        let Some((_, name, kind)) = fields.iter().find(|(n, _, _)| *n == num) else {
            r.skip(wire)?;
            continue;
        };
        let name = (*name).to_string();
        match (*kind, wire) {
            (F::Str, 2) => {
                // Go writes empty strings; JSON (omitempty) leaves them out.
                let v = text(r.bytes()?)?;
                if v.as_str().is_some_and(|s| !s.is_empty()) {
                    out.insert(name, v);
                }
            }
            (F::Bytes, 2) => {
                out.insert(
                    name,
                    Value::String(base64::engine::general_purpose::STANDARD.encode(r.bytes()?)),
                );
            }
            (F::Int, 0) => {
                let v = r.varint()? as i64;
                if v != 0 {
                    out.insert(name, json!(v));
                }
            }
            (F::Bool, 0) => {
                out.insert(name, Value::Bool(r.varint()? != 0));
            }
            (F::Time, 2) => {
                let t = message(r.bytes()?, &[(1, "seconds", F::Int)])?;
                let secs = t.get("seconds").and_then(Value::as_i64).unwrap_or(0);
                if let Some(ts) = chrono::DateTime::from_timestamp(secs, 0) {
                    out.insert(
                        name,
                        Value::String(ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    );
                }
            }
            (F::Msg(sub), 2) => {
                // An empty struct is left out, as kube-apiserver's typed objects leave it out
                // (an empty Namespace `spec` is no field a client set).
                let v = message(r.bytes()?, sub)?;
                if v.as_object().is_none_or(|m| !m.is_empty()) {
                    out.insert(name, v);
                }
            }
            (F::RepStr, 2) => {
                let v = text(r.bytes()?)?;
                push(&mut out, name, v);
            }
            (F::RepMsg(sub), 2) => {
                let v = message(r.bytes()?, sub)?;
                push(&mut out, name, v);
            }
            (F::MapStr | F::MapBytes, 2) => {
                let (k, v) = map_entry(r.bytes()?, matches!(kind, F::MapBytes))?;
                let m = out.entry(name).or_insert_with(|| Value::Object(Map::new()));
                if let Some(m) = m.as_object_mut() {
                    m.insert(k, v);
                }
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(Value::Object(out))
}

fn push(out: &mut Map<String, Value>, name: String, v: Value) {
    if let Value::Array(a) = out.entry(name).or_insert_with(|| Value::Array(vec![])) {
        a.push(v);
    }
}

/// Decodes a protobuf request body into JSON, or says why it cannot.
pub(crate) fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or("missing the k8s protobuf envelope")?;
    let unknown = message(
        rest,
        &[
            (
                1,
                "typeMeta",
                F::Msg(&[(1, "apiVersion", F::Str), (2, "kind", F::Str)]),
            ),
            (2, "raw", F::Bytes),
        ],
    )?;
    let api_version = unknown
        .pointer("/typeMeta/apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = unknown
        .pointer("/typeMeta/kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let raw = unknown
        .get("raw")
        .and_then(Value::as_str)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .unwrap_or_default();
    let table = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        _ => {
            return Err(format!(
                "protobuf bodies of {api_version} {kind} are not supported; send JSON"
            ));
        }
    };
    let mut obj = message(&raw, table)?;
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(api_version));
        m.insert("kind".into(), Value::String(kind));
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![
            u8::try_from((num << 3) | 2).expect("small field number"),
            u8::try_from(payload.len()).expect("short"),
        ];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_a_configmap_like_kubectl_sends_it() {
        let mut labels = field(1, b"app");
        labels.extend(field(2, b"web"));
        let mut meta = field(1, b"settings");
        meta.extend(field(11, &labels));
        let mut data = field(1, b"a");
        data.extend(field(2, b"1"));
        let mut cm = field(1, &meta);
        cm.extend(field(2, &data));
        let mut tm = field(1, b"v1");
        tm.extend(field(2, b"ConfigMap"));
        let mut body = b"k8s\0".to_vec();
        body.extend(field(1, &tm));
        body.extend(field(2, &cm));
        let v = decode(&body).expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "labels": {"app": "web"}}, "data": {"a": "1"}})
        );
        assert!(decode(b"nope").is_err());
    }
}
