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
    /// Exact names and templates by the [`shape`] of the names they match, exact names first: a lookup is one
    /// hash probe and, almost always, one name to compare or one template to check.
    by_shape: HashMap<Box<[u8]>, Vec<Candidate>>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Candidate {
    /// A definition with no index, by its number.
    Exact(usize),
    /// A template, by its number.
    Template(usize),
}

/// Room for a shape; every template's shape fits (checked when the table loads), so a longer one matches none.
const SHAPE_ROOM: usize = 96;

/// A name with every run of digits replaced by one `#`: `Dial_Plan_12_` → `Dial_Plan_#_`. A template's shape is that
/// of its first member (`Dial_Plan_[1-16]_` → `Dial_Plan_1_` → `Dial_Plan_#_`), so digits in a template's literal
/// text that touch an index merge into the same run in both. Equal shapes are necessary, not sufficient: the
/// template still checks the index ranges. `None` when the shape does not fit in `buf`.
fn shape<'b>(name: &str, buf: &'b mut [u8; SHAPE_ROOM]) -> Option<&'b [u8]> {
    let mut n = 0;
    let mut in_digits = false;
    for b in name.bytes() {
        let digit = b.is_ascii_digit();
        if !(digit && in_digits) {
            *buf.get_mut(n)? = if digit { b'#' } else { b };
            n += 1;
        }
        in_digits = digit;
    }
    Some(&buf[..n])
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
    let mut by_shape: HashMap<Box<[u8]>, Vec<Candidate>> = HashMap::default();
    let named = exact.iter().map(|(name, &i)| (name.clone(), Candidate::Exact(i)));
    for (name, candidate) in
        named.chain(templates.iter().enumerate().map(|(i, t)| (t.example(), Candidate::Template(i))))
    {
        let key = shape(&name, &mut [0u8; SHAPE_ROOM])
            .unwrap_or_else(|| panic!("dictionary.tsv: {name} is longer than {SHAPE_ROOM} bytes"))
            .into();
        by_shape.entry(key).or_default().push(candidate);
    }
    // Exact names before templates; templates in the table's order.
    by_shape.values_mut().for_each(|c| c.sort_unstable());
    Dictionary { definitions, exact, templates, by_shape }
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
    let candidates = d.by_shape.get(shape(name, &mut [0u8; SHAPE_ROOM])?)?;
    candidates.iter().find_map(|c| match *c {
        Candidate::Exact(i) => (d.definitions[i].name == name).then(|| &d.definitions[i]),
        Candidate::Template(t) => d.templates[t].matches(name).then(|| &d.definitions[d.templates[t].definition]),
    })
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
    fn shapes() {
        let room = &mut [0u8; SHAPE_ROOM];
        assert_eq!(shape("Dial_Plan_12_", room).unwrap(), b"Dial_Plan_#_");
        assert_eq!(shape("G711u_Enable_3_", room).unwrap(), b"G#u_Enable_#_");
        assert_eq!(shape(&"x".repeat(SHAPE_ROOM + 1), room), None);
        assert_eq!(lookup("G711u_Enable_3_").unwrap().name, "G711u_Enable_[1-16]_");
        assert_eq!(lookup("G729a_Enable_3_").unwrap().name, "G729a_Enable_[1-16]_");
    }

    /// The shape index finds exactly what trying every template in order finds, for every member of every family,
    /// the numbers just outside each range, leading zeros and four-digit indexes.
    #[test]
    fn shape_lookup_agrees_with_trying_every_template() {
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
