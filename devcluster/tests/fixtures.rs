//! The YAML fixtures the real-kubectl script uses are generated from the test types; this test
//! fails when they drift (set `DEVCLUSTER_REGENERATE=1` to rewrite them).

mod common;

use kube::CustomResourceExt as _;

#[test]
fn widget_crd_fixture_matches_the_type() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/widget-crd.yaml");
    let yaml = serde_saphyr::to_string(&common::Widget::crd()).expect("serialize");
    if std::env::var("DEVCLUSTER_REGENERATE").as_deref() == Ok("1") {
        std::fs::write(&path, &yaml).expect("write fixture");
    }
    let on_disk = std::fs::read_to_string(&path).expect("fixture exists");
    assert_eq!(
        on_disk, yaml,
        "tests/fixtures/widget-crd.yaml is stale: rerun with DEVCLUSTER_REGENERATE=1"
    );
}
