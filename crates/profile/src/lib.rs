//! The Cisco MPP "flat-profile": the XML configuration format of Multiplatform (3PCC) phones.
//!
//! Cisco "Provisioning Formats", *Configuration Profile Formats*: parameters are elements inside a `<flat-profile>`
//! element (which may itself sit inside any other elements), the last occurrence of a name wins, values are trimmed
//! and newlines become spaces, and attributes such as `ua="na|ro|rw"` set user access.
//!
//! - [`Profile::parse`] reads a profile exactly as a phone does, with line:column positions on every parameter and
//!   every error;
//! - [`Profile::write`] writes one back so that it parses to the same parameters;
//! - [`PhoneState::apply`] applies a profile to a phone's parameter state with the phone's rules;
//! - [`dictionary`] knows the documented parameters, their data types and defaults, and [`lint`] checks a profile
//!   against it.
//!
//! Nothing here does I/O; decompression and decryption live in `provisor-envelope`.

#![warn(missing_docs)]

mod apply;
pub mod data_type;
pub mod dictionary;
pub mod lint;
mod name;
mod parse;
mod position;
mod write;

pub use apply::{ApplyOptions, ApplyReport, PhoneState, Setting, UnknownParameters};
pub use parse::{EmptyTag, EmptyValue, ParseError, ParseErrorKind, ParseOptions};
pub use position::Position;
pub use write::WriteError;

/// The string type of names and values: short ones (up to 24 bytes, most of them) are kept inline, not allocated.
pub use compact_str::CompactString;

/// User access to a parameter (`ua` attribute): what the *User* account and the phone's menus may do with it.
///
/// Cisco 8800 MPP admin guide, *Access Control*: "If the ua attribute is not specified, the existing user access
/// setting is retained."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserAccess {
    /// `na`: no access.
    Na,
    /// `ro`: read-only.
    Ro,
    /// `rw`: read-write.
    Rw,
}

impl UserAccess {
    /// The attribute value as written in a profile.
    pub fn as_str(self) -> &'static str {
        match self {
            UserAccess::Na => "na",
            UserAccess::Ro => "ro",
            UserAccess::Rw => "rw",
        }
    }

    /// Parses `na`, `ro` or `rw` (exactly; the phone documents lowercase only).
    pub fn from_attribute(s: &str) -> Option<UserAccess> {
        match s {
            "na" => Some(UserAccess::Na),
            "ro" => Some(UserAccess::Ro),
            "rw" => Some(UserAccess::Rw),
            _ => None,
        }
    }
}

impl std::fmt::Display for UserAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a parameter element does to the parameter's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// Set the value to this text (already unescaped, trimmed, newlines turned into spaces). May be empty.
    Text(CompactString),
    /// Reset the value to the parameter's default (an empty element, when [`EmptyValue::Default`] is chosen).
    Default,
    /// Leave the value alone and only update attributes (`<X ua="rw"/>`, see [`EmptyTag`]).
    Unchanged,
}

impl Value {
    /// The text, if the element sets one.
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// One parameter element of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// The element name, e.g. `Profile_Rule` or `Dial_Plan_1_`. Case-sensitive.
    pub name: CompactString,
    /// What the element does to the value.
    pub value: Value,
    /// The `ua` attribute, if present.
    pub ua: Option<UserAccess>,
    /// `preserve-value="y"` (8800 MPP AG 11.3+): keep an existing value and make the parameter read-write.
    pub preserve_value: bool,
    /// `user-pref="y|n"`: whether a user's own change survives this provisioning.
    pub user_pref: Option<bool>,
    /// Where the element starts.
    pub position: Position,
}

impl Parameter {
    /// An element setting `name` to the text `value`, with no attributes (as `--set NAME=VALUE` writes it).
    pub fn text(name: &str, value: &str) -> Parameter {
        Parameter {
            name: name.into(),
            value: Value::Text(value.into()),
            ua: None,
            preserve_value: false,
            user_pref: None,
            position: Position::default(),
        }
    }
}

/// A parsed flat-profile: every parameter element in document order, duplicates included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Parameter elements in document order. Use [`Profile::effective`] for "the last occurrence wins".
    pub parameters: Vec<Parameter>,
}

impl Profile {
    /// The element that takes effect for `name`: the last occurrence.
    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().rev().find(|p| p.name == name)
    }

    /// The effective parameters (last occurrence of each name wins), in the order each name first appears.
    pub fn effective(&self) -> Vec<&Parameter> {
        let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (i, p) in self.parameters.iter().enumerate() {
            last.insert(&p.name, i);
        }
        let mut seen = std::collections::HashSet::new();
        self.parameters
            .iter()
            .filter(|p| seen.insert(p.name.as_str()))
            .map(|p| &self.parameters[last[p.name.as_str()]])
            .collect()
    }
}
