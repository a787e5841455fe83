//! The provisioning language of Cisco MPP phones, evaluated as a phone evaluates it.
//!
//! Cisco "Provisioning Formats": *Macro Expansion* ([`macros`]), *Conditional Expressions* and *Version Numbers*
//! ([`condition`], [`version`]), *URL Syntax* and *Optional Resync Arguments* ([`url`], [`rule`]), *Profile Rules* and
//! *Upgrade Rule* ([`rule`], [`upgrade`]), *Triggers* and *Configurable Schedules* ([`schedule`]). Everything here is
//! a pure function of its inputs (parameters, state, a random source, the time): no I/O, no clock.

#![warn(missing_docs)]

pub mod alias;
pub mod condition;
pub mod log;
pub mod macros;
pub mod rule;
pub mod schedule;
pub mod upgrade;
pub mod url;
pub mod version;

/// A problem in rule text, at a 1-based column of the text as written (before macro expansion).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct SyntaxError {
    /// 1-based column, in characters, in the text as written.
    pub column: usize,
    /// What was expected and what was found.
    pub message: String,
}

impl SyntaxError {
    pub(crate) fn new(column: usize, message: impl Into<String>) -> Self {
        SyntaxError { column: column.max(1), message: message.into() }
    }

    /// The error with a caret under the column, for terminals: `text\n   ^ message`.
    pub fn render(&self, text: &str) -> String {
        let pad: String = text.chars().take(self.column - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        format!("{text}\n{pad}^ {}", self.message)
    }
}
