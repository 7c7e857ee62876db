//! Shared fixtures of the integration tests: a `Widget` custom resource (group
//! `fixture.sealpod.dev`) and a bounded polling helper.
#![allow(dead_code, unreachable_pub)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// A test kind with a status subresource and printer columns.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "fixture.sealpod.dev",
    version = "v1alpha1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wdg",
    printcolumn = r#"{"name":"Size","type":"integer","jsonPath":".spec.size"}"#,
    printcolumn = r#"{"name":"Observed","type":"integer","jsonPath":".status.observedSize"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct WidgetSpec {
    pub size: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_size: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

pub async fn cluster() -> devcluster::DevCluster {
    use kube::CustomResourceExt as _;
    let c = devcluster::DevCluster::start(devcluster::Config {
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .expect("cluster starts");
    c.install_crds(&[Widget::crd()])
        .await
        .expect("CRD installs");
    c
}

pub fn widget(name: &str, size: i32) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            size,
            color: None,
            tags: vec![],
        },
    )
}

/// Polls `f` until it returns `Some`, for at most 15 seconds (a bound, not a timing assertion).
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    sealpod_util::wait::until(what, Duration::from_secs(15), f)
        .await
        .unwrap_or_else(|timed_out| panic!("{timed_out}"))
}
