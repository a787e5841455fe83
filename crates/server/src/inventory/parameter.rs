//! Parameter names and values as the inventory takes them: element names (a web-UI label such as
//! `Resync Periodic` becomes `Resync_Periodic`), ASCII values (the firmware supports no other), and values the parameter dictionary's data
//! type accepts (Cisco "Provisioning Formats", *Data Types*).

use provisor_profile::data_type::Severity;
use provisor_profile::dictionary;

/// Why a parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParameterError(pub String);

/// Parses `NAME=VALUE` (the name may be a web-UI label) and checks it; returns the element name and the value.
/// A name the parameter dictionary does not know is refused, with the closest known names, unless `allow_unknown`
/// (a phone ignores unknown elements, so a typo such as `NTP_Server` for `Primary_NTP_Server` would silently do
/// nothing).
pub fn parameter(pair: &str, allow_unknown: bool) -> Result<(String, String), ParameterError> {
    let (name, value) = pair.split_once('=').ok_or_else(|| ParameterError(format!("{pair:?}: expected NAME=VALUE")))?;
    let name = dictionary::element_name(name);
    check_parameter(&name, value)?;
    if !allow_unknown {
        check_known(&name)?;
    }
    Ok((name, value.to_string()))
}

/// Refuses a name the parameter dictionary does not know, naming the closest known ones.
pub fn check_known(name: &str) -> Result<(), ParameterError> {
    if dictionary::lookup(name).is_some() {
        return Ok(());
    }
    let hint = match dictionary::suggestions(name).as_slice() {
        [] => String::new(),
        [one] => format!("; did you mean {one}?"),
        many => format!("; did you mean one of {}?", many.join(", ")),
    };
    Err(ParameterError(format!(
        "{name}: not a parameter the phones know{hint} (--allow-unknown stores it anyway; phones ignore unknown names)"
    )))
}

/// Checks an element name and its value.
pub fn check_parameter(name: &str, value: &str) -> Result<(), ParameterError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return Err(ParameterError(format!("{name:?} is not a parameter name")));
    }
    if let Some(c) = value.chars().find(|c| !c.is_ascii()) {
        return Err(ParameterError(format!(
            "{name}: non-ASCII character {c:?} (the phone firmware supports ASCII only)"
        )));
    }
    if let Some(d) = dictionary::lookup(name)
        && let Some(m) = d.data_type.check(value)
        && m.severity == Severity::Error
    {
        return Err(ParameterError(format!("{name}: value {value:?} {} (type {})", m.message, d.data_type)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_element_names_and_values_are_checked() {
        assert_eq!(parameter("Resync Periodic=3600", false).unwrap(), ("Resync_Periodic".into(), "3600".into()));
        assert!(parameter("no equals sign", false).is_err());
        assert!(parameter("Resync_Periodic=soon", false).unwrap_err().0.starts_with("Resync_Periodic"));
        assert!(parameter("Station_Name=café", false).unwrap_err().0.contains("ASCII"));
        let typo = parameter("Resync_Periodik=60", false).unwrap_err().0;
        assert!(typo.contains("did you mean Resync_Periodic"), "{typo}");
        assert_eq!(parameter("My_Own=1", true).unwrap(), ("My_Own".into(), "1".into()));
        assert!(check_parameter("bad/name", "1").is_err());
        assert!(check_parameter("", "1").is_err());
    }
}
