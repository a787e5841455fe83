//! Checking a profile against the parameter dictionary before phones see it.
//!
//! What is reported, and how hard (`specs.md` §6.5): a profile that does not parse, a value of the wrong data type
//! and a non-ASCII value are errors; an unknown name (the phone ignores it), a repeated name (the last one wins) and
//! `$SA`..`$SD` outside a rule's `--key/--uid/--pwd` (left unexpanded there) are warnings.

use std::collections::HashMap;

use crate::data_type::{DataType, Severity};
use crate::{ParseOptions, Position, Profile, Value, dictionary};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// How bad it is.
    pub severity: Severity,
    /// Where.
    pub position: Position,
    /// The parameter concerned, if any.
    pub parameter: Option<String>,
    /// A stable short code (`parse`, `unknown`, `type`, `duplicate`, `non-ascii`, `secret-macro`).
    pub code: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {level}[{}]: {}", self.position, self.code, self.message)
    }
}

/// Lints `bytes` as a flat-profile. The result is sorted by position; an empty list means a clean profile.
pub fn lint(bytes: &[u8], options: &ParseOptions) -> Vec<Diagnostic> {
    let parse_options = ParseOptions { ascii_only: false, ..*options };
    let profile = match Profile::parse(bytes, &parse_options) {
        Ok(p) => p,
        Err(e) => {
            return vec![Diagnostic {
                severity: Severity::Error,
                position: e.position,
                parameter: None,
                code: "parse",
                message: e.kind.to_string(),
            }];
        }
    };
    lint_profile(&profile)
}

/// Lints an already parsed profile.
pub fn lint_profile(profile: &Profile) -> Vec<Diagnostic> {
    check(profile, false)
}

/// The first error (not warning) in an already parsed profile: what makes a server refuse to serve it. Cheaper than
/// [`lint_profile`]: it skips the warnings (and their "did you mean" suggestions).
pub fn first_error(profile: &Profile) -> Option<Diagnostic> {
    check(profile, true).into_iter().next()
}

fn check(profile: &Profile, errors_only: bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut last: HashMap<&str, Position> = HashMap::new();
    for p in &profile.parameters {
        last.insert(&p.name, p.position);
    }
    for p in &profile.parameters {
        let mut report = |severity, code, message: String| {
            out.push(Diagnostic { severity, position: p.position, parameter: Some(p.name.to_string()), code, message })
        };
        let definition = dictionary::lookup(&p.name);
        match definition {
            None if errors_only => {}
            None => {
                let hint = match dictionary::suggestions(&p.name).as_slice() {
                    [] => String::new(),
                    [one] => format!("; did you mean {one}?"),
                    many => format!("; did you mean one of {}?", many.join(", ")),
                };
                report(
                    Severity::Warning,
                    "unknown",
                    format!("unknown parameter <{}> (a phone ignores parameters it does not know){hint}", p.name),
                );
            }
            Some(d) => {
                if let Value::Text(v) = &p.value
                    && let Some(m) = d.data_type.check(v)
                    && (!errors_only || m.severity == Severity::Error)
                {
                    report(
                        m.severity,
                        "type",
                        format!("<{}> value {v:?} {} (type {})", p.name, m.message, d.data_type),
                    );
                }
            }
        }
        if !errors_only
            && let Some(&at) = last.get(p.name.as_str())
            && at != p.position
        {
            report(
                Severity::Warning,
                "duplicate",
                format!("<{}> is given again at {at}; the last occurrence wins and this one has no effect", p.name),
            );
        }
        if let Value::Text(v) = &p.value {
            if let Some(c) = v.chars().find(|c| !c.is_ascii()) {
                report(
                    Severity::Error,
                    "non-ascii",
                    format!("<{}> contains non-ASCII character {c:?}; the phone firmware supports ASCII only", p.name),
                );
            }
            let is_rule = matches!(definition.map(|d| &d.data_type), Some(DataType::Rule));
            if !errors_only
                && !is_rule
                && ["$SA", "$SB", "$SC", "$SD", "$(SA", "$(SB", "$(SC", "$(SD"].iter().any(|m| v.contains(m))
            {
                report(
                    Severity::Warning,
                    "secret-macro",
                    format!(
                        "<{}> uses $SA..$SD, which the phone expands only inside --key, --uid and --pwd of a rule",
                        p.name
                    ),
                );
            }
        }
    }
    out.sort_by_key(|d| d.position);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(xml: &str) -> Vec<(&'static str, Severity)> {
        lint(xml.as_bytes(), &ParseOptions::default()).into_iter().map(|d| (d.code, d.severity)).collect()
    }

    #[test]
    fn clean_profile_has_no_findings() {
        let xml = "<flat-profile>\n<Resync_On_Reset> Yes </Resync_On_Reset>\n<Resync_Periodic> 7200 </Resync_Periodic>\n\
                   <Profile_Rule> tftp://prov.telco.com:6900/cisco/config/CP_xxxx_MPP.cfg</Profile_Rule>\n</flat-profile>";
        assert_eq!(codes(xml), vec![]);
    }

    #[test]
    fn findings_with_positions() {
        let xml = "<flat-profile>\n<Resync_Periodik>1</Resync_Periodik>\n<Resync_On_Reset>Maybe</Resync_On_Reset>\n\
                   <GPP_A>1</GPP_A>\n<GPP_A>2</GPP_A>\n<GPP_B>caf\u{e9}</GPP_B>\n<GPP_C>$SA</GPP_C>\n</flat-profile>";
        let d = lint(xml.as_bytes(), &ParseOptions::default());
        let summary: Vec<String> = d.iter().map(|d| format!("{} {}", d.position, d.code)).collect();
        assert_eq!(summary, ["2:1 unknown", "3:1 type", "4:1 duplicate", "6:1 non-ascii", "7:1 secret-macro"]);
        assert!(d[0].message.contains("did you mean Resync_Periodic?"), "{}", d[0].message);
        assert!(d[2].message.contains("5:1"), "{}", d[2].message);
    }

    #[test]
    fn parse_errors_are_one_finding() {
        let d = lint(b"<flat-profile>\n<GPP_A>1</GPP_B>\n</flat-profile>", &ParseOptions::default());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, "parse");
        assert_eq!(d[0].position.line, 2);
    }
}
