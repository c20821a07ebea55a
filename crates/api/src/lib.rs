//! Velero's custom resources as Rust types, with Velero's exact JSON field names, enums and phases,
//! and the CustomResourceDefinitions generated from them.
//!
//! Optional fields are `Option`s that are left out when unset, as Go's `omitempty` leaves out a zero
//! value: a Backup serialized here reads the same in Velero, and a manifest written for Velero reads
//! the same here.

// kube-derive's `printcolumn(name = .., type_ = ..)` repeats keys across columns, which this lint
// mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

mod accessors;
pub mod crd;
mod duration;
pub mod item;
pub mod kuberesource;
pub mod labels;
pub mod manifest;
mod schema;
pub mod v1;
pub mod v2alpha1;

pub use crd::crds;
pub use duration::{Duration, ParseDurationError};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every Velero kind.
pub const GROUP: &str = "velero.io";

/// Namespace Velero is installed into unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "velero";

/// Backup tarball format written into `metadata/version` and `status.formatVersion`.
pub const BACKUP_FORMAT_VERSION: &str = "1.1.0";

/// Progress of a data-mover or file-system backup, in bytes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataMoveOperationProgress {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_done: Option<i64>,
}

/// An embedded object kept verbatim (Go's `runtime.RawExtension`): fields we do not model survive a
/// round trip, and the CRD tells the API server not to prune them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct RawExtension(pub serde_json::Value);

impl JsonSchema for RawExtension {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RawExtension".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}
