//! Label and field selectors as the API server parses them from `labelSelector` and
//! `fieldSelector`. Pure matching over objects; never reads the store.

use crate::meta;
use serde_json::Value;

use crate::registry::ResourceDef;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<Req>);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn set_values(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set, got {rest:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

/// Keys and values are identifiers; a stray operator character where one belongs (`a===b`)
/// is refused with the words of kube-apiserver's selector lexer.
fn check_tokens(req: &Req) -> Result<(), String> {
    let (key, values): (&str, Vec<&str>) = match req {
        Req::Eq(k, v) | Req::NotEq(k, v) => (k, vec![v.as_str()]),
        Req::In(k, vs) | Req::NotIn(k, vs) => (k, vs.iter().map(String::as_str).collect()),
        Req::Exists(k) | Req::NotExists(k) => (k, vec![]),
    };
    let identifier = |t: &str, extra: &str| {
        t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || extra.contains(c))
    };
    for (token, extra) in std::iter::once((key, "/")).chain(values.into_iter().map(|v| (v, ""))) {
        if let Some(c) = token.chars().next().filter(|c| "=!(),".contains(*c)) {
            return Err(format!(
                "unable to parse requirement: found '{c}', expected: identifier"
            ));
        }
        if (token.is_empty() && extra == "/") || !identifier(token, extra) {
            return Err(format!(
                "unable to parse requirement: invalid token {token:?}"
            ));
        }
    }
    Ok(())
}

impl LabelSelector {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let req = if let Some(k) = part.strip_prefix('!') {
                Req::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Req::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Req::NotIn(k.trim().into(), set_values(rest)?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Req::In(k.trim().into(), set_values(rest)?)
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Req::Exists(part.to_string())
            } else {
                return Err(format!("unable to parse requirement: {part:?}"));
            };
            check_tokens(&req)?;
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        let labels = meta::labels(obj);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector: `path=value`, `path==value`, `path!=value`, comma-separated, over
/// the fields kube-apiserver supports for the resource (see [`FieldSelector::check_supported`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!("invalid field selector: {part:?}"));
            };
            reqs.push((k.trim().to_string(), eq, v.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Refuses a field kube-apiserver does not select on for this resource (`metadata.name` and
    /// `metadata.namespace` everywhere, and each built-in kind's own few), with its message.
    pub(crate) fn check_supported(&self, def: &ResourceDef) -> Result<(), String> {
        let own: &[&str] = match def.kind.as_str() {
            "Pod" => &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            "Secret" => &["type"],
            "Namespace" => &["status.phase"],
            "Node" => &["spec.unschedulable"],
            "Service" => &["spec.clusterIP", "spec.type"],
            "Event" => &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "reason",
                "reportingComponent",
                "reportingController",
                "source",
                "type",
            ],
            _ => &[],
        };
        match self.0.iter().find(|(path, _, _)| {
            !matches!(path.as_str(), "metadata.name" | "metadata.namespace")
                && !own.contains(&path.as_str())
        }) {
            Some((path, _, _)) => Err(format!("field label not supported: {path}")),
            None => Ok(()),
        }
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let got = match meta::lookup(obj, path) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let m = |s: &str| LabelSelector::parse(s).expect("parses").matches(&o);
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app!=web"));
        assert!(m("app in (web, db)"));
        assert!(!m("app notin (web)"));
        assert!(m("!missing"));
        assert!(!m("missing"));
        assert!(m(""));
    }

    #[test]
    fn malformed_label_selectors_are_refused_in_the_lexer_s_words() {
        assert_eq!(
            LabelSelector::parse("a===b").expect_err("stray ="),
            "unable to parse requirement: found '=', expected: identifier"
        );
        assert!(LabelSelector::parse("a=b c").is_err());
        assert!(LabelSelector::parse("app.kubernetes.io/name=x,tier in (a,b)").is_ok());
    }

    #[test]
    fn field_selectors() {
        let o = json!({"metadata": {"name": "a", "namespace": "n"}, "spec": {"nodeName": "node1"}});
        let m = |s: &str| FieldSelector::parse(s).expect("parses").matches(&o);
        assert!(m("metadata.name=a,metadata.namespace=n"));
        assert!(m("spec.nodeName==node1"));
        assert!(!m("spec.nodeName!=node1"));
        assert!(m("spec.missing="));
    }
}
