//! Alias maps for `--alias x`: renaming the elements of a foreign XML document to phone parameters.
//!
//! SPA provisioning guide (`specs.md` §6.1 item 8): the general-purpose parameter holds `;`-separated pairs
//! `/Some/Path/elem = /flat-profile/Param_Name ;`. "The left side matches only as much of the element path as it
//! specifies": a path suffix, so `/auth-secret = /flat-profile/Password_1_ ;` matches
//! `<CPE><SIP-Credentials><auth-secret>`. At most 30 aliases.

use crate::SyntaxError;

/// The most aliases a map may hold.
pub const MAX_ALIASES: usize = 30;

/// One alias: an element path suffix and the parameter it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// Path elements to match at the end of an element's path, outermost first.
    pub suffix: Vec<String>,
    /// The parameter name (from `/flat-profile/Name`).
    pub parameter: String,
}

/// A parsed alias map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliasMap {
    /// The aliases, in order; the first that matches wins.
    pub aliases: Vec<Alias>,
}

fn path(text: &str) -> Option<Vec<String>> {
    let t = text.trim();
    let rest = t.strip_prefix('/')?;
    let parts: Vec<String> = rest.split('/').map(|p| p.trim().to_string()).collect();
    (!parts.is_empty() && parts.iter().all(|p| !p.is_empty() && !p.contains(char::is_whitespace))).then_some(parts)
}

impl AliasMap {
    /// Parses a map such as `/CPE/SIP-Credentials/name = /flat-profile/Display_Name_1_ ;`.
    pub fn parse(text: &str) -> Result<AliasMap, SyntaxError> {
        let mut aliases = Vec::new();
        let mut offset = 0;
        for entry in text.split(';') {
            let col = text[..offset].chars().count() + 1 + (entry.len() - entry.trim_start().len());
            offset += entry.len() + 1;
            if entry.trim().is_empty() {
                continue;
            }
            let (left, right) = entry
                .split_once('=')
                .ok_or_else(|| SyntaxError::new(col, "expected /element/path = /flat-profile/Parameter"))?;
            let suffix = path(left).ok_or_else(|| {
                SyntaxError::new(col, format!("{:?} is not an element path such as /a/b", left.trim()))
            })?;
            let target = path(right).unwrap_or_default();
            let parameter = match target.as_slice() {
                [root, name] if root == "flat-profile" => name.clone(),
                _ => {
                    return Err(SyntaxError::new(
                        col + left.len() + 1,
                        format!("{:?} is not /flat-profile/Parameter_Name", right.trim()),
                    ));
                }
            };
            aliases.push(Alias { suffix, parameter });
            if aliases.len() > MAX_ALIASES {
                return Err(SyntaxError::new(col, format!("more than {MAX_ALIASES} aliases")));
            }
        }
        Ok(AliasMap { aliases })
    }

    /// The parameter for an element at `element_path` (outermost first), if an alias matches its end.
    pub fn resolve<S: AsRef<str>>(&self, element_path: &[S]) -> Option<&str> {
        self.aliases
            .iter()
            .find(|a| {
                a.suffix.len() <= element_path.len()
                    && a.suffix.iter().rev().zip(element_path.iter().rev()).all(|(x, y)| x == y.as_ref())
            })
            .map(|a| a.parameter.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPA guide examples (`specs.md` §6.1 item 8).
    #[test]
    fn alias_examples() {
        let m = AliasMap::parse(
            "/CPE/SIP-Credentials/name = /flat-profile/Display_Name_1_ ;\n/auth-secret = /flat-profile/Password_1_ ;",
        )
        .unwrap();
        assert_eq!(m.resolve(&["CPE", "SIP-Credentials", "name"]), Some("Display_Name_1_"));
        assert_eq!(m.resolve(&["CPE", "SIP-Credentials", "auth-secret"]), Some("Password_1_"));
        assert_eq!(m.resolve(&["Other", "name"]), None, "the whole suffix must match");
        assert_eq!(m.resolve(&["name"]), None);
    }

    #[test]
    fn errors_and_limits() {
        assert_eq!(AliasMap::parse("a = /flat-profile/X").unwrap_err().column, 1);
        assert!(AliasMap::parse("/a = /other/X").unwrap_err().message.contains("/flat-profile/"));
        assert!(AliasMap::parse("/a /flat-profile/X").is_err());
        let many: String = (0..31).map(|i| format!("/e{i} = /flat-profile/P{i};")).collect();
        assert!(AliasMap::parse(&many).unwrap_err().message.contains("more than 30"));
        let thirty: String = (0..30).map(|i| format!("/e{i} = /flat-profile/P{i};")).collect();
        assert_eq!(AliasMap::parse(&thirty).unwrap().aliases.len(), 30);
        assert_eq!(AliasMap::parse("").unwrap().aliases.len(), 0);
    }
}
