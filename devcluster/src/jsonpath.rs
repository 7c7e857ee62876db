//! The small JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b`, `.a['k.x']` and
//! `.a[?(@.type=="Ready")].status`, with or without `{}` braces. Read-only.

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(String, String),
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut steps = Vec::new();
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                    j += 1;
                }
                if j > start {
                    steps.push(Step::Field(p[start..j].to_string()));
                }
                i = j;
            }
            b'[' => {
                let end = p[i..].find(']').map(|e| i + e)?;
                let inner = p[i + 1..end].trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(n) = inner.parse::<usize>() {
                    steps.push(Step::Index(n));
                } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
                {
                    let (k, v) = f.split_once("==")?;
                    let v = v.trim().trim_matches('"').trim_matches('\'');
                    steps.push(Step::Filter(k.trim().to_string(), v.to_string()));
                } else {
                    steps.push(Step::Field(
                        inner.trim_matches('\'').trim_matches('"').to_string(),
                    ));
                }
                i = end + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

/// All values the path selects.
pub(crate) fn select<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else {
        return vec![];
    };
    let mut cur = vec![obj];
    for s in &steps {
        let mut next = Vec::new();
        for v in cur {
            match s {
                Step::Field(f) => next.extend(v.get(f)),
                Step::Index(n) => next.extend(v.get(*n)),
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(k, want) => {
                    if let Value::Array(a) = v {
                        next.extend(a.iter().filter(|i| match i.get(k) {
                            Some(Value::String(s)) => s == want,
                            Some(other) => {
                                serde_json::from_str::<Value>(want).is_ok_and(|w| w == *other)
                            }
                            None => false,
                        }));
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn printer_column_paths() {
        let o = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Other", "status": "False"}]},
            "spec": {"l": [{"n": 1}, {"n": 2}], "a.b": "dotted"}});
        assert_eq!(select(&o, ".status.phase"), vec![&json!("Running")]);
        assert_eq!(
            select(&o, "{.status.conditions[?(@.type==\"Ready\")].status}"),
            vec![&json!("True")]
        );
        assert_eq!(select(&o, ".spec.l[*].n"), vec![&json!(1), &json!(2)]);
        assert_eq!(select(&o, ".spec.l[1].n"), vec![&json!(2)]);
        assert_eq!(select(&o, ".spec['a.b']"), vec![&json!("dotted")]);
        assert!(select(&o, ".nope.x").is_empty());
    }
}
