//! A container's environment, resolved as a kubelet resolves it: `env` values with `$(VAR)`
//! expansion, `valueFrom` (Secret and ConfigMap keys, pod fields) and `envFrom`.
//!
//! The runner's own environment is never passed on: a container sees `PATH` (from the runner,
//! so host tools resolve), `HOSTNAME` and what its spec declares — never a variable of the shell
//! that started the runner (which could hold a real model key).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

use super::RunnerError;
use super::volumes::MountMap;

/// Facts about the pod that `fieldRef` may read.
#[derive(Debug, Clone)]
pub struct PodFields {
    /// `metadata.name`
    pub name: String,
    /// `metadata.namespace`
    pub namespace: String,
    /// `metadata.uid`
    pub uid: String,
    /// `spec.nodeName`
    pub node_name: String,
    /// `status.podIP`
    pub pod_ip: String,
    /// `spec.serviceAccountName`
    pub service_account: String,
    /// `metadata.annotations`
    pub annotations: BTreeMap<String, String>,
    /// `metadata.labels`
    pub labels: BTreeMap<String, String>,
}

impl PodFields {
    fn get(&self, path: &str) -> Option<String> {
        Some(match path {
            "metadata.name" => self.name.clone(),
            "metadata.namespace" => self.namespace.clone(),
            "metadata.uid" => self.uid.clone(),
            "spec.nodeName" => self.node_name.clone(),
            "status.podIP" | "status.hostIP" => self.pod_ip.clone(),
            "spec.serviceAccountName" => self.service_account.clone(),
            // A key the pod does not have reads as empty, as a kubelet has it.
            _ => {
                if let Some(key) = subscript(path, "metadata.annotations") {
                    self.annotations.get(key).cloned().unwrap_or_default()
                } else if let Some(key) = subscript(path, "metadata.labels") {
                    self.labels.get(key).cloned().unwrap_or_default()
                } else {
                    return None;
                }
            }
        })
    }

    /// The fields of a pod, with the IP the runner gives it.
    pub fn of(pod: &Pod, pod_ip: &str) -> PodFields {
        let spec = pod.spec.clone().unwrap_or_default();
        PodFields {
            name: pod.metadata.name.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node_name: spec.node_name.unwrap_or_default(),
            pod_ip: pod_ip.to_owned(),
            service_account: spec.service_account_name.unwrap_or_default(),
            annotations: pod.metadata.annotations.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
        }
    }
}

/// The key of `FIELD['KEY']` (the downward API's form for one annotation or label).
fn subscript<'a>(path: &'a str, field: &str) -> Option<&'a str> {
    path.strip_prefix(field)?
        .strip_prefix("['")?
        .strip_suffix("']")
}

/// Expands `$(NAME)` references to earlier variables; `$$(NAME)` escapes to a literal `$(NAME)`.
pub fn expand(value: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix("$(") {
            out.push_str("$(");
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

async fn secret_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, RunnerError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .get_opt(name)
        .await
        .map_err(RunnerError::kube)?
        .map(|s| {
            let mut out: BTreeMap<String, String> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            out.extend(s.string_data.unwrap_or_default());
            out
        }))
}

async fn config_map_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, RunnerError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .get_opt(name)
        .await
        .map_err(RunnerError::kube)?
        .map(|c| c.data.unwrap_or_default()))
}

fn missing(kind: &str, name: &str, key: Option<&str>) -> RunnerError {
    RunnerError::Waiting(match key {
        Some(key) => format!("{kind} {name} has no key {key}"),
        None => format!("{kind} {name} not found"),
    })
}

/// Resolves the environment of a container.
pub async fn resolve(
    client: &kube::Client,
    container: &Container,
    fields: &PodFields,
    mounts: &MountMap,
) -> Result<BTreeMap<String, String>, RunnerError> {
    let ns = fields.namespace.as_str();
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_owned(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
    );
    env.insert("HOSTNAME".to_owned(), fields.name.clone());

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(s) = &from.secret_ref {
            match secret_data(client, ns, &s.name).await? {
                Some(d) => d,
                None if s.optional == Some(true) => BTreeMap::new(),
                None => return Err(missing("secret", &s.name, None)),
            }
        } else if let Some(c) = &from.config_map_ref {
            match config_map_data(client, ns, &c.name).await? {
                Some(d) => d,
                None if c.optional == Some(true) => BTreeMap::new(),
                None => return Err(missing("configmap", &c.name, None)),
            }
        } else {
            BTreeMap::new()
        };
        for (k, v) in data {
            env.insert(format!("{prefix}{k}"), v);
        }
    }

    for var in container.env.iter().flatten() {
        let value = if let Some(value) = &var.value {
            expand(value, &env)
        } else if let Some(from) = &var.value_from {
            if let Some(r) = &from.secret_key_ref {
                let data = secret_data(client, ns, &r.name).await?;
                match data.and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => return Err(missing("secret", &r.name, Some(&r.key))),
                }
            } else if let Some(r) = &from.config_map_key_ref {
                let data = config_map_data(client, ns, &r.name).await?;
                match data.and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => return Err(missing("configmap", &r.name, Some(&r.key))),
                }
            } else if let Some(r) = &from.field_ref {
                fields.get(&r.field_path).ok_or_else(|| {
                    RunnerError::Spec(format!("unsupported fieldRef {}", r.field_path))
                })?
            } else {
                // resourceFieldRef: the runner sets no resource limits.
                String::new()
            }
        } else {
            String::new()
        };
        env.insert(var.name.clone(), mounts.map_word(&value));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let env = BTreeMap::from([("A".to_owned(), "x".to_owned())]);
        assert_eq!(expand("$(A)/$(A)", &env), "x/x");
        assert_eq!(expand("$(B)", &env), "$(B)");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("cost $5", &env), "cost $5");
        assert_eq!(expand("$(A", &env), "$(A");
    }

    #[test]
    fn field_refs_read_one_annotation_or_label() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pod.metadata.annotations = Some(BTreeMap::from([("a.io/t".into(), "1".into())]));
        pod.metadata.labels = Some(BTreeMap::from([("app".into(), "x".into())]));
        let fields = PodFields::of(&pod, "10.0.0.1");
        assert_eq!(
            fields.get("metadata.annotations['a.io/t']").as_deref(),
            Some("1")
        );
        assert_eq!(fields.get("metadata.labels['app']").as_deref(), Some("x"));
        assert_eq!(
            fields.get("metadata.annotations['missing']").as_deref(),
            Some("")
        );
        assert_eq!(fields.get("metadata.annotations").as_deref(), None);
        assert_eq!(fields.get("metadata.name").as_deref(), Some("p"));
    }
}
