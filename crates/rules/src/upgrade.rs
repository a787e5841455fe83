//! Whether an evaluated `Upgrade_Rule` leads to a firmware download.
//!
//! Cisco "Provisioning Formats", *Upgrade Rule*: "The Upgrade_Rule specifies a firmware load which, if different
//! from the current load, will be downloaded and applied unless limited by a conditional expression or
//! Upgrade_Enable is set to No. [...] the device does not reattempt to upgrade until the rule is modified or the
//! effective combination of scheme + server + port + filepath is changed. [...] If a valid firmware revision number is
//! configured in the Downgrade_Rev_Limit parameter, the device rejects upgrade attempts for firmware versions earlier
//! than the specified limit."

use std::cmp::Ordering;

use crate::url::Url;
use crate::version::Version;

/// What the phone does with an upgrade rule's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Download and apply this load.
    Upgrade {
        /// The URL to download.
        url: Url,
        /// The load name (file name without `.loads`).
        load: String,
    },
    /// Do nothing, for this reason.
    Skip(String),
}

/// The load name in a firmware URL: the last path element without `.loads` and query.
pub fn load_name(url: &Url) -> String {
    let path = url.path.split(['?', '#']).next().unwrap_or("");
    let file = path.rsplit('/').next().unwrap_or("");
    let stem = file.strip_suffix(".loads").unwrap_or(file);
    // "-BN" is the guides' placeholder for a build number (`sip78xx.11-0-1MPP-BN.loads`): a file named so literally
    // reports the version without it, as provisor serve's generated Upgrade_Rule conditions assume.
    stem.strip_suffix("-BN").unwrap_or(stem).to_string()
}

/// Decides on an upgrade. `url` is what the rule selected (`None`: no alternative or no URL); `current` the running
/// firmware (`$SWVER`); `last_completed` the URL of the last upgrade attempt that completed; `downgrade_limit` the
/// value of `Downgrade_Rev_Limit` (empty: no limit).
pub fn decide(
    enabled: bool,
    url: Option<&Url>,
    current: &str,
    last_completed: Option<&Url>,
    downgrade_limit: &str,
) -> Decision {
    if !enabled {
        return Decision::Skip("Upgrade_Enable is No".into());
    }
    let Some(url) = url else {
        return Decision::Skip("the rule selected no firmware URL".into());
    };
    let load = load_name(url);
    if load.eq_ignore_ascii_case(current) || current.ends_with(&format!(".{load}")) {
        return Decision::Skip(format!("{load} is already running"));
    }
    if last_completed == Some(url) {
        return Decision::Skip(format!("{url} was already attempted; the rule or URL must change"));
    }
    let limit = downgrade_limit.trim();
    if !limit.is_empty()
        && let Ok(limit_version) = Version::parse(limit)
    {
        match Version::parse(&load).and_then(|v| v.compare(&limit_version)) {
            Ok(Ordering::Less) => {
                return Decision::Skip(format!("{load} is older than Downgrade_Rev_Limit {limit}"));
            }
            Ok(_) => {}
            Err(e) => return Decision::Skip(format!("cannot check Downgrade_Rev_Limit: {e}")),
        }
    }
    Decision::Upgrade { url: url.clone(), load }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::parse;

    fn u(s: &str) -> Url {
        parse(s, None).unwrap()
    }

    /// 003 *Upgrade Rule*: a URL without a condition upgrades to that image.
    #[test]
    fn upgrade_rule_example() {
        let url = u("http://p.tel.com/firmware/sip88xx.11-3-1MPP-678.loads");
        assert_eq!(
            decide(true, Some(&url), "sip88xx.11-3-1MPP-600", None, ""),
            Decision::Upgrade { url: url.clone(), load: "sip88xx.11-3-1MPP-678".into() }
        );
        assert!(matches!(decide(true, Some(&url), "sip88xx.11-3-1MPP-678", None, ""), Decision::Skip(_)));
        assert!(matches!(decide(false, Some(&url), "x", None, ""), Decision::Skip(_)));
        assert!(matches!(decide(true, Some(&url), "x", Some(&url), ""), Decision::Skip(_)), "no reattempt");
    }

    /// 003 *Upgrade Rule*: Downgrade_Rev_Limit.
    #[test]
    fn downgrade_rev_limit() {
        let old = u("http://p.tel.com/firmware/sip88xx.11-3-1MPP-100.loads");
        let new = u("http://p.tel.com/firmware/sip88xx.11-3-1MPP-900.loads");
        let limit = "sip88xx.11-3-1MPP-500";
        assert!(
            matches!(decide(true, Some(&old), "sip88xx.11-3-1MPP-600", None, limit), Decision::Skip(r) if r.contains("older"))
        );
        assert!(matches!(decide(true, Some(&new), "sip88xx.11-3-1MPP-600", None, limit), Decision::Upgrade { .. }));
    }
}
