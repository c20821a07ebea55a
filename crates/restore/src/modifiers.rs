//! Resource modifiers (spec 6.9): being written on branch restore-modifiers; this file is replaced
//! by that work when it lands.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ModifierError(String);

#[derive(Debug, Clone)]
pub struct ResourceModifiers;

impl ResourceModifiers {
    pub fn from_config_map_data(_data: &BTreeMap<String, String>) -> Result<Self, ModifierError> {
        Err(ModifierError(
            "resource modifiers are not supported yet".into(),
        ))
    }

    pub fn apply(
        &self,
        _object: &mut serde_json::Value,
        _group_resource: &str,
    ) -> Result<bool, String> {
        Ok(false)
    }
}
