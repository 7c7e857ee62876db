//! The registry of served resources: the built-in kinds and the kinds registered by
//! CustomResourceDefinitions, with their versions, scope, subresources, printer columns, schemas
//! and list semantics. It describes resources; it never holds objects.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A printer column of a resource version (`additionalPrinterColumns`).
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) type_: String,
    pub(crate) format: String,
    pub(crate) description: String,
    pub(crate) priority: i64,
    pub(crate) json_path: String,
}

/// One served version of a resource.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) name: String,
    pub(crate) columns: Vec<Column>,
    /// `openAPIV3Schema` (custom resources only).
    pub(crate) schema: Option<Value>,
    /// The compiled validator of `schema`.
    pub(crate) validator: Option<Arc<jsonschema::Validator>>,
}

/// How a list inside an object merges (strategic merge patch and server-side apply).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ListKind {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// A resource the server serves.
#[derive(Debug, Clone)]
pub(crate) struct ResourceDef {
    pub(crate) group: String,
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) kind: String,
    pub(crate) namespaced: bool,
    pub(crate) short_names: Vec<String>,
    pub(crate) categories: Vec<String>,
    pub(crate) status_subresource: bool,
    pub(crate) versions: Vec<Version>,
    /// Defined by a CustomResourceDefinition (not built in).
    pub(crate) custom: bool,
    /// Where objects live: two resources may share storage (core and events.k8s.io Events).
    pub(crate) storage: String,
}

impl ResourceDef {
    /// Whether objects carry `metadata.generation`: custom resources and the built-in kinds
    /// whose desired state kube-apiserver versions (Pods, NetworkPolicies); ConfigMaps, Secrets,
    /// Services, Namespaces, Leases and the rest have none.
    pub(crate) fn tracks_generation(&self) -> bool {
        self.custom || matches!(self.kind.as_str(), "Pod" | "NetworkPolicy")
    }

    /// `plural` or `plural.group`: the key of this resource.
    pub(crate) fn key(&self) -> String {
        key(&self.group, &self.plural)
    }

    pub(crate) fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub(crate) fn version(&self, v: &str) -> Option<&Version> {
        self.versions.iter().find(|x| x.name == v)
    }

    pub(crate) fn preferred_version(&self) -> &str {
        self.versions.first().map_or("v1", |v| v.name.as_str())
    }

    /// The schema of version `v`, if any.
    pub(crate) fn schema(&self, v: &str) -> Option<&Value> {
        self.version(v).and_then(|x| x.schema.as_ref())
    }

    /// The compiled validator of version `v`, if any.
    pub(crate) fn validator(&self, v: &str) -> Option<&Arc<jsonschema::Validator>> {
        self.version(v).and_then(|x| x.validator.as_ref())
    }

    /// List semantics of the list at `path` (field names from the object root, list items
    /// skipped), from the schema's `x-kubernetes-list-*` for custom resources and from the
    /// built-in patch strategies otherwise.
    pub(crate) fn list_kind(&self, version: &str, path: &[&str]) -> ListKind {
        match path {
            ["metadata", "finalizers"] => return ListKind::Set,
            ["metadata", "ownerReferences"] => return ListKind::Map(vec!["uid".into()]),
            _ => {}
        }
        if self.custom {
            return self
                .schema(version)
                .map_or(ListKind::Atomic, |s| schema_list_kind(s, path));
        }
        builtin_list_kind(&self.kind, path)
    }
}

pub(crate) fn key(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn schema_list_kind(schema: &Value, path: &[&str]) -> ListKind {
    let mut s = schema;
    for (i, part) in path.iter().enumerate() {
        let next = s
            .get("properties")
            .and_then(|p| p.get(*part))
            .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()));
        let Some(n) = next else {
            return ListKind::Atomic;
        };
        s = n;
        // Paths skip list items: descend through `items` of intermediate arrays.
        if i + 1 < path.len() && s.get("type").and_then(Value::as_str) == Some("array") {
            match s.get("items") {
                Some(items) => s = items,
                None => return ListKind::Atomic,
            }
        }
    }
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListKind::Set,
        Some("map") => ListKind::Map(
            s.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => ListKind::Atomic,
    }
}

/// The patch merge keys of the built-in kinds we serve (the `patchMergeKey` tags of the Go types).
fn builtin_list_kind(kind: &str, path: &[&str]) -> ListKind {
    let last = path.last().copied().unwrap_or("");
    let in_container = path
        .iter()
        .any(|p| matches!(*p, "containers" | "initContainers" | "ephemeralContainers"));
    let by = |k: &str| ListKind::Map(vec![k.to_string()]);
    match last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
            if kind == "Pod" || path.contains(&"template") =>
        {
            by("name")
        }
        "volumeMounts" => by("mountPath"),
        "volumeDevices" => by("devicePath"),
        "ports" if in_container => by("containerPort"),
        "ports" if kind == "Service" => by("port"),
        "conditions" if path.first() == Some(&"status") => by("type"),
        "hostAliases" => by("ip"),
        "secrets" if kind == "ServiceAccount" => by("name"),
        _ => ListKind::Atomic,
    }
}

fn col(name: &str, type_: &str, json_path: &str) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        description: String::new(),
        priority: 0,
        json_path: json_path.into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
    columns: Vec<Column>,
) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: vec![],
        status_subresource: status,
        versions: vec![Version {
            name: version.into(),
            columns,
            schema: None,
            validator: None,
        }],
        custom: false,
        storage: key(group, plural),
    }
}

/// The built-in kinds.
pub(crate) fn builtins() -> Vec<ResourceDef> {
    let age = || col("Age", "date", ".metadata.creationTimestamp");
    let mut events_v1 = builtin(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        true,
        &["ev"],
        false,
        vec![
            col("Type", "string", ".type"),
            col("Reason", "string", ".reason"),
            col("Object", "string", ".regarding.name"),
            col("Note", "string", ".note"),
        ],
    );
    events_v1.storage = "events".into();
    let mut all = vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            true,
            vec![col("Status", "string", ".status.phase"), age()],
        ),
        builtin(
            "",
            "v1",
            "pods",
            "Pod",
            true,
            &["po"],
            true,
            vec![
                col("Ready", "string", "#pod-ready"),
                col("Status", "string", ".status.reason|.status.phase"),
                col("Restarts", "string", "#pod-restarts"),
                age(),
                Column {
                    priority: 1,
                    ..col("IP", "string", ".status.podIP")
                },
                Column {
                    priority: 1,
                    ..col("Node", "string", ".spec.nodeName")
                },
            ],
        ),
        builtin(
            "",
            "v1",
            "secrets",
            "Secret",
            true,
            &[],
            false,
            vec![
                col("Type", "string", ".type"),
                col("Data", "string", "#keys:.data"),
                age(),
            ],
        ),
        builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            false,
            vec![col("Data", "string", "#keys:.data,.binaryData"), age()],
        ),
        builtin(
            "",
            "v1",
            "services",
            "Service",
            true,
            &["svc"],
            true,
            vec![
                col("Type", "string", ".spec.type"),
                col("Cluster-IP", "string", ".spec.clusterIP"),
                age(),
            ],
        ),
        builtin(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            true,
            vec![
                col("Status", "string", ".status.phase"),
                col("Capacity", "string", ".status.capacity.storage"),
                age(),
            ],
        ),
        builtin(
            "",
            "v1",
            "nodes",
            "Node",
            false,
            &["no"],
            true,
            vec![
                col(
                    "Ready",
                    "string",
                    ".status.conditions[?(@.type==\"Ready\")].status",
                ),
                age(),
                col("Version", "string", ".status.nodeInfo.kubeletVersion"),
            ],
        ),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
            vec![age()],
        ),
        builtin(
            "",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            false,
            vec![
                col(
                    "Last Seen",
                    "date",
                    ".lastTimestamp|.series.lastObservedTime|.eventTime|.metadata.creationTimestamp",
                ),
                col("Type", "string", ".type"),
                col("Reason", "string", ".reason"),
                col("Object", "string", ".involvedObject.name"),
                col("Message", "string", ".message"),
            ],
        ),
        events_v1,
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            false,
            vec![col("Holder", "string", ".spec.holderIdentity"), age()],
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            true,
            &["netpol"],
            false,
            vec![age()],
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
            vec![col("Created At", "string", ".metadata.creationTimestamp")],
        ),
    ];
    for d in &mut all {
        if d.kind == "Pod" || d.kind == "Service" {
            d.categories = vec!["all".into()];
        }
    }
    all
}

/// Resource definitions from a CustomResourceDefinition object (served versions only).
pub(crate) fn from_crd(crd: &Value) -> Result<ResourceDef, String> {
    let spec = crd.get("spec").ok_or("spec is required")?;
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .ok_or("spec.group is required")?;
    let names = spec.get("names").ok_or("spec.names is required")?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let strs = |v: &Value, k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let plural = s(names, "plural").ok_or("spec.names.plural is required")?;
    let kind = s(names, "kind").ok_or("spec.names.kind is required")?;
    let singular = s(names, "singular").unwrap_or_else(|| kind.to_lowercase());
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => return Err("spec.scope: must be Namespaced or Cluster".into()),
    };
    let mut versions = Vec::new();
    let mut status_subresource = false;
    let mut storage_count = 0;
    for v in spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions is required")?
    {
        let name = s(v, "name").ok_or("spec.versions[].name is required")?;
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage_count += 1;
        }
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        if v.pointer("/subresources/status").is_some() {
            status_subresource = true;
        }
        let columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| Column {
                        name: s(c, "name").unwrap_or_default(),
                        type_: s(c, "type").unwrap_or_else(|| "string".into()),
                        format: s(c, "format").unwrap_or_default(),
                        description: s(c, "description").unwrap_or_default(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path: s(c, "jsonPath").unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_else(|| vec![col("Age", "date", ".metadata.creationTimestamp")]);
        let schema = v.pointer("/schema/openAPIV3Schema").cloned();
        let validator = match &schema {
            Some(s) => Some(Arc::new(crate::validation::compile(s)?)),
            None => None,
        };
        versions.push(Version {
            name,
            columns,
            schema,
            validator,
        });
    }
    if storage_count != 1 {
        return Err(
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
                .into(),
        );
    }
    if plural.to_lowercase() != plural || kind.is_empty() {
        return Err("spec.names.plural: must be lowercase".into());
    }
    let expected = format!("{plural}.{group}");
    if crate::meta::name(crd) != Some(expected.as_str()) {
        return Err(format!(
            "metadata.name: Invalid value: must be spec.names.plural+\".\"+spec.group ({expected})"
        ));
    }
    Ok(ResourceDef {
        group: group.into(),
        plural: plural.clone(),
        singular,
        kind,
        namespaced,
        short_names: strs(names, "shortNames"),
        categories: strs(names, "categories"),
        status_subresource,
        versions,
        custom: true,
        storage: key(group, &plural),
    })
}

/// The set of served resources.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    defs: BTreeMap<String, Arc<ResourceDef>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            defs: builtins()
                .into_iter()
                .map(|d| (d.key(), Arc::new(d)))
                .collect(),
        }
    }
}

impl Registry {
    pub(crate) fn find(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&Arc<ResourceDef>> {
        self.defs
            .get(&key(group, plural))
            .filter(|d| d.version(version).is_some())
    }

    pub(crate) fn by_key(&self, key: &str) -> Option<&Arc<ResourceDef>> {
        self.defs.get(key)
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<ResourceDef>> {
        self.defs.values()
    }

    pub(crate) fn insert(&mut self, def: ResourceDef) {
        self.defs.insert(def.key(), Arc::new(def));
    }

    pub(crate) fn remove(&mut self, key: &str) {
        self.defs.remove(key);
    }

    /// Groups and their versions, `""` (core) excluded, in a stable order with the preferred
    /// version first.
    pub(crate) fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in self.defs.values().filter(|d| !d.group.is_empty()) {
            let vs = out.entry(d.group.clone()).or_default();
            for v in &d.versions {
                if !vs.contains(&v.name) {
                    vs.push(v.name.clone());
                }
            }
        }
        out
    }

    /// Resources served at group/version.
    pub(crate) fn resources_in(&self, group: &str, version: &str) -> Vec<&Arc<ResourceDef>> {
        self.defs
            .values()
            .filter(|d| d.group == group && d.version(version).is_some())
            .collect()
    }
}

/// The CRD status the server reports once the names are accepted and the kind is served.
pub(crate) fn crd_status(crd: &Value, now: &str) -> Value {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    json!({
        "acceptedNames": names,
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_merge_keys() {
        let reg = Registry::default();
        let pods = reg.find("", "v1", "pods").expect("pods");
        assert_eq!(
            pods.list_kind("v1", &["spec", "containers"]),
            ListKind::Map(vec!["name".into()])
        );
        assert_eq!(
            pods.list_kind("v1", &["spec", "containers", "ports"]),
            ListKind::Map(vec!["containerPort".into()])
        );
        assert_eq!(
            pods.list_kind("v1", &["spec", "containers", "args"]),
            ListKind::Atomic
        );
        assert_eq!(
            pods.list_kind("v1", &["metadata", "finalizers"]),
            ListKind::Set
        );
    }

    #[test]
    fn crd_list_types_come_from_the_schema() {
        let crd = json!({
            "metadata": {"name": "things.x.dev"},
            "spec": {"group": "x.dev", "scope": "Namespaced",
              "names": {"plural": "things", "kind": "Thing"},
              "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {
                  "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                    "items": {"type": "object", "properties": {"tags": {"type": "array", "x-kubernetes-list-type": "set"}}}}}}}}}}]}
        });
        let d = from_crd(&crd).expect("valid");
        assert_eq!(
            d.list_kind("v1", &["spec", "items"]),
            ListKind::Map(vec!["id".into()])
        );
        assert_eq!(d.list_kind("v1", &["spec", "items", "tags"]), ListKind::Set);
        assert_eq!(d.list_kind("v1", &["spec", "other"]), ListKind::Atomic);
    }
}
