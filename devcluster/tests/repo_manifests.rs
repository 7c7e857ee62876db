//! The repository's `crds/` install into devcluster and every document of `examples/` is
//! accepted by the server (schema validation included), read back through discovery.

use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::Discovery;
use std::path::Path;

#[tokio::test]
async fn repository_crds_and_examples_are_accepted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crds = devcluster::testing::crds_from_dir(&root.join("crds")).expect("crds/ parses");
    assert!(!crds.is_empty(), "crds/ holds the CRDs");
    let c = devcluster::DevCluster::start(devcluster::Config::default())
        .await
        .expect("start");
    c.install_crds(&crds).await.expect("install");
    let discovery = Discovery::new(c.client()).run().await.expect("discovery");
    let examples =
        devcluster::testing::yaml_documents(&root.join("examples")).expect("examples/ parses");
    assert!(!examples.is_empty());
    for doc in examples {
        let obj: DynamicObject = serde_json::from_value(doc).expect("object");
        let tm = obj.types.clone().expect("apiVersion and kind");
        let gvk = kube::api::GroupVersionKind::try_from(&tm).expect("gvk");
        let (ar, _) = discovery.resolve_gvk(&gvk).expect("kind is served");
        let api: Api<DynamicObject> = Api::namespaced_with(c.client(), "default", &ar);
        let created = api
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("{} refused: {e}", tm.kind));
        assert_eq!(created.metadata.name, obj.metadata.name);
    }
    c.shutdown().await;
}
