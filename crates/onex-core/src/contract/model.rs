//! A node's input and output models: documentation of its payloads' fields.

use serde::Deserialize;

/// A node's input or output model: documentation of its payload's fields.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// The model's name.
    pub name: String,
    /// Its fields.
    #[serde(default)]
    pub fields: Vec<ModelField>,
}

/// One field of a [`Model`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelField {
    /// The field's name.
    pub name: String,
    /// Its type, as free text (`string`, `list[OrderItem]`, …).
    #[serde(rename = "type")]
    pub field_type: String,
    /// Whether the field must be present.
    #[serde(default)]
    pub required: bool,
}
