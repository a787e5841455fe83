//! Firmware and hardware version numbers, compared part by part.
//!
//! Cisco "Provisioning Formats", *Version Numbers*: `sipyyyy.11-0-1MPP-376` (11.3(1)SR1 and earlier: major, minor,
//! micro, build) and `sipyyyy.11-3-2MPP0001-609` (11.3(2) and later); the 3PCC form `sip78xx.10-3-1-7-3PCC` of the
//! 7800/8800 provisioning guide; SPA-era `1.0.31(b)`. "The comparing string must use the same format. Otherwise, a
//! format parsing error results. [...] the major version, minor version, and micro version are compared in sequence,
//! and the leftmost digits take precedence over the latter ones. When version numbers are identical, the build number
//! is compared."
//!
//! A version is read as its model prefix (`sip88xx.`, ignored), then components separated by `-` or `.`, each a
//! sequence of numbers and words (`2MPP0001` is 2, "MPP", 1). Two versions compare when they have the same shape
//! (same components, numbers and words in the same places); numbers compare as numbers, words without regard to case.

use std::cmp::Ordering;

/// One part of a component: a number or a word.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Number(u64),
    Word(String),
}

/// A parsed version number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The text as given.
    pub text: String,
    components: Vec<Vec<Token>>,
}

/// Why text is not a version, or why two versions cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The text is not a version number.
    #[error("{0:?} is not a version number (expected e.g. sip88xx.11-3-2MPP0001-609 or 11-0-1MPP-312)")]
    Malformed(String),
    /// The two versions have different formats.
    #[error("versions {0:?} and {1:?} have different formats and cannot be compared")]
    DifferentFormats(String, String),
}

fn tokens(component: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let bytes = component.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let digit = bytes[i].is_ascii_digit();
        let run = bytes[i..].iter().take_while(|b| b.is_ascii_digit() == digit).count();
        let part = &component[i..i + run];
        if digit {
            out.push(Token::Number(part.parse().ok()?));
        } else {
            if !part.bytes().all(|b| b.is_ascii_alphabetic() || b == b'(' || b == b')' || b == b'_') {
                return None;
            }
            out.push(Token::Word(part.to_ascii_lowercase()));
        }
        i += run;
    }
    (!out.is_empty()).then_some(out)
}

impl Version {
    /// Parses a version number; the model prefix before the first `.` (`sip88xx.`) is ignored when it has letters.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let malformed = || VersionError::Malformed(text.to_string());
        let body = match text.split_once('.') {
            Some((prefix, rest)) if prefix.bytes().any(|b| b.is_ascii_alphabetic()) => rest,
            _ => text,
        };
        if !body.starts_with(|c: char| c.is_ascii_digit()) || !body.contains(['-', '.']) {
            return Err(malformed());
        }
        let components = body.split(['-', '.']).map(tokens).collect::<Option<Vec<_>>>().ok_or_else(malformed)?;
        Ok(Version { text: text.to_string(), components })
    }

    fn shape(&self) -> Vec<Vec<bool>> {
        self.components.iter().map(|c| c.iter().map(|t| matches!(t, Token::Number(_))).collect()).collect()
    }

    /// Compares part by part, leftmost first; an error if the formats differ.
    pub fn compare(&self, other: &Version) -> Result<Ordering, VersionError> {
        if self.shape() != other.shape() {
            return Err(VersionError::DifferentFormats(self.text.clone(), other.text.clone()));
        }
        for (a, b) in self.components.iter().flatten().zip(other.components.iter().flatten()) {
            let o = match (a, b) {
                (Token::Number(x), Token::Number(y)) => x.cmp(y),
                (Token::Word(x), Token::Word(y)) => x.cmp(y),
                _ => unreachable!("shapes are equal"),
            };
            if o != Ordering::Equal {
                return Ok(o);
            }
        }
        Ok(Ordering::Equal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        Version::parse(a).unwrap().compare(&Version::parse(b).unwrap()).unwrap()
    }

    /// 003 *Version Numbers*, "Examples of Valid Version Number": all six parse.
    #[test]
    fn version_numbers_valid_examples() {
        for v in [
            "sip68xx.11-0-1MPP-312",
            "sip68xx.11-3-2MPP0001-609",
            "sip78xx.11-0-1MPP-312",
            "sip78xx.11-3-2MPP0001-609",
            "sip88xx.11-0-1MPP-312",
            "sip88xx.11-3-2MPP0001-609",
        ] {
            Version::parse(v).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// 003 *Version Numbers*, "Comparison".
    #[test]
    fn version_numbers_comparison() {
        assert_eq!(cmp("sipyyyy.11-3-1MPP-110", "sipyyyy.11-2-3MPP-256"), Ordering::Greater);
        assert_eq!(cmp("sipyyyy.11-3-2MPP0002-256", "sipyyyy.11-3-2MPP0001-609"), Ordering::Greater);
    }

    /// "The comparing string must use the same format. Otherwise, a format parsing error results."
    #[test]
    fn different_formats_are_an_error() {
        let a = Version::parse("sip88xx.11-0-1MPP-312").unwrap();
        let b = Version::parse("sip88xx.11-3-2MPP0001-609").unwrap();
        assert!(matches!(a.compare(&b), Err(VersionError::DifferentFormats(..))));
    }

    #[test]
    fn other_forms() {
        assert_eq!(cmp("sip78xx.10-3-1-7-3PCC", "sip78xx.10-3-1-6-3PCC"), Ordering::Greater);
        assert_eq!(cmp("1.0.31(b)", "1.0.31(b)"), Ordering::Equal);
        assert_eq!(cmp("2.0.1", "2.0.10"), Ordering::Less, "numbers compare as numbers");
        assert_eq!(cmp("11-0-1MPP-312", "sip88xx.11-0-1MPP-312"), Ordering::Equal, "the model prefix is ignored");
        assert_eq!(cmp("sip88xx.11-0-1mpp-312", "sip88xx.11-0-1MPP-312"), Ordering::Equal);
        for bad in ["", "abc", "sip88xx.", "11", "-1-2", "1.x!"] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
    }
}
