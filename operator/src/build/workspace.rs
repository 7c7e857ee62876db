//! The workspace PersistentVolumeClaim: owned by the Session (not the Pod), so it survives pod
//! loss and hibernation and is collected only with the Session.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use sealpod_resources::labels;

use super::{SessionPlan, Settings, child_meta, workspace_claim_name};

/// The workspace claim of a session.
pub fn workspace_claim(plan: &SessionPlan, settings: &Settings) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: child_meta(
            plan,
            workspace_claim_name(&plan.pod),
            labels::COMPONENT_WORKSPACE,
        ),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: settings.workspace_storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(settings.workspace_size.clone()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}
