//! Kind-specific write rules of the built-in kinds: namespace phases, pod phase, Secret
//! `stringData` and type, Service cluster IPs, NetworkPolicy `ipBlock` validation, and
//! CustomResourceDefinitions registering (and unregistering) their kinds. Never applies to custom
//! resources.

use super::{Store, WriteCtx};
use crate::error::{ApiError, FieldError};
use crate::meta;
use crate::registry::{self, ResourceDef};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::sync::Arc;

const CRDS: &str = "customresourcedefinitions.apiextensions.k8s.io";
const POLICIES: &str = "networkpolicies.networking.k8s.io";

/// Every namespace carries `kubernetes.io/metadata.name` with its own name, as kube-apiserver
/// enforces on each write (NetworkPolicy `namespaceSelector`s select namespaces by it).
fn name_label(obj: &mut Value) {
    let Some(name) = meta::name(obj).map(str::to_string) else {
        return;
    };
    let md = meta::metadata_mut(obj);
    if !md.get("labels").is_some_and(Value::is_object) {
        md.insert("labels".into(), json!({}));
    }
    if let Some(labels) = md.get_mut("labels").and_then(Value::as_object_mut) {
        labels.insert("kubernetes.io/metadata.name".into(), Value::String(name));
    }
}

fn fold_string_data(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    if let Some(Value::Object(sd)) = m.remove("stringData") {
        let data = m.entry("data").or_insert_with(|| Value::Object(Map::new()));
        if !data.is_object() {
            *data = Value::Object(Map::new());
        }
        let d = data.as_object_mut().expect("made an object above");
        for (k, v) in sd {
            let s = v.as_str().unwrap_or_default();
            d.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(s)),
            );
        }
    }
}

impl Store {
    pub(super) fn on_create(&mut self, ctx: &WriteCtx, obj: &mut Value) -> Result<(), ApiError> {
        match ctx.def.storage.as_str() {
            "namespaces" => name_label(obj),
            "pods" if obj.pointer("/status/phase").is_none() => {
                obj["status"] = json!({"phase": "Pending"});
            }
            "secrets" => {
                check_base64(obj)?;
                fold_string_data(obj);
                if obj.get("type").is_none() {
                    obj["type"] = json!("Opaque");
                }
            }
            "services" => {
                if obj.get("spec").is_none() {
                    obj["spec"] = json!({});
                }
                if obj.pointer("/spec/type").is_none() {
                    obj["spec"]["type"] = json!("ClusterIP");
                }
            }
            POLICIES => validate_ip_blocks(obj)?,
            CRDS => {
                let def = registry::from_crd(obj).map_err(|m| crd_invalid(obj, &m))?;
                if let Some(existing) = self.registry.by_key(&def.key())
                    && !existing.custom
                {
                    return Err(crd_invalid(
                        obj,
                        "spec.group: the group and resource are served by a built-in API",
                    ));
                }
                obj["status"] = registry::crd_status(obj, &meta::now());
            }
            _ => {}
        }
        Ok(())
    }

    /// What the server itself sets on a new object after the writer's fields are recorded in
    /// `managedFields` (kube-apiserver records neither a namespace's `kubernetes` finalizer nor
    /// an allocated cluster IP as the client's).
    pub(super) fn allocate(&mut self, ctx: &WriteCtx, obj: &mut Value) {
        match ctx.def.storage.as_str() {
            "namespaces" => {
                obj["status"] = json!({"phase": "Active"});
                if obj.pointer("/spec/finalizers").is_none() {
                    obj["spec"] = json!({"finalizers": ["kubernetes"]});
                }
            }
            "services" => {
                let external =
                    obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
                if !external && obj.pointer("/spec/clusterIP").is_none() {
                    let ip = self.next_service_ip();
                    obj["spec"]["clusterIP"] = json!(ip);
                    obj["spec"]["clusterIPs"] = json!([ip]);
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_update(
        &mut self,
        ctx: &WriteCtx,
        old: &Value,
        new: &mut Value,
    ) -> Result<(), ApiError> {
        match ctx.def.storage.as_str() {
            "namespaces" => name_label(new),
            "configmaps" => check_immutable(&ctx.def.kind, old, new)?,
            "secrets" => {
                check_base64(new)?;
                fold_string_data(new);
                check_immutable(&ctx.def.kind, old, new)?;
            }
            POLICIES => validate_ip_blocks(new)?,
            "services" => {
                if let Some(ip) = old.pointer("/spec/clusterIP")
                    && new.get("spec").is_some_and(Value::is_object)
                {
                    new["spec"]["clusterIP"] = ip.clone();
                    if let Some(ips) = old.pointer("/spec/clusterIPs") {
                        new["spec"]["clusterIPs"] = ips.clone();
                    }
                }
            }
            CRDS => {
                let def = registry::from_crd(new).map_err(|m| crd_invalid(new, &m))?;
                if def.namespaced
                    != registry::from_crd(old)
                        .map(|d| d.namespaced)
                        .unwrap_or(def.namespaced)
                {
                    return Err(crd_invalid(
                        new,
                        "spec.scope: Invalid value: field is immutable",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Registers the kind of a CRD once it is stored.
    pub(super) fn after_commit(
        &mut self,
        def: &ResourceDef,
        stored: &Arc<Value>,
    ) -> Result<(), ApiError> {
        if def.storage == CRDS && !meta::is_deleting(stored) {
            let d = registry::from_crd(stored).map_err(|m| crd_invalid(stored, &m))?;
            self.registry.insert(d);
        }
        Ok(())
    }

    /// What kube-controller-manager does for a new object, done at once: a namespace gets its
    /// `default` ServiceAccount.
    pub(super) fn after_create(&mut self, def: &ResourceDef, stored: &Arc<Value>) {
        if def.storage != "namespaces" {
            return;
        }
        let Some(ns) = meta::name(stored).map(str::to_string) else {
            return;
        };
        let Some(accounts) = self.registry.find("", "v1", "serviceaccounts").cloned() else {
            return;
        };
        let account =
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
        let mut ctx = WriteCtx::system(&accounts);
        ctx.manager = "kube-controller-manager".into();
        // A new namespace is empty and active, so this create cannot fail.
        let _ = self.create(&mut ctx, Some(&ns), account);
    }

    /// Whether removal must wait although no finalizer is left (a namespace with contents).
    pub(super) fn blocks_removal(&self, def: &ResourceDef, obj: &Value) -> bool {
        def.storage == "namespaces"
            && meta::name(obj).is_some_and(|n| self.namespace_has_content(n))
    }

    pub(super) fn namespace_has_content(&self, ns: &str) -> bool {
        self.registry
            .all()
            .filter(|d| d.namespaced && d.storage == d.key())
            .any(|d| self.scan(&d.storage, Some(ns)).next().is_some())
    }

    /// After a CRD is removed: its kind stops being served and its objects go with it.
    pub(super) fn on_crd_removed(&mut self, crd: &Value) {
        let Ok(def) = registry::from_crd(crd) else {
            return;
        };
        let keys: Vec<(String, String)> = self
            .scan(&def.storage, None)
            .map(|o| {
                (
                    meta::namespace(o).unwrap_or("").to_string(),
                    meta::name(o).unwrap_or("").to_string(),
                )
            })
            .collect();
        for (ns, name) in keys {
            if let Some(removed) = self.commit_remove(&def.storage, &ns, &name) {
                self.collect_garbage(&def.storage, &removed);
            }
        }
        self.registry.remove(&def.key());
    }
}

/// A Secret's `data` values are base64, or the body does not decode (400, as kube-apiserver
/// fails to decode it into a Secret).
fn check_base64(obj: &Value) -> Result<(), ApiError> {
    let data = obj.get("data").and_then(Value::as_object);
    for v in data.into_iter().flat_map(|d| d.values()) {
        let text = v.as_str().unwrap_or_default();
        if let Err(e) = base64::engine::general_purpose::STANDARD.decode(text) {
            let at = match e {
                base64::DecodeError::InvalidByte(at, _)
                | base64::DecodeError::InvalidLastSymbol(at, _) => at,
                _ => text.len(),
            };
            return Err(ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte {at}"
            )));
        }
    }
    Ok(())
}

/// An `immutable` ConfigMap or Secret keeps its data and stays immutable (422 `Invalid`).
fn check_immutable(kind: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return Ok(());
    }
    let forbidden = "Forbidden: field is immutable when `immutable` is set";
    let mut causes = Vec::new();
    if new.get("immutable") != Some(&Value::Bool(true)) {
        causes.push(FieldError::new("immutable", forbidden));
    }
    if old.get("data") != new.get("data") || old.get("binaryData") != new.get("binaryData") {
        causes.push(FieldError::new("data", forbidden));
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        kind,
        "",
        meta::name(new).unwrap_or(""),
        &causes,
    ))
}

const NOT_A_CIDR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// A CIDR as the API server reads one: address and prefix length.
fn parse_cidr(text: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

fn bits(addr: std::net::IpAddr) -> (u128, u8) {
    match addr {
        std::net::IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        std::net::IpAddr::V6(a) => (u128::from(a), 128),
    }
}

/// `inner` lies strictly inside `outer` (same family, longer prefix, same leading bits).
fn strict_subset(inner: (std::net::IpAddr, u8), outer: (std::net::IpAddr, u8)) -> bool {
    let ((a, width), (b, other)) = (bits(inner.0), bits(outer.0));
    if width != other || inner.1 <= outer.1 {
        return false;
    }
    let shift = u32::from(width - outer.1);
    outer.1 == 0 || (a >> shift) == (b >> shift)
}

/// The API server's `ipBlock` rules: every CIDR parses, none is IPv4-mapped IPv6, and each
/// `except` entry is a strict subset of its `cidr`.
fn validate_ip_blocks(obj: &Value) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    for dir in ["ingress", "egress"] {
        let peers = if dir == "ingress" { "from" } else { "to" };
        let rules = obj
            .pointer(&format!("/spec/{dir}"))
            .and_then(Value::as_array);
        for (r, rule) in rules.into_iter().flatten().enumerate() {
            let list = rule.get(peers).and_then(Value::as_array);
            for (p, peer) in list.into_iter().flatten().enumerate() {
                let Some(block) = peer.get("ipBlock") else {
                    continue;
                };
                let at = format!("spec.{dir}[{r}].{peers}[{p}].ipBlock");
                let cidr_text = block.get("cidr").and_then(Value::as_str).unwrap_or("");
                let mapped = |c: (std::net::IpAddr, u8)| matches!(c.0, std::net::IpAddr::V6(a) if a.to_ipv4_mapped().is_some());
                let cidr = parse_cidr(cidr_text);
                match cidr {
                    None => causes.push(FieldError::new(format!("{at}.cidr"), format!("Invalid value: \"{cidr_text}\": {NOT_A_CIDR}"))),
                    Some(c) if mapped(c) => causes.push(FieldError::new(format!("{at}.cidr"), format!("Invalid value: \"{cidr_text}\": must not have an IPv4-mapped IPv6 address"))),
                    Some(_) => {}
                }
                let excepts = block.get("except").and_then(Value::as_array);
                for (e, except) in excepts.into_iter().flatten().enumerate() {
                    let text = except.as_str().unwrap_or("");
                    let field = format!("{at}.except[{e}]");
                    match parse_cidr(text) {
                        None => causes.push(FieldError::new(
                            field,
                            format!("Invalid value: \"{text}\": {NOT_A_CIDR}"),
                        )),
                        Some(x) => {
                            if mapped(x) {
                                causes.push(FieldError::new(field.clone(), format!("Invalid value: \"{text}\": must not have an IPv4-mapped IPv6 address")));
                            }
                            if cidr.is_some_and(|c| !strict_subset(x, c)) {
                                causes.push(FieldError::new(field, format!("Invalid value: \"{text}\": must be a strict subset of `cidr`")));
                            }
                        }
                    }
                }
            }
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        "NetworkPolicy",
        "networking.k8s.io",
        meta::name(obj).unwrap_or(""),
        &causes,
    ))
}

fn crd_invalid(crd: &Value, message: &str) -> ApiError {
    let name = meta::name(crd).unwrap_or("").to_string();
    let (field, msg) = message.split_once(": ").unwrap_or(("spec", message));
    ApiError::invalid(
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        &name,
        &[FieldError::new(field, msg)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_data_and_base64() {
        let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        assert!(check_immutable("ConfigMap", &old, &old).is_ok());
        let changed = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "2"}});
        let e = check_immutable("ConfigMap", &old, &changed).expect_err("data changed");
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        let thawed = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        assert!(
            check_immutable("ConfigMap", &old, &thawed).is_err(),
            "immutable unset"
        );
        assert!(
            check_immutable("ConfigMap", &thawed, &changed).is_ok(),
            "was mutable"
        );
        assert!(check_base64(&json!({"data": {"k": "dg=="}})).is_ok());
        let e = check_base64(&json!({"data": {"k": "not base64!"}})).expect_err("not base64");
        assert!(e.message.ends_with("at input byte 3"), "{}", e.message);
    }

    #[test]
    fn ip_blocks_are_validated_as_the_api_server_does() {
        let policy = |cidr: &str, except: &[&str]| json!({"metadata": {"name": "p"}, "spec": {"egress": [{"to": [{"ipBlock": {"cidr": cidr, "except": except}}]}]}});
        assert!(validate_ip_blocks(&policy("0.0.0.0/0", &["10.0.0.0/8", "127.0.0.0/8"])).is_ok());
        assert!(validate_ip_blocks(&policy("::/0", &["fc00::/7", "::1/128"])).is_ok());
        let mapped = validate_ip_blocks(&policy("::/0", &["::ffff:0:0/96"])).expect_err("mapped");
        assert!(mapped.to_string().contains("IPv4-mapped"), "{mapped}");
        assert!(
            validate_ip_blocks(&policy("10.0.0.0/8", &["10.0.0.0/8"])).is_err(),
            "not strict"
        );
        assert!(
            validate_ip_blocks(&policy("10.0.0.0/8", &["192.168.0.0/16"])).is_err(),
            "outside"
        );
        assert!(
            validate_ip_blocks(&policy("0.0.0.0/0", &["fc00::/7"])).is_err(),
            "other family"
        );
        assert!(validate_ip_blocks(&policy("nonsense", &[])).is_err());
    }
}
