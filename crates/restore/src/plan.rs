//! A dry run's plan: for every selected item, what the restore would do with it and what the API
//! server answered to the same request sent with `dryRun=All`. Stored with the Restore as
//! `restore-<name>-plan.json.gz` and shown by `velero restore describe --details`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::compare::FieldChange;

/// What the restore would do with one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlannedAction {
    Create,
    Update,
    Skip,
    /// The restore could not even send it (an action or modifier failed on it).
    Fail,
}

impl PlannedAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlannedAction::Create => "create",
            PlannedAction::Update => "update",
            PlannedAction::Skip => "skip",
            PlannedAction::Fail => "fail",
        }
    }
}

/// One item of the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedItem {
    /// `resource.group` (`deployments.apps`, `configmaps`).
    pub resource: String,
    /// The target namespace (after mappings); absent for cluster-scoped items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub action: PlannedAction,
    /// Why it is skipped, or what the API server could not check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The API server's refusal of the create or update, in its words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// For updates and items that exist and differ: the backed-up value (after mappings, item
    /// actions and modifiers) against the cluster's, field by field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
}

/// What the engine learns about an item on its way, before it knows the item's identity.
#[derive(Clone, Debug)]
pub(crate) struct PlanNote {
    pub(crate) action: PlannedAction,
    pub(crate) reason: Option<String>,
    pub(crate) refused: Option<String>,
    pub(crate) changes: Vec<FieldChange>,
}

impl PlanNote {
    pub(crate) fn new(action: PlannedAction) -> PlanNote {
        PlanNote {
            action,
            reason: None,
            refused: None,
            changes: Vec::new(),
        }
    }

    pub(crate) fn because(mut self, reason: impl Into<String>) -> PlanNote {
        self.reason = Some(reason.into());
        self
    }

    pub(crate) fn refused(mut self, message: impl Into<String>) -> PlanNote {
        self.refused = Some(message.into());
        self
    }

    pub(crate) fn with_changes(mut self, changes: Vec<FieldChange>) -> PlanNote {
        self.changes = changes;
        self
    }
}

/// The whole plan, one entry per item, in a stable order (resource, namespace, name).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RestorePlan {
    pub items: Vec<PlannedItem>,
}

impl RestorePlan {
    pub(crate) fn from_entries(
        entries: BTreeMap<(String, String, String), PlanNote>,
    ) -> RestorePlan {
        let items = entries
            .into_iter()
            .map(|((resource, namespace, name), note)| PlannedItem {
                resource,
                namespace: (!namespace.is_empty()).then_some(namespace),
                name,
                action: note.action,
                reason: note.reason,
                refused: note.refused,
                changes: note.changes,
            })
            .collect();
        RestorePlan { items }
    }

    /// How many items each action has, and how many the API server refused.
    pub fn counts(&self) -> (BTreeMap<&'static str, usize>, usize) {
        let mut by_action = BTreeMap::new();
        for item in &self.items {
            *by_action.entry(item.action.as_str()).or_default() += 1;
        }
        let refused = self.items.iter().filter(|i| i.refused.is_some()).count();
        (by_action, refused)
    }
}
