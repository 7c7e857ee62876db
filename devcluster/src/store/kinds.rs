//! Kind-specific write rules of the built-in kinds: namespace phases, pod phase, Secret
//! `stringData` and type, Service cluster IPs, and CustomResourceDefinitions registering (and
//! unregistering) their kinds. Never applies to custom resources.

use super::{Store, WriteCtx};
use crate::error::ApiError;
use crate::meta;
use crate::registry::{self, ResourceDef};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::sync::Arc;

const CRDS: &str = "customresourcedefinitions.apiextensions.k8s.io";

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
            "namespaces" => {
                obj["status"] = json!({"phase": "Active"});
                if obj.pointer("/spec/finalizers").is_none() {
                    obj["spec"] = json!({"finalizers": ["kubernetes"]});
                }
            }
            "pods" if obj.pointer("/status/phase").is_none() => {
                obj["status"] = json!({"phase": "Pending"});
            }
            "secrets" => {
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
                let external =
                    obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
                if !external && obj.pointer("/spec/clusterIP").is_none() {
                    let ip = self.next_service_ip();
                    obj["spec"]["clusterIP"] = json!(ip);
                    obj["spec"]["clusterIPs"] = json!([ip]);
                }
            }
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

    pub(super) fn on_update(
        &mut self,
        ctx: &WriteCtx,
        old: &Value,
        new: &mut Value,
    ) -> Result<(), ApiError> {
        match ctx.def.storage.as_str() {
            "secrets" => fold_string_data(new),
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

fn crd_invalid(crd: &Value, message: &str) -> ApiError {
    let name = meta::name(crd).unwrap_or("").to_string();
    let (field, msg) = message.split_once(": ").unwrap_or(("spec", message));
    ApiError::invalid(
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        &name,
        &[(field.to_string(), msg.to_string())],
    )
}
