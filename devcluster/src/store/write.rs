//! Create, update and patch: the rules every write follows (namespace checks, generateName,
//! resourceVersion preconditions, immutable metadata, status subresource separation, generation
//! bumps, finalizers on deleting objects, field ownership, no-op detection). Kind-specific
//! defaults live in `kinds`; schema checks in `crate::validation`.

use super::Store;
use crate::convert;
use crate::error::{ApiError, FieldError};
use crate::meta;
use crate::patch::apply::{self, Writer};
use crate::patch::fields::Scope;
use crate::patch::{PatchType, json, merge, strategic};
use crate::registry::ResourceDef;
use crate::validation;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// How unknown fields are reported (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) enum FieldValidation {
    #[default]
    Ignore,
    Warn,
    Strict,
}

/// Who writes, through which version, and how.
#[derive(Debug)]
pub(crate) struct WriteCtx {
    pub(crate) def: Arc<ResourceDef>,
    pub(crate) version: String,
    pub(crate) manager: String,
    pub(crate) dry_run: bool,
    pub(crate) validation: FieldValidation,
    /// Warnings for the `Warning` response header.
    pub(crate) warnings: Vec<String>,
}

impl WriteCtx {
    pub(crate) fn new(def: Arc<ResourceDef>, version: &str, manager: &str) -> Self {
        Self {
            def,
            version: version.to_string(),
            manager: manager.to_string(),
            dry_run: false,
            validation: FieldValidation::Ignore,
            warnings: vec![],
        }
    }

    /// Writes the server makes itself.
    pub(crate) fn system(def: &Arc<ResourceDef>) -> Self {
        let v = def.preferred_version().to_string();
        Self::new(def.clone(), &v, "devcluster")
    }

    fn main_scope(&self) -> Scope {
        Scope::Main {
            exclude_status: self.def.status_subresource,
        }
    }

    pub(crate) fn scope(&self, subresource: Option<&str>) -> Scope {
        match subresource {
            Some("status") => Scope::Status,
            _ => self.main_scope(),
        }
    }
}

fn without(v: &Value, keys: &[&str]) -> Map<String, Value> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !keys.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Equal apart from managedFields timestamps (a write that changes nothing else is a no-op).
fn same_ignoring_times(a: &Value, b: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(Value::Array(mf)) = v.pointer_mut("/metadata/managedFields") {
            for e in mf {
                if let Some(m) = e.as_object_mut() {
                    m.remove("time");
                }
            }
        }
        v
    }
    a == b || strip(a) == strip(b)
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .or_else(|_| serde_saphyr::from_slice::<Value>(body).map_err(|e| e.to_string()))
        .map_err(|e| ApiError::bad_request(format!("error decoding the request body: {e}")))
}

impl Store {
    fn writer_list_kind<'a>(
        def: &'a ResourceDef,
        version: &str,
    ) -> impl Fn(&[&str]) -> crate::registry::ListKind + use<'a> {
        let version = version.to_string();
        move |p: &[&str]| def.list_kind(&version, p)
    }

    pub(crate) fn create(
        &mut self,
        ctx: &mut WriteCtx,
        ns: Option<&str>,
        body: Value,
    ) -> Result<Arc<Value>, ApiError> {
        self.create_inner(ctx, ns, body, true)
    }

    fn create_inner(
        &mut self,
        ctx: &mut WriteCtx,
        ns: Option<&str>,
        mut obj: Value,
        record: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let def = ctx.def.clone();
        if !obj.is_object() {
            return Err(ApiError::bad_request("the request body must be an object"));
        }
        if let Some(kind) = obj.get("kind").and_then(Value::as_str)
            && kind != def.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind of the body ({kind}) does not match the resource ({})",
                def.kind
            )));
        }
        convert::to_storage(&def, &mut obj);
        let body_ns = meta::namespace(&obj).map(str::to_string);
        if def.namespaced {
            let ns = ns.ok_or_else(|| {
                ApiError::bad_request("a namespace is required for a namespaced resource")
            })?;
            if body_ns.as_deref().is_some_and(|b| b != ns) {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            match self.get_opt("namespaces", "", ns) {
                None => return Err(ApiError::not_found("", "namespaces", ns)),
                Some(n) if meta::is_deleting(&n) => {
                    return Err(ApiError::forbidden(format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    )));
                }
                Some(_) => {}
            }
            meta::metadata_mut(&mut obj).insert("namespace".into(), Value::String(ns.into()));
        } else {
            meta::metadata_mut(&mut obj).remove("namespace");
        }
        let ns = meta::namespace(&obj).unwrap_or("").to_string();
        let name = match meta::name(&obj) {
            Some(n) => n.to_string(),
            None => {
                let prefix = meta::str_field(&obj, "generateName")
                    .unwrap_or("")
                    .to_string();
                if prefix.is_empty() {
                    return Err(ApiError::invalid(
                        &def.kind,
                        &def.group,
                        "",
                        &[FieldError::new(
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )],
                    ));
                }
                let mut n = format!("{prefix}{}", meta::name_suffix());
                while self.get_opt(&def.storage, &ns, &n).is_some() {
                    n = format!("{prefix}{}", meta::name_suffix());
                }
                n
            }
        };
        if let Err(msg) = meta::check_name(&name) {
            return Err(ApiError::invalid(
                &def.kind,
                &def.group,
                &name,
                &[FieldError::new("metadata.name", msg)],
            ));
        }
        if self.get_opt(&def.storage, &ns, &name).is_some() {
            return Err(ApiError::already_exists(&def.group, &def.plural, &name));
        }
        let md = meta::metadata_mut(&mut obj);
        md.insert("name".into(), Value::String(name));
        md.insert("uid".into(), Value::String(meta::new_uid()));
        md.insert("creationTimestamp".into(), Value::String(meta::now()));
        if def.tracks_generation() {
            md.insert("generation".into(), json!(1));
        }
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            md.remove(k);
        }
        if record {
            md.remove("managedFields");
        }
        if let Some(m) = obj.as_object_mut() {
            m.insert(
                "apiVersion".into(),
                Value::String(def.api_version(&ctx.version)),
            );
            m.insert("kind".into(), Value::String(def.kind.clone()));
            if def.custom && def.status_subresource {
                m.remove("status");
            }
        }
        meta::drop_empty(&mut obj);
        self.on_create(ctx, &mut obj)?;
        self.admit(ctx, &mut obj)?;
        if record {
            let lk = Self::writer_list_kind(&def, &ctx.version);
            let w = Writer {
                manager: &ctx.manager,
                api_version: &def.api_version(&ctx.version),
                scope: ctx.main_scope(),
                list_kind: &lk,
            };
            apply::record_update(None, &mut obj, &w);
        }
        self.allocate(ctx, &mut obj);
        if ctx.dry_run {
            return Ok(Arc::new(obj));
        }
        let stored = self.commit_put(&def.storage, obj, None);
        self.after_commit(&def, &stored)?;
        self.after_create(&def, &stored);
        Ok(stored)
    }

    fn admit(&self, ctx: &mut WriteCtx, obj: &mut Value) -> Result<(), ApiError> {
        let def = ctx.def.clone();
        if !def.custom {
            return Ok(());
        }
        let Some(schema) = def.schema(&ctx.version) else {
            return Ok(());
        };
        let pruned = validation::prune_and_default(schema, obj);
        if !pruned.is_empty() {
            match ctx.validation {
                FieldValidation::Strict => {
                    let list: Vec<String> = pruned
                        .iter()
                        .map(|p| format!("unknown field \"{p}\""))
                        .collect();
                    let (kind, version) = (&def.kind, &ctx.version);
                    return Err(ApiError::bad_request(format!(
                        "{kind} in version \"{version}\" cannot be handled as a {kind}: \
                         strict decoding error: {}",
                        list.join(", ")
                    )));
                }
                FieldValidation::Warn => {
                    ctx.warnings
                        .extend(pruned.iter().map(|p| format!("unknown field \"{p}\"")));
                }
                FieldValidation::Ignore => {}
            }
        }
        let name = meta::name(obj).unwrap_or("").to_string();
        let Some(validator) = def.validator(&ctx.version) else {
            return Ok(());
        };
        let causes = validation::validate(validator, obj);
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(&def.kind, &def.group, &name, &causes))
        }
    }

    pub(crate) fn update(
        &mut self,
        ctx: &mut WriteCtx,
        ns: &str,
        name: &str,
        mut body: Value,
        subresource: Option<&str>,
    ) -> Result<Arc<Value>, ApiError> {
        let def = ctx.def.clone();
        let old = self.get(&def, ns, name)?;
        if meta::name(&body).is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&body).unwrap_or_default()
            )));
        }
        if !body.is_object() {
            return Err(ApiError::bad_request("the request body must be an object"));
        }
        convert::to_storage(&def, &mut body);
        self.finish_update(ctx, old, body, ctx.scope(subresource), true)
    }

    /// A patch; returns the object and whether it was created (server-side apply of a new name).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &mut self,
        ctx: &mut WriteCtx,
        ns: &str,
        name: &str,
        ptype: PatchType,
        body: &[u8],
        subresource: Option<&str>,
        force: bool,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let def = ctx.def.clone();
        let old = self.get_opt(&def.storage, ns, name);
        let scope = ctx.scope(subresource);
        let api_version = def.api_version(&ctx.version);
        if ptype == PatchType::Apply {
            let mut config = parse_body(body)?;
            if !config.is_object() {
                return Err(ApiError::bad_request(
                    "the apply configuration must be an object",
                ));
            }
            if meta::name(&config).is_some_and(|n| n != name) {
                return Err(ApiError::bad_request(
                    "the name of the apply configuration does not match the name on the URL",
                ));
            }
            if config
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k != def.kind)
            {
                return Err(ApiError::bad_request(
                    "the kind of the apply configuration does not match the resource",
                ));
            }
            convert::to_storage(&def, &mut config);
            let lk = Self::writer_list_kind(&def, &ctx.version);
            let w = Writer {
                manager: &ctx.manager,
                api_version: &api_version,
                scope,
                list_kind: &lk,
            };
            return match old {
                Some(old) => {
                    let mut live = Value::clone(&old);
                    apply::apply(&mut live, &config, force, &w)?;
                    self.finish_update(ctx, old, live, scope, false)
                        .map(|o| (o, false))
                }
                None => {
                    if subresource.is_some() {
                        return Err(ApiError::not_found(&def.group, &def.plural, name));
                    }
                    let mut live = json!({"apiVersion": api_version, "kind": def.kind, "metadata": {"name": name}});
                    if def.namespaced {
                        live["metadata"]["namespace"] = Value::String(ns.into());
                    }
                    apply::apply(&mut live, &config, force, &w)?;
                    let ns_opt = def.namespaced.then_some(ns);
                    self.create_inner(ctx, ns_opt, live, false)
                        .map(|o| (o, true))
                }
            };
        }
        let old = old.ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
        let mut doc = convert::from_storage_for_patch(&def, &old);
        match ptype {
            PatchType::Merge => {
                let p = parse_body(body)?;
                merge::merge_patch(&mut doc, &p);
            }
            PatchType::Json => {
                let p = parse_body(body)?;
                json::json_patch(&mut doc, &p).map_err(|e| {
                    // A failed `test` is reported without detail, as kube-apiserver does.
                    let detail = match e {
                        json::PatchError::TestFailed { .. } => String::new(),
                        json::PatchError::Invalid(e) => format!(": {e}"),
                    };
                    ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request{detail}"
                        ),
                    )
                })?;
            }
            PatchType::Strategic => {
                if def.custom {
                    return Err(ApiError::unsupported_patch_type());
                }
                let p = parse_body(body)?;
                let lk = Self::writer_list_kind(&def, &ctx.version);
                strategic::strategic_merge(&mut doc, &p, &lk).map_err(|e| {
                    ApiError::bad_request(format!("invalid strategic merge patch: {e}"))
                })?;
            }
            PatchType::Apply => unreachable!("handled above"),
        }
        convert::to_storage(&def, &mut doc);
        self.finish_update(ctx, old, doc, scope, true)
            .map(|o| (o, false))
    }

    /// The common tail of every update: `new` is the full desired object.
    fn finish_update(
        &mut self,
        ctx: &mut WriteCtx,
        old: Arc<Value>,
        mut new: Value,
        scope: Scope,
        record: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let def = ctx.def.clone();
        let name = meta::name(&old).unwrap_or("").to_string();
        if let Some(rv) = meta::resource_version(&new)
            && Some(rv) != meta::resource_version(&old)
        {
            return Err(ApiError::conflict(&def.group, &def.plural, &name));
        }
        let old_md = meta::metadata(&old).clone();
        {
            let md = meta::metadata_mut(&mut new);
            for k in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ] {
                match old_md.get(k) {
                    Some(v) => md.insert(k.into(), v.clone()),
                    None => md.remove(k),
                };
            }
            if !record {
                // Apply computed managedFields itself; an update keeps the stored ones.
            } else {
                match old_md.get("managedFields") {
                    Some(v) => md.insert("managedFields".into(), v.clone()),
                    None => md.remove("managedFields"),
                };
            }
        }
        if let Some(m) = new.as_object_mut() {
            for k in ["apiVersion", "kind"] {
                if let Some(v) = old.get(k) {
                    m.insert(k.into(), v.clone());
                }
            }
        }
        match scope {
            Scope::Status => {
                let mut n = Value::clone(&old);
                let status = new.get("status").cloned();
                let mf = meta::metadata(&new).get("managedFields").cloned();
                let m = n.as_object_mut().expect("stored objects are objects");
                match status {
                    Some(s) => m.insert("status".into(), s),
                    None => m.remove("status"),
                };
                let md = meta::metadata_mut(&mut n);
                match mf {
                    Some(v) => md.insert("managedFields".into(), v),
                    None => md.remove("managedFields"),
                };
                new = n;
            }
            Scope::Main {
                exclude_status: true,
            } => {
                let m = new.as_object_mut().expect("checked to be an object");
                match old.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
            Scope::Main {
                exclude_status: false,
            } => {}
        }
        if meta::is_deleting(&old) {
            let before = meta::finalizers(&old);
            let added: Vec<String> = meta::finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .map(|f| format!("{f:?}"))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &def.kind,
                    &def.group,
                    &name,
                    &[FieldError::new(
                        "metadata.finalizers",
                        format!(
                            "Forbidden: no new finalizers can be added if the object is being \
                             deleted, found new finalizers []string{{{}}}",
                            added.join(", ")
                        ),
                    )],
                ));
            }
        }
        meta::drop_empty(&mut new);
        self.on_update(ctx, &old, &mut new)?;
        self.admit(ctx, &mut new)?;
        if def.tracks_generation()
            && without(&old, &["metadata", "status"]) != without(&new, &["metadata", "status"])
        {
            let g = meta::generation(&old) + 1;
            meta::metadata_mut(&mut new).insert("generation".into(), json!(g));
        }
        if record {
            let api_version = def.api_version(&ctx.version);
            let lk = Self::writer_list_kind(&def, &ctx.version);
            let w = Writer {
                manager: &ctx.manager,
                api_version: &api_version,
                scope,
                list_kind: &lk,
            };
            apply::record_update(Some(&old), &mut new, &w);
        }
        if same_ignoring_times(&old, &new) {
            return Ok(old);
        }
        if ctx.dry_run {
            return Ok(Arc::new(new));
        }
        if meta::is_deleting(&new)
            && meta::finalizers(&new).is_empty()
            && !self.blocks_removal(&def, &new)
        {
            let ns = meta::namespace(&new).unwrap_or("").to_string();
            // Watchers see one DELETED event carrying the final state, as on a real server.
            self.objects
                .entry(def.storage.clone())
                .or_default()
                .insert((ns.clone(), name.clone()), Arc::new(new));
            let removed = self.commit_remove(&def.storage, &ns, &name).unwrap_or(old);
            self.collect_garbage(&def.storage, &removed);
            return Ok(removed);
        }
        let stored = self.commit_put(&def.storage, new, Some(old));
        self.after_commit(&def, &stored)?;
        Ok(stored)
    }
}
