//! JSON patch (RFC 6902), with the API server's one difference: a `test` of a path that does not
//! exist against `null` succeeds (kube-rs's finalizer helper relies on it).

use serde_json::Value;

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, t| match v {
        Value::Object(m) => m.get(t),
        Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn parent_mut<'a>(doc: &'a mut Value, path: &[String]) -> Result<&'a mut Value, String> {
    let mut v = doc;
    for t in path {
        v = match v {
            Value::Object(m) => m
                .get_mut(t)
                .ok_or_else(|| format!("path /{} does not exist", path.join("/")))?,
            Value::Array(a) => {
                let i: usize = t
                    .parse()
                    .map_err(|_| format!("invalid array index {t:?}"))?;
                a.get_mut(i)
                    .ok_or_else(|| format!("array index {i} out of range"))?
            }
            _ => return Err(format!("path /{} does not exist", path.join("/"))),
        };
    }
    Ok(v)
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index {last:?}"))?;
            if i > a.len() {
                return Err(format!("array index {i} out of range"));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err("cannot add to a scalar".into()),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, String> {
    let (last, parent) = path.split_last().ok_or("cannot remove the root")?;
    match parent_mut(doc, parent)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("path /{} does not exist", path.join("/"))),
        Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index {last:?}"))?;
            if i >= a.len() {
                return Err(format!("array index {i} out of range"));
            }
            Ok(a.remove(i))
        }
        _ => Err("cannot remove from a scalar".into()),
    }
}

/// Why a JSON patch was not applied.
#[derive(Debug, PartialEq)]
pub(crate) enum PatchError {
    /// A `test` operation found another value at its path (kube-apiserver reports no detail).
    TestFailed { path: String },
    /// The patch cannot be applied: malformed, or a path that does not exist.
    Invalid(String),
}

impl From<String> for PatchError {
    fn from(message: String) -> PatchError {
        PatchError::Invalid(message)
    }
}

impl From<&str> for PatchError {
    fn from(message: &str) -> PatchError {
        PatchError::Invalid(message.to_owned())
    }
}

/// Applies the operations in order; any failure leaves `doc` unspecified (the caller discards it).
pub(crate) fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), PatchError> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("operation without \"op\"")?;
        let path = split(
            op.get("path")
                .and_then(Value::as_str)
                .ok_or("operation without \"path\"")?,
        )?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("{kind} without \"value\""))
        };
        let from = || -> Result<Vec<String>, String> {
            split(
                op.get("from")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{kind} without \"from\""))?,
            )
        };
        match kind {
            "add" => add(doc, &path, value()?)?,
            "remove" => {
                remove(doc, &path)?;
            }
            "replace" => {
                remove(doc, &path)?;
                add(doc, &path, value()?)?;
            }
            "move" => {
                let v = remove(doc, &from()?)?;
                add(doc, &path, v)?;
            }
            "copy" => {
                let v = get(doc, &from()?)
                    .cloned()
                    .ok_or("copy: from path does not exist")?;
                add(doc, &path, v)?;
            }
            "test" => {
                let want = value()?;
                let got = get(doc, &path).cloned().unwrap_or(Value::Null);
                if got != want {
                    return Err(PatchError::TestFailed {
                        path: format!("/{}", path.join("/")),
                    });
                }
            }
            other => return Err(format!("unknown JSON patch operation {other:?}").into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finalizer_helper_sequence() {
        let mut doc = json!({"metadata": {"name": "a"}});
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}
            ]),
        )
        .expect("test of a missing path against null succeeds");
        json_patch(
            &mut doc,
            &json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "y"}]),
        )
        .expect("append");
        assert_eq!(doc["metadata"]["finalizers"], json!(["x", "y"]));
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": "x"},
                {"op": "remove", "path": "/metadata/finalizers/0"}
            ]),
        )
        .expect("remove");
        assert_eq!(doc["metadata"]["finalizers"], json!(["y"]));
        assert_eq!(
            json_patch(
                &mut doc,
                &json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "x"}])
            ),
            Err(PatchError::TestFailed {
                path: "/metadata/finalizers/0".into()
            })
        );
        assert_eq!(
            json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])),
            Err(PatchError::Invalid("path /nope does not exist".into()))
        );
    }

    #[test]
    fn escaped_paths_move_and_copy() {
        let mut doc = json!({"metadata": {"labels": {"a/b": "1"}}});
        json_patch(
            &mut doc,
            &json!([
                {"op": "copy", "from": "/metadata/labels/a~1b", "path": "/metadata/labels/c"},
                {"op": "move", "from": "/metadata/labels/a~1b", "path": "/metadata/labels/d"},
                {"op": "replace", "path": "/metadata/labels/c", "value": "2"}
            ]),
        )
        .expect("ops");
        assert_eq!(doc["metadata"]["labels"], json!({"c": "2", "d": "1"}));
    }
}
