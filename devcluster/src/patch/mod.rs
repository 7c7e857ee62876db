//! Patch formats: JSON merge patch, JSON patch, strategic merge patch and server-side apply
//! (with the field ownership it needs). Pure transformations of JSON values; never touches the
//! store or decides preconditions.

pub(crate) mod apply;
pub(crate) mod fields;
pub(crate) mod json;
pub(crate) mod merge;
pub(crate) mod strategic;

/// The patch type named by a request's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub(crate) fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}
