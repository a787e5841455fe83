//! Writing a flat-profile that a phone reads back to the same parameters.

use crate::parse::{EmptyTag, EmptyValue, ParseOptions};
use crate::{Parameter, Profile, Value};

/// A parameter that cannot be written so that it means the same under the chosen [`ParseOptions`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// "Reset to default" needs [`EmptyValue::Default`]; under [`EmptyValue::EmptyString`] no element says it.
    #[error(
        "parameter <{0}> resets to its default, which this profile dialect cannot express (empty elements mean \"\")"
    )]
    DefaultNotExpressible(String),
    /// "Keep the value, change attributes" needs [`EmptyTag::AttributesOnly`] and at least one attribute.
    #[error("parameter <{0}> keeps its value without attributes to change, which no element can express")]
    UnchangedNotExpressible(String),
    /// Element names must be XML names; the phone's names are letters, digits, `_`, `-` and `.`.
    #[error("{0:?} is not a valid parameter element name")]
    InvalidName(String),
}

/// Escapes `&`, `<` and `>` (and `"` in attributes, which is all that is needed with double-quoted attributes).
pub(crate) fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // A carriage return would be normalised away by any XML reader.
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Profile {
    /// Writes the profile as `<flat-profile>` with one parameter per line, in order, escaping as needed.
    ///
    /// Values with leading or trailing white space or newlines cannot survive a phone's trimming, and are written
    /// as they are (a phone would read them trimmed, as it would any file).
    pub fn write(&self, options: &ParseOptions) -> Result<String, WriteError> {
        let mut out = String::with_capacity(self.parameters.len() * 48 + 32);
        out.push_str("<flat-profile>\n");
        for p in &self.parameters {
            write_parameter(p, options, &mut out)?;
        }
        out.push_str("</flat-profile>\n");
        Ok(out)
    }
}

fn write_parameter(p: &Parameter, options: &ParseOptions, out: &mut String) -> Result<(), WriteError> {
    if !valid_name(&p.name) {
        return Err(WriteError::InvalidName(p.name.to_string()));
    }
    out.push_str("  <");
    out.push_str(&p.name);
    if let Some(ua) = p.ua {
        out.push_str(" ua=\"");
        out.push_str(ua.as_str());
        out.push('"');
    }
    if p.preserve_value {
        out.push_str(" preserve-value=\"y\"");
    }
    if let Some(pref) = p.user_pref {
        out.push_str(if pref { " user-pref=\"y\"" } else { " user-pref=\"n\"" });
    }
    let has_attributes = p.ua.is_some() || p.preserve_value || p.user_pref.is_some();
    match &p.value {
        Value::Unchanged => {
            if !(has_attributes && options.empty_tag == EmptyTag::AttributesOnly) {
                return Err(WriteError::UnchangedNotExpressible(p.name.to_string()));
            }
            out.push_str("/>\n");
            return Ok(());
        }
        Value::Default => {
            if options.empty_value != EmptyValue::Default {
                return Err(WriteError::DefaultNotExpressible(p.name.to_string()));
            }
            out.push_str("></");
        }
        Value::Text(t) if t.is_empty() => match options.empty_value {
            EmptyValue::EmptyString => out.push_str("></"),
            EmptyValue::Default => out.push_str(">\"\"</"),
        },
        Value::Text(t) => {
            out.push('>');
            if t == "\"\"" {
                // A literal two-quote value would read back as the empty string; escape one quote to keep it.
                out.push_str("&quot;\"");
            } else {
                escape_text(t, out);
            }
            out.push_str("</");
        }
    }
    out.push_str(&p.name);
    out.push_str(">\n");
    Ok(())
}
