//! Checks of the generated and example files: `crds/` matches the types, every example validates
//! against its CRD's `openAPIV3Schema`, and broken examples are refused with the field named.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn crds_directory_matches_the_types() {
    for (file, crd) in sealpod_resources::crds::all() {
        let path = repo().join("crds").join(file);
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let generated = sealpod_resources::crds::to_yaml(&crd).expect("yaml");
        assert!(
            committed == generated,
            "{} is stale: run `cargo run -p sealpod-resources --bin crdgen`",
            path.display()
        );
    }
}

/// Rewrites OpenAPI `nullable: true` into a JSON Schema type union, recursively.
fn rewrite_nullable(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type").cloned() {
                    map.insert("type".into(), serde_json::json!([t, "null"]));
                }
                if let Some(Value::Array(values)) = map.get_mut("enum") {
                    values.push(Value::Null);
                }
            }
            map.values_mut().for_each(rewrite_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_nullable),
        _ => {}
    }
}

/// The validator for each kind, built from the generated CRDs.
fn validators() -> Vec<(String, jsonschema::Validator)> {
    sealpod_resources::crds::all()
        .into_iter()
        .map(|(_, crd)| {
            let version = &crd.spec.versions[0];
            let schema = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema");
            let mut schema = serde_json::to_value(schema).expect("json");
            rewrite_nullable(&mut schema);
            let validator = jsonschema::validator_for(&schema).expect("valid schema");
            (crd.spec.names.kind.clone(), validator)
        })
        .collect()
}

/// Validates every document of a YAML file; returns the errors as `path: message`.
fn check_file(path: &Path, validators: &[(String, jsonschema::Validator)]) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("yaml");
    let mut errors = Vec::new();
    let mut checked = 0;
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if let Some((_, validator)) = validators.iter().find(|(k, _)| k == kind) {
            checked += 1;
            let mut body = doc.clone();
            // The schema covers spec and status; metadata is the API server's.
            if let Some(map) = body.as_object_mut() {
                map.remove("metadata");
                map.remove("apiVersion");
                map.remove("kind");
            }
            for error in validator.iter_errors(&body) {
                errors.push(format!("{}: {error}", error.instance_path()));
            }
        }
    }
    assert!(checked > 0, "{} holds no sealpod resource", path.display());
    errors
}

#[test]
fn every_example_validates_against_its_crd() {
    let validators = validators();
    let mut files: Vec<_> = std::fs::read_dir(repo().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "examples/ must hold an Agent, a Credential and a Session"
    );
    for file in files {
        let errors = check_file(&file, &validators);
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
}

#[test]
fn broken_examples_are_refused_naming_the_field() {
    let validators = validators();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");

    let errors = check_file(&fixtures.join("bad-agent.yaml"), &validators);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/spec/limits/turnSeconds:")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("/spec/model:")),
        "{errors:#?}"
    );

    let errors = check_file(&fixtures.join("bad-credential.yaml"), &validators);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/spec/allowedHosts/0:")),
        "{errors:#?}"
    );
}
