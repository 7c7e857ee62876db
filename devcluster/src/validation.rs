//! Custom resources against their CRD's `openAPIV3Schema`: pruning of unknown fields (as a real
//! server prunes them, honouring `x-kubernetes-preserve-unknown-fields` and
//! `x-kubernetes-embedded-resource`), defaulting, and validation with field paths for 422
//! `Invalid`. OpenAPI's `nullable` and `x-kubernetes-int-or-string` are rewritten into JSON
//! Schema first. No CEL (`x-kubernetes-validations`) and no format checks.

use crate::error::FieldError;
use serde_json::{Map, Value, json};

/// Rewrites an OpenAPI v3 schema into a JSON Schema (draft 4) the validator understands.
pub(crate) fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match k.as_str() {
                    "properties" | "patternProperties" | "definitions" => {
                        let props = v
                            .as_object()
                            .map(|p| {
                                p.iter()
                                    .map(|(pk, pv)| (pk.clone(), to_json_schema(pv)))
                                    .collect()
                            })
                            .unwrap_or_default();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    "nullable" | "format" | "default" | "example" => {}
                    _ if k.starts_with("x-kubernetes-") => {}
                    _ => {
                        out.insert(k.clone(), to_json_schema(v));
                    }
                }
            }
            if m.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
                out.remove("type");
                out.insert(
                    "anyOf".into(),
                    json!([{"type": "integer"}, {"type": "string"}]),
                );
            }
            if m.get("nullable").and_then(Value::as_bool) == Some(true) {
                match out.get("type").cloned() {
                    Some(Value::String(t)) => {
                        out.insert("type".into(), json!([t, "null"]));
                    }
                    _ => {
                        let inner = Value::Object(out);
                        return json!({"anyOf": [{"type": "null"}, inner]});
                    }
                }
                if let Some(Value::Array(e)) = out.get_mut("enum") {
                    e.push(Value::Null);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

/// Compiles the validator of a version's schema.
pub(crate) fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    let mut js = to_json_schema(schema);
    if let Some(m) = js.as_object_mut() {
        // metadata is validated by the server's own rules, never by the CRD schema.
        if let Some(Value::Object(p)) = m.get_mut("properties") {
            p.remove("metadata");
        }
    }
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(false)
        .build(&js)
        .map_err(|e| format!("spec.versions[].schema.openAPIV3Schema: Invalid value: {e}"))
}

/// Removes fields the schema does not declare and fills in defaults. Returns the removed paths
/// (`spec.foo`), for `fieldValidation=Strict`.
pub(crate) fn prune_and_default(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    let Some(m) = obj.as_object_mut() else {
        return pruned;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(&k)) {
            Some(s) => {
                if let Some(v) = m.get_mut(&k) {
                    walk(s, v, &k, &mut pruned);
                }
            }
            None if preserves(schema) => {}
            None => {
                m.remove(&k);
                pruned.push(k);
            }
        }
    }
    add_defaults(schema, m);
    pruned
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn add_defaults(schema: &Value, m: &mut Map<String, Value>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (k, s) in props {
        if !m.contains_key(k)
            && let Some(d) = s.get("default")
        {
            let mut d = d.clone();
            let mut ignored = Vec::new();
            walk(s, &mut d, k, &mut ignored);
            m.insert(k.clone(), d);
        }
    }
}

fn walk(schema: &Value, v: &mut Value, path: &str, pruned: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if props.is_none()
                && additional.is_none()
                && (preserves(schema) || schema.get("type").is_none())
            {
                return;
            }
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let child_path = format!("{path}.{k}");
                let child_schema = props.and_then(|p| p.get(&k)).or(additional);
                match child_schema {
                    Some(s) => {
                        if let Some(c) = m.get_mut(&k) {
                            walk(s, c, &child_path, pruned);
                        }
                    }
                    None if preserves(schema) => {}
                    None if embedded
                        && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") => {}
                    None if schema.get("additionalProperties") == Some(&Value::Bool(true)) => {}
                    None => {
                        m.remove(&k);
                        pruned.push(child_path);
                    }
                }
            }
            add_defaults(schema, m);
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(s, item, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

/// Validates; returns the field causes, empty when valid.
pub(crate) fn validate(validator: &jsonschema::Validator, obj: &Value) -> Vec<FieldError> {
    validator
        .iter_errors(obj)
        .map(|e| {
            let at = pointer_to_path(e.instance_path().as_str());
            let field = |f: String| if f.is_empty() { "<root>".to_owned() } else { f };
            match e.kind() {
                jsonschema::error::ValidationErrorKind::Required { property } => {
                    let p = property
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| property.to_string());
                    let f = if at.is_empty() { p } else { format!("{at}.{p}") };
                    FieldError::new(field(f), "Required value")
                }
                // As kube-apiserver words a type error: the value's type, not the value.
                jsonschema::error::ValidationErrorKind::Type { kind } => {
                    let expected = match kind {
                        jsonschema::error::TypeKind::Single(t) => t.to_string(),
                        jsonschema::error::TypeKind::Multiple(set) => set
                            .iter()
                            .map(|t| t.to_string())
                            .find(|t| t != "null")
                            .unwrap_or_default(),
                    };
                    let actual = json_type(e.instance().as_ref());
                    let message = format!(
                        "Invalid value: \"{actual}\": {at} in body must be of type {expected}: \"{actual}\""
                    );
                    FieldError::type_invalid(field(at), message)
                }
                kind => {
                    let message = message(kind, &at, e.instance().as_ref(), &e.to_string());
                    FieldError::new(field(at), message)
                }
            }
        })
        .collect()
}

/// A schema violation in kube-apiserver's words (`Unsupported value: …: supported values: …`,
/// `… in body should match '…'`, `… should be greater than or equal to …`); other rules keep
/// the validator's own wording.
fn message(
    kind: &jsonschema::error::ValidationErrorKind,
    field: &str,
    value: &Value,
    fallback: &str,
) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    let shown: String = serde_json::to_string(value)
        .unwrap_or_default()
        .chars()
        .take(120)
        .collect();
    let invalid = |rule: String| format!("Invalid value: {shown}: {field} in body {rule}");
    match kind {
        K::Enum { options } => {
            let supported: Vec<String> = options
                .as_array()
                // `nullable` adds null to the enum here; kube-apiserver lists only the values.
                .map(|o| {
                    o.iter()
                        .filter(|v| !v.is_null())
                        .map(|v| serde_json::to_string(v).unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "Unsupported value: {shown}: supported values: {}",
                supported.join(", ")
            )
        }
        K::Pattern { pattern } => invalid(format!("should match '{pattern}'")),
        K::Minimum { limit } => invalid(format!(
            "should be greater than or equal to {}",
            number(limit)
        )),
        K::Maximum { limit } => {
            invalid(format!("should be less than or equal to {}", number(limit)))
        }
        K::ExclusiveMinimum { limit } => {
            invalid(format!("should be greater than {}", number(limit)))
        }
        K::ExclusiveMaximum { limit } => invalid(format!("should be less than {}", number(limit))),
        K::MinLength { limit } => invalid(format!("should be at least {limit} chars long")),
        K::MaxLength { limit } => format!("Too long: may not be more than {limit} bytes"),
        K::MinItems { limit } => invalid(format!("should have at least {limit} items")),
        K::MaxItems { limit } => format!(
            "Too many: {}: must have at most {limit} items",
            value.as_array().map_or(0, Vec::len)
        ),
        _ => format!("Invalid value: {shown}: {fallback}"),
    }
}

/// A schema bound as Go prints it (`1.0` in a schema is `1`).
fn number(limit: &Value) -> String {
    match limit.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => limit.to_string(),
    }
}

/// The OpenAPI name of a JSON value's type.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `/spec/items/0/name` → `spec.items[0].name`.
fn pointer_to_path(p: &str) -> String {
    let mut out = String::new();
    for seg in p.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.parse::<usize>().is_ok() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "required": ["model"], "properties": {
            "model": {"type": "string"},
            "replicas": {"type": "integer", "default": 1, "minimum": 0},
            "note": {"type": "string", "nullable": true},
            "port": {"x-kubernetes-int-or-string": true},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
        }}}})
    }

    #[test]
    fn violations_are_worded_as_kube_apiserver_words_them() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "mode": {"type": "string", "enum": ["enforce", "report"], "nullable": true},
            "host": {"type": "string", "pattern": "^[a-z]+$"},
            "turns": {"type": "integer", "minimum": 1.0, "maximum": 10.0}
        }}}});
        let v = compile(&s).expect("compiles");
        let causes = validate(&v, &json!({"spec": {"mode": "x", "host": "A", "turns": 0}}));
        let messages: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.field.as_str(), c.message.as_str()))
            .collect();
        assert!(
            messages.contains(&(
                "spec.mode",
                "Unsupported value: \"x\": supported values: \"enforce\", \"report\""
            )),
            "{messages:?}"
        );
        assert!(
            messages.contains(&(
                "spec.host",
                "Invalid value: \"A\": spec.host in body should match '^[a-z]+$'"
            )),
            "{messages:?}"
        );
        assert!(
            messages.contains(&(
                "spec.turns",
                "Invalid value: 0: spec.turns in body should be greater than or equal to 1"
            )),
            "{messages:?}"
        );
    }

    #[test]
    fn prunes_defaults_and_validates() {
        let s = schema();
        let mut obj = json!({"apiVersion": "x/v1", "kind": "T", "metadata": {"name": "a", "whatever": 1},
            "spec": {"model": "m", "bogus": 1, "note": null, "port": "http", "extra": {"any": {"thing": 1}},
                     "labels": {"a": "b"}, "items": [{"name": "n", "junk": true}]}, "top": 1});
        let pruned = prune_and_default(&s, &mut obj);
        assert_eq!(
            pruned,
            vec![
                "spec.bogus".to_string(),
                "spec.items[0].junk".into(),
                "top".into()
            ]
        );
        assert_eq!(obj["spec"]["replicas"], json!(1));
        assert_eq!(obj["spec"]["extra"]["any"]["thing"], json!(1));
        assert_eq!(obj["metadata"]["whatever"], json!(1));
        let v = compile(&s).expect("compiles");
        assert!(validate(&v, &obj).is_empty(), "{:?}", validate(&v, &obj));
        let bad = json!({"spec": {"replicas": "x", "items": [{"name": 3}]}});
        let causes = validate(&v, &bad);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"spec.model"), "{causes:?}");
        assert!(fields.contains(&"spec.replicas"), "{causes:?}");
        assert!(fields.contains(&"spec.items[0].name"), "{causes:?}");
    }
}
