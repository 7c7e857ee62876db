//! Test helpers for code running against a devcluster: the CRDs and the YAML documents of a
//! directory. (Leader election is the operator's own `sealpod_operator::leader::Elector`, which
//! the tests use.)

/// Reads every CustomResourceDefinition in the `*.yaml` / `*.yml` files of a directory (multi-
/// document files allowed; other kinds are skipped), in file-name order.
pub fn crds_from_dir(
    dir: &std::path::Path,
) -> Result<Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>, crate::Error>
{
    let mut out = Vec::new();
    for doc in yaml_documents(dir)? {
        if doc.get("kind").and_then(serde_json::Value::as_str) == Some("CustomResourceDefinition") {
            let crd = serde_json::from_value(doc).map_err(|e| crate::Error::Parse {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?;
            out.push(crd);
        }
    }
    Ok(out)
}

/// Every YAML document of the `*.yaml` / `*.yml` files of a directory, in file-name order.
pub fn yaml_documents(dir: &std::path::Path) -> Result<Vec<serde_json::Value>, crate::Error> {
    let io = |source| crate::Error::File {
        what: "reading",
        path: dir.display().to_string(),
        source,
    };
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(io)?;
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| crate::Error::Parse {
                path: f.display().to_string(),
                message: e.to_string(),
            })?;
        out.extend(docs.into_iter().filter(|d| !d.is_null()));
    }
    Ok(out)
}
