//! Schemas for wire types whose Rust representation carries no schema of its own.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// Bytes written as base64 (Go's `[]byte`).
pub struct Base64;

impl JsonSchema for Base64 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Base64".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "byte" })
    }
}
