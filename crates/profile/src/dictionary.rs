//! The parameters Provisor knows: names, data types, factory defaults and default user access.
//!
//! Built from the parameters named in Cisco "Provisioning Formats" and the sample profile in the appendix of the
//! 7800/8800 MPP provisioning guide (`dictionary.tsv` beside this file, with the source of every row). No public
//! machine-readable dictionary exists (`specs.md` §6.5); a phone's own `cfg.xml` is the authority for its model.
//! Names are case-sensitive, as on the phone.

use foldhash::HashMap;
use std::sync::LazyLock;

use crate::UserAccess;
use crate::data_type::DataType;

/// One documented parameter (or family of indexed parameters such as `Dial_Plan_[1-16]_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The name, with `[a-b]` where an index goes.
    pub name: String,
    /// The data type.
    pub data_type: DataType,
    /// The factory default value.
    pub default: String,
    /// The factory default user access.
    pub ua: UserAccess,
    /// Where the parameter is documented.
    pub source: String,
}

#[derive(Debug)]
enum Part {
    Literal(String),
    Index(u32, u32),
}

struct Template {
    parts: Vec<Part>,
    definition: usize,
}

impl Template {
    fn compile(name: &str, definition: usize) -> Option<Template> {
        let mut parts = Vec::new();
        let mut rest = name;
        while let Some(open) = rest.find('[') {
            let close = rest[open..].find(']')? + open;
            let (a, b) = rest[open + 1..close].split_once('-')?;
            parts.push(Part::Literal(rest[..open].to_string()));
            parts.push(Part::Index(a.parse().ok()?, b.parse().ok()?));
            rest = &rest[close + 1..];
        }
        parts.push(Part::Literal(rest.to_string()));
        Some(Template { parts, definition })
    }

    fn matches(&self, mut name: &str) -> bool {
        for part in &self.parts {
            match part {
                Part::Literal(l) => match name.strip_prefix(l.as_str()) {
                    Some(r) => name = r,
                    None => return false,
                },
                Part::Index(lo, hi) => {
                    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
                    if digits == 0 || digits > 3 || name.starts_with('0') {
                        return false;
                    }
                    match name[..digits].parse::<u32>() {
                        Ok(n) if (*lo..=*hi).contains(&n) => name = &name[digits..],
                        _ => return false,
                    }
                }
            }
        }
        name.is_empty()
    }

    /// The first concrete name of the family, for suggestions.
    fn example(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(l) => l.clone(),
                Part::Index(lo, _) => lo.to_string(),
            })
            .collect()
    }
}

struct Dictionary {
    definitions: Vec<Definition>,
    exact: HashMap<String, usize>,
    templates: Vec<Template>,
    /// Every name the phone knows, indexed families spelled out member by member (about a thousand names), with
    /// its definition: a lookup is one hash probe and one comparison.
    names: hashbrown::HashMap<Box<str>, usize, foldhash::fast::RandomState>,
}

/// The most names one family may spell out (a bigger range in the table is a build defect, caught by a unit test).
const FAMILY_ROOM: usize = 4096;

impl Template {
    /// Every member of the family, in order: each index range counted through, the first range slowest.
    fn members(&self) -> Vec<String> {
        let mut members = vec![String::new()];
        for part in &self.parts {
            members = match part {
                Part::Literal(l) => members.into_iter().map(|m| m + l).collect(),
                Part::Index(lo, hi) => members
                    .iter()
                    .flat_map(|m| (*lo..=*hi).map(move |n| format!("{m}{n}")))
                    .take(FAMILY_ROOM + 1)
                    .collect(),
            };
        }
        members
    }
}

const SOURCE: &str = include_str!("dictionary.tsv");

static DICTIONARY: LazyLock<Dictionary> = LazyLock::new(|| {
    let mut definitions = Vec::new();
    let mut exact = HashMap::default();
    let mut templates = Vec::new();
    for (i, line) in SOURCE.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        // The table ships inside the binary and a unit test parses every row, so a bad row is a build defect.
        let definition = parse_row(line).unwrap_or_else(|e| panic!("dictionary.tsv line {}: {e}", i + 1));
        let index = definitions.len();
        if definition.name.contains('[') {
            let template = Template::compile(&definition.name, index)
                .unwrap_or_else(|| panic!("dictionary.tsv line {}: bad index range", i + 1));
            templates.push(template);
        } else {
            exact.insert(definition.name.clone(), index);
        }
        definitions.push(definition);
    }
    // Exact names first, then each family in the table's order; the first to claim a name keeps it. A member that
    // its own template would not accept (digits of a literal running into an index) is left out, so the table
    // holds exactly the names that `Template::matches` accepts.
    let mut names: hashbrown::HashMap<Box<str>, usize, foldhash::fast::RandomState> =
        exact.iter().map(|(name, &i)| (name.as_str().into(), i)).collect();
    for t in &templates {
        let members = t.members();
        assert!(members.len() <= FAMILY_ROOM, "dictionary.tsv: {} has more than {FAMILY_ROOM} members", t.example());
        for member in members.into_iter().filter(|m| t.matches(m)) {
            names.entry(member.into_boxed_str()).or_insert(t.definition);
        }
    }
    Dictionary { definitions, exact, templates, names }
});

fn parse_row(line: &str) -> Result<Definition, String> {
    let cols: Vec<&str> = line.split('\t').collect();
    let [name, ty, default, ua, source] = cols[..] else {
        return Err(format!("expected 5 tab-separated columns, found {}", cols.len()));
    };
    Ok(Definition {
        name: name.to_string(),
        data_type: ty.parse()?,
        default: default.to_string(),
        ua: UserAccess::from_attribute(ua).ok_or_else(|| format!("bad ua {ua:?}"))?,
        source: source.to_string(),
    })
}

/// The definition of parameter `name` (exact, case-sensitive), if documented.
pub fn lookup(name: &str) -> Option<&'static Definition> {
    let d = &*DICTIONARY;
    d.names.get(&crate::name::NameKey(name)).map(|&i| &d.definitions[i])
}

/// Every definition, in the dictionary's order.
pub fn definitions() -> &'static [Definition] {
    &DICTIONARY.definitions
}

/// The element name for a web-UI field label, by the guide's rule: "substitute an underscore for every space or
/// the special characters [, ], (, ), or /" (so `Dial Plan[1]` becomes `Dial_Plan_1_`).
pub fn element_name(label: &str) -> String {
    label.trim().chars().map(|c| if matches!(c, ' ' | '[' | ']' | '(' | ')' | '/') { '_' } else { c }).collect()
}

/// Up to three documented names close to `name`, closest first: for "did you mean" hints.
pub fn suggestions(name: &str) -> Vec<String> {
    let d = &*DICTIONARY;
    let folded = name.to_ascii_lowercase();
    let mut scored: Vec<(usize, String)> = Vec::new();
    let limit = (name.len() / 4).clamp(1, 4);
    let mut consider = |candidate: String| {
        let c = candidate.to_ascii_lowercase();
        let distance = strsim::levenshtein(&folded, &c);
        if distance <= limit {
            scored.push((distance, candidate));
        } else if folded.len() >= 4
            && (c.ends_with(&format!("_{folded}"))
                || c.starts_with(&format!("{folded}_"))
                || c.contains(&format!("_{folded}_")))
        {
            // A shortened name (`NTP_Server` for `Primary_NTP_Server`): after every close spelling, shortest first.
            scored.push((limit + c.len() - folded.len(), candidate));
        }
    };
    for (k, _) in d.exact.iter() {
        consider(k.clone());
    }
    // For indexed families, compare against the family member with the same index shape as the name.
    for t in &d.templates {
        let index: String = name.chars().filter(char::is_ascii_digit).collect();
        let candidate = if index.is_empty() { t.example() } else { instantiate(t, name) };
        if candidate != name {
            consider(candidate);
        }
    }
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

/// The family member of `t` that uses the numbers found in `name`, in order (missing ones take the lowest index).
fn instantiate(t: &Template, name: &str) -> String {
    let mut numbers = name.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty());
    t.parts
        .iter()
        .map(|p| match p {
            Part::Literal(l) => l.clone(),
            Part::Index(lo, _) => numbers.next().map(str::to_string).unwrap_or_else(|| lo.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_parses_and_every_default_fits_its_type() {
        assert!(definitions().len() > 200);
        for d in definitions() {
            if let Some(m) = d.data_type.check(&d.default) {
                panic!("{}: default {:?} {}", d.name, d.default, m.message);
            }
        }
    }

    #[test]
    fn no_name_is_defined_twice() {
        let mut seen = std::collections::HashSet::new();
        for d in definitions() {
            assert!(seen.insert(&d.name), "{} twice", d.name);
        }
    }

    #[test]
    fn provisioning_parameters_of_the_guide_are_known() {
        for name in [
            "Provision_Enable",
            "Upgrade_Enable",
            "Resync_On_Reset",
            "Resync_After_Upgrade_Attempt",
            "Resync_From_SIP",
            "Resync_Random_Delay",
            "Resync_Periodic",
            "Resync_Error_Retry_Delay",
            "Upgrade_Error_Retry_Delay",
            "Resync_Trigger_1",
            "Resync_Trigger_2",
            "Resync_At",
            "Resync_At_Random_Delay",
            "Profile_Rule",
            "Profile_Rule_B",
            "Profile_Rule_C",
            "Profile_Rule_D",
            "Upgrade_Rule",
            "Downgrade_Rev_Limit",
            "Resync_Fails_On_FNF",
            "Log_Request_Msg",
            "Log_Success_Msg",
            "Log_Failure_Msg",
            "IKM_HTTP_Encrypt_Content",
            "GPP_A",
            "GPP_P",
            "GPP_SA",
            "GPP_SD",
        ] {
            assert!(lookup(name).is_some(), "{name}");
        }
    }

    #[test]
    fn indexed_names() {
        assert_eq!(lookup("Dial_Plan_1_").unwrap().name, "Dial_Plan_[1-16]_");
        assert_eq!(lookup("Dial_Plan_16_").unwrap().name, "Dial_Plan_[1-16]_");
        assert!(lookup("Dial_Plan_17_").is_none());
        assert!(lookup("Dial_Plan_01_").is_none());
        assert!(lookup("Dial_Plan_1").is_none());
        assert_eq!(lookup("Speed_Dial_2_2_").unwrap().name, "Speed_Dial_[2-9]_[1-16]_");
        assert_eq!(lookup("Speed_Dial_2_Name").unwrap().name, "Speed_Dial_[2-9]_Name");
        assert_eq!(element_name("Dial Plan[1]"), "Dial_Plan_1_");
        assert_eq!(element_name("Default Ring (1)"), "Default_Ring__1_");
        assert_eq!(element_name("Resync On Reset"), "Resync_On_Reset");
        assert!(lookup("resync_on_reset").is_none(), "names are case-sensitive");
    }

    #[test]
    fn names_with_digits_in_their_text() {
        assert_eq!(lookup("G711u_Enable_3_").unwrap().name, "G711u_Enable_[1-16]_");
        assert_eq!(lookup("G729a_Enable_3_").unwrap().name, "G729a_Enable_[1-16]_");
    }

    /// The table of spelled-out names finds exactly what trying every template in order finds, for every member of
    /// every family, the numbers just outside each range, leading zeros and four-digit indexes.
    #[test]
    fn name_table_agrees_with_trying_every_template() {
        let d = &*DICTIONARY;
        let brute = |name: &str| {
            d.exact
                .get(name)
                .map(|&i| &d.definitions[i])
                .or_else(|| d.templates.iter().find(|t| t.matches(name)).map(|t| &d.definitions[t.definition]))
        };
        let mut checked = 0;
        for t in &d.templates {
            let Some((lo, hi)) = t.parts.iter().find_map(|p| match p {
                Part::Index(lo, hi) => Some((*lo, *hi)),
                Part::Literal(_) => None,
            }) else {
                continue;
            };
            let numbers = [lo.saturating_sub(1), lo, (lo + hi) / 2, hi, hi + 1, 1000];
            for n in numbers.iter().map(|n| n.to_string()).chain(["0".into(), format!("0{lo}")]) {
                let name: String = t
                    .parts
                    .iter()
                    .map(|p| match p {
                        Part::Literal(l) => l.clone(),
                        Part::Index(..) => n.clone(),
                    })
                    .collect();
                assert_eq!(lookup(&name).map(|d| &d.name), brute(&name).map(|d| &d.name), "{name}");
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} names checked");
        for t in &d.templates {
            for member in t.members() {
                assert_eq!(lookup(&member).map(|d| &d.name), brute(&member).map(|d| &d.name), "{member}");
            }
        }
        for (name, &i) in &d.exact {
            assert_eq!(lookup(name).map(|d| &d.name), Some(&d.definitions[i].name));
        }
        assert_eq!(lookup("No_Such_Parameter"), None);
    }

    #[test]
    fn did_you_mean() {
        assert_eq!(suggestions("Resync_Periodik")[0], "Resync_Periodic");
        assert_eq!(suggestions("resync_on_reset")[0], "Resync_On_Reset");
        assert_eq!(suggestions("Dial_Plan_3")[0], "Dial_Plan_3_");
        assert!(suggestions("Completely_Different_Thing_Here").is_empty());
        let shortened = suggestions("NTP_Server");
        assert!(shortened.iter().any(|n| n == "Primary_NTP_Server"), "{shortened:?}");
    }
}
