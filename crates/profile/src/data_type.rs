//! The data types of provisioning parameters and a validator for each.
//!
//! Cisco "Provisioning Formats", *Data Types*. Where the guide gives a length ("up to 39 characters") the check
//! enforces it; where it gives a syntax (CadScript, FreqScript, ToneScript) the check parses it.

/// A parameter's data type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataType {
    /// `{a,b,c,...}`: a choice among the listed values.
    Choice(Vec<String>),
    /// "yes" or "no".
    Bool,
    /// Unsigned n-bit value, decimal or hex (`0x18`).
    Uns(u8),
    /// Signed n-bit value, decimal or hex; `-` before negative values, `+` optional.
    Sig(u8),
    /// A string of up to n characters.
    Str(u32),
    /// A floating-point value with up to n decimal places.
    Float(u8),
    /// A duration in seconds with up to n decimal places ("extra specified decimal places are ignored").
    Time(u8),
    /// A dotted IPv4 address.
    Ip,
    /// A TCP/UDP port, decimal or hex.
    Port,
    /// A host name or IPv4 address with an optional port, up to 63 characters.
    Fqdn,
    /// A user id as it appears in a URL, up to 63 characters.
    UserId,
    /// A phone number or SIP URL, up to 39 characters.
    Phone,
    /// A phone-number template: comma-separated patterns with `?` and `*` wildcards, up to 39 characters.
    PhTmpl,
    /// A template of SIP response codes such as `404, 5*` or `61?`, up to 39 characters.
    RscTmpl,
    /// A cadence script, up to 127 characters.
    CadScript,
    /// A frequency script, up to 127 characters.
    FreqScript,
    /// A tone script, up to 127 characters.
    ToneScript,
    /// A power level in dBm with one decimal place.
    PwrLevel,
    /// A star code such as `*69`, up to 7 characters.
    StarCode,
    /// A profile rule (`Profile_Rule*`): ProvisioningRuleSyntax, checked by the rule engine.
    Rule,
    /// `Upgrade_Rule`: no options, a server in every URL.
    UpgradeRule,
    /// `Report_Rule`: `[--delta|--status ...] URL` items.
    ReportRule,
    /// A conditional expression (`Resync_Trigger_*`).
    Condition,
    /// A dial plan (DialPlanScript).
    DialPlan,
    /// A delay schedule: `3600`, `3600+600`, or a comma list of those (*Configurable Schedules*).
    Schedule,
    /// A time of day as `hhmm` (24-hour), used by `Resync_At`.
    HhMm,
}

impl std::str::FromStr for DataType {
    type Err = String;

    /// Parses the names used in the dictionary: `Bool`, `Uns16`, `Str64`, `{a|b|c}`, `Time3`, ...
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            return Ok(DataType::Choice(inner.split('|').map(str::to_string).collect()));
        }
        let split = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
        let (word, n) = s.split_at(split);
        let n: Option<u32> = if n.is_empty() { None } else { n.parse().ok() };
        let bits = |n: Option<u32>| match n {
            Some(b @ (8 | 16 | 32 | 64)) => Ok(b as u8),
            _ => Err(format!("{s}: the bit width must be 8, 16, 32 or 64")),
        };
        Ok(match (word, n) {
            ("Bool", None) => DataType::Bool,
            ("Uns", n) => DataType::Uns(bits(n)?),
            ("Sig", n) => DataType::Sig(bits(n)?),
            ("Str", Some(n)) => DataType::Str(n),
            ("Float", Some(n)) => DataType::Float(n.min(9) as u8),
            ("Time", Some(n)) => DataType::Time(n.min(9) as u8),
            ("IP", None) => DataType::Ip,
            ("Port", None) => DataType::Port,
            ("FQDN", None) => DataType::Fqdn,
            ("UserID", None) => DataType::UserId,
            ("Phone", None) => DataType::Phone,
            ("PhTmpl", None) => DataType::PhTmpl,
            ("RscTmpl", None) => DataType::RscTmpl,
            ("CadScript", None) => DataType::CadScript,
            ("FreqScript", None) => DataType::FreqScript,
            ("ToneScript", None) => DataType::ToneScript,
            ("PwrLevel", None) => DataType::PwrLevel,
            ("StarCode", None) => DataType::StarCode,
            ("Rule", None) => DataType::Rule,
            ("UpgradeRule", None) => DataType::UpgradeRule,
            ("ReportRule", None) => DataType::ReportRule,
            ("Condition", None) => DataType::Condition,
            ("DialPlan", None) => DataType::DialPlan,
            ("Schedule", None) => DataType::Schedule,
            ("HHmm", None) => DataType::HhMm,
            _ => return Err(format!("unknown data type {s:?}")),
        })
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataType::Choice(c) => write!(f, "{{{}}}", c.join("|")),
            DataType::Bool => f.write_str("Bool"),
            DataType::Uns(n) => write!(f, "Uns{n}"),
            DataType::Sig(n) => write!(f, "Sig{n}"),
            DataType::Str(n) => write!(f, "Str{n}"),
            DataType::Float(n) => write!(f, "Float{n}"),
            DataType::Time(n) => write!(f, "Time{n}"),
            DataType::Ip => f.write_str("IP"),
            DataType::Port => f.write_str("Port"),
            DataType::Fqdn => f.write_str("FQDN"),
            DataType::UserId => f.write_str("UserID"),
            DataType::Phone => f.write_str("Phone"),
            DataType::PhTmpl => f.write_str("PhTmpl"),
            DataType::RscTmpl => f.write_str("RscTmpl"),
            DataType::CadScript => f.write_str("CadScript"),
            DataType::FreqScript => f.write_str("FreqScript"),
            DataType::ToneScript => f.write_str("ToneScript"),
            DataType::PwrLevel => f.write_str("PwrLevel"),
            DataType::StarCode => f.write_str("StarCode"),
            DataType::Rule | DataType::UpgradeRule | DataType::ReportRule => f.write_str("ProvisioningRuleSyntax"),
            DataType::Condition => f.write_str("Condition"),
            DataType::DialPlan => f.write_str("DialPlanScript"),
            DataType::Schedule => f.write_str("Schedule"),
            DataType::HhMm => f.write_str("hhmm"),
        }
    }
}

/// How bad a failed check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The phone would most likely accept the value, but it is unusual (e.g. `yes` instead of `Yes`).
    Warning,
    /// The value does not fit the documented type.
    Error,
}

/// A value that does not fit its data type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong, and what was expected.
    pub message: String,
}

fn error(message: impl Into<String>) -> Option<Mismatch> {
    Some(Mismatch { severity: Severity::Error, message: message.into() })
}

fn warning(message: impl Into<String>) -> Option<Mismatch> {
    Some(Mismatch { severity: Severity::Warning, message: message.into() })
}

/// Parses a decimal or `0x` hex unsigned integer.
fn parse_unsigned(s: &str) -> Option<u128> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() || hex.len() > 32 {
            return None;
        }
        u128::from_str_radix(hex, 16).ok()
    } else if !s.is_empty() && s.len() <= 38 && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// A decimal number with at most `places` decimals (`places = None`: any). Returns the number of decimals.
fn decimal_places(s: &str, signed: bool) -> Option<usize> {
    let s = if signed { s.strip_prefix(['-', '+']).unwrap_or(s) } else { s };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let ok = (!int.is_empty() || !frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(frac.len())
}

fn too_long(value: &str, max: usize) -> Option<Mismatch> {
    let n = value.chars().count();
    if n > max { error(format!("is {n} characters long; at most {max} are allowed")) } else { None }
}

fn valid_ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|v| v <= 255)
        })
}

fn valid_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn check_schedule(value: &str) -> Option<Mismatch> {
    for (i, element) in value.split(',').enumerate() {
        let element = element.trim();
        let (base, random) = match element.split_once('+') {
            Some((b, r)) => (b.trim(), Some(r.trim())),
            None => (element, None),
        };
        if parse_unsigned(base).is_none() || random.is_some_and(|r| parse_unsigned(r).is_none()) {
            return error(format!(
                "element {} ({element:?}) is not a delay in seconds; expected e.g. 3600, 3600+600 or 1800,3600,7200",
                i + 1
            ));
        }
    }
    None
}

/// `D(on/off[,on/off...])` sections, `segment_parts` numbers per segment (2 for CadScript, 3 for ToneScript).
fn check_sections<'a>(sections: impl Iterator<Item = &'a str>, tone: bool) -> Result<(), String> {
    let duration = |s: &str| s == "*" || decimal_places(s, false).is_some_and(|p| p <= 3);
    for section in sections {
        let section = section.trim();
        let (d, rest) = section.split_once('(').ok_or_else(|| format!("section {section:?} lacks '('"))?;
        let body = rest.strip_suffix(')').ok_or_else(|| format!("section {section:?} lacks a closing ')'"))?;
        if !duration(d.trim()) {
            return Err(format!("section duration {d:?} is not seconds (up to 3 decimals) or '*'"));
        }
        let segments: Vec<&str> = body.split(',').collect();
        if segments.len() > 6 {
            return Err(format!("section {section:?} has {} segments; at most 6", segments.len()));
        }
        for seg in segments {
            let seg = seg.trim();
            let mut parts: Vec<&str> = seg.split('/').collect();
            // The guide's own examples write "forever on" as `*0/1+2` where phones print `*/0/1+2`; read both.
            let glued;
            if parts.len() + 1 == if tone { 3 } else { 2 } && parts[0].len() > 1 && parts[0].starts_with('*') {
                glued = [&parts[0][..1], &parts[0][1..]];
                parts.splice(0..1, glued);
            }
            let want = if tone { 3 } else { 2 };
            if parts.len() != want || !duration(parts[0].trim()) || !duration(parts[1].trim()) {
                let shape = if tone { "on/off/frequencies" } else { "on/off" };
                return Err(format!("segment {seg:?} is not {shape} with durations in seconds"));
            }
            if tone {
                let ok = parts[2].split('+').all(|n| n.trim().parse::<u8>().is_ok_and(|n| (1..=6).contains(&n)));
                if !ok {
                    return Err(format!("segment {seg:?}: frequency components must be 1..6 joined by '+'"));
                }
            }
        }
    }
    Ok(())
}

fn check_freq_script(value: &str) -> Result<usize, String> {
    let parts: Vec<&str> = value.split(',').collect();
    if parts.len() > 6 {
        return Err(format!("has {} frequencies; at most 6", parts.len()));
    }
    for p in &parts {
        let (f, l) = p.trim().split_once('@').ok_or_else(|| format!("{p:?} is not frequency@level"))?;
        if f.trim().parse::<u32>().is_err() {
            return Err(format!("frequency {f:?} is not an unsigned integer in Hz"));
        }
        if decimal_places(l.trim(), true).is_none_or(|d| d > 1) {
            return Err(format!("level {l:?} is not dBm with up to one decimal place"));
        }
    }
    Ok(parts.len())
}

fn balanced(value: &str) -> Result<(), String> {
    let mut stack = Vec::new();
    let mut in_quotes = false;
    for (i, c) in value.chars().enumerate() {
        if c == '"' {
            in_quotes = !in_quotes;
            continue;
        }
        if in_quotes {
            continue;
        }
        match c {
            '(' | '[' => stack.push((c, i)),
            ')' | ']' => {
                let open = if c == ')' { '(' } else { '[' };
                match stack.pop() {
                    Some((o, _)) if o == open => {}
                    _ => return Err(format!("unbalanced {c:?} at column {}", i + 1)),
                }
            }
            _ => {}
        }
    }
    if in_quotes {
        return Err("a double quote is not closed".into());
    }
    if let Some((c, i)) = stack.pop() {
        return Err(format!("{c:?} at column {} is not closed", i + 1));
    }
    Ok(())
}

impl DataType {
    /// Checks `value` against the type. `None` means it fits. The empty string fits every type (it is what an
    /// unset parameter holds).
    pub fn check(&self, value: &str) -> Option<Mismatch> {
        if value.is_empty() {
            return None;
        }
        match self {
            DataType::Choice(options) => {
                if options.iter().any(|o| o == value) {
                    None
                } else if options.iter().any(|o| o.eq_ignore_ascii_case(value)) {
                    warning(format!("differs in case from the documented choice ({})", options.join(", ")))
                } else {
                    error(format!("is not one of: {}", options.join(", ")))
                }
            }
            DataType::Bool => match value {
                "Yes" | "No" => None,
                v if v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("no") => {
                    warning("Bool is documented as Yes or No; the case differs")
                }
                _ => error("is not a Bool: expected Yes or No"),
            },
            DataType::Uns(bits) => match parse_unsigned(value) {
                Some(v) if *bits >= 128 || v < (1u128 << bits) => None,
                Some(_) => error(format!("does not fit in {bits} bits (at most {})", (1u128 << bits) - 1)),
                None => error(format!("is not an unsigned integer (Uns{bits}, decimal or 0x hex)")),
            },
            DataType::Sig(bits) => {
                let (negative, digits) = match value.as_bytes()[0] {
                    b'-' => (true, &value[1..]),
                    b'+' => (false, &value[1..]),
                    _ => (false, value),
                };
                match parse_unsigned(digits) {
                    Some(v) => {
                        let limit = 1u128 << (bits - 1);
                        if (negative && v <= limit) || (!negative && v < limit) {
                            None
                        } else {
                            error(format!("does not fit in a signed {bits}-bit value"))
                        }
                    }
                    None => error(format!("is not a signed integer (Sig{bits}, decimal or 0x hex)")),
                }
            }
            DataType::Str(n) => too_long(value, *n as usize),
            DataType::Float(n) => match decimal_places(value, true) {
                Some(p) if p <= *n as usize => None,
                Some(p) => error(format!("has {p} decimal places; at most {n}")),
                None => error("is not a number"),
            },
            DataType::Time(n) => match decimal_places(value, false) {
                Some(p) if p <= *n as usize => None,
                Some(p) => warning(format!("has {p} decimal places; the phone ignores those past {n}")),
                None => error("is not a duration in seconds"),
            },
            DataType::Ip => (!valid_ipv4(value)).then(|| Mismatch {
                severity: Severity::Error,
                message: "is not an IPv4 address x.x.x.x with each x from 0 to 255".into(),
            }),
            DataType::Port => match parse_unsigned(value) {
                Some(v) if v <= 65535 => None,
                _ => error("is not a port number 0..65535 (decimal or hex)"),
            },
            DataType::Fqdn => {
                if let Some(m) = too_long(value, 63) {
                    return Some(m);
                }
                let (host, port) = match value.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (value, None),
                };
                if port.is_some_and(|p| parse_unsigned(p).is_none_or(|v| v > 65535)) {
                    return error("has a port that is not 0..65535");
                }
                if valid_ipv4(host) || valid_host(host) {
                    None
                } else {
                    error("is not a host name or IPv4 address (with an optional :port)")
                }
            }
            DataType::UserId => too_long(value, 63),
            DataType::Phone => too_long(value, 39),
            DataType::PhTmpl => too_long(value, 39),
            DataType::RscTmpl => {
                if let Some(m) = too_long(value, 39) {
                    return Some(m);
                }
                let ok = value.split(',').all(|t| {
                    let t = t.trim();
                    !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit() || b == b'?' || b == b'*')
                });
                if ok { None } else { error("is not a list of SIP status templates such as \"404, 5*\" or \"61?\"") }
            }
            DataType::CadScript => too_long(value, 127).or_else(|| {
                let sections: Vec<&str> = value.split(';').collect();
                if sections.len() > 2 {
                    return error("has more than 2 sections");
                }
                check_sections(sections.into_iter(), false)
                    .err()
                    .and_then(|m| error(format!("is not a CadScript: {m}")))
            }),
            DataType::FreqScript => too_long(value, 127)
                .or_else(|| check_freq_script(value).err().and_then(|m| error(format!("is not a FreqScript: {m}")))),
            DataType::ToneScript => too_long(value, 127).or_else(|| {
                let mut parts = value.split(';');
                let freq = parts.next().unwrap_or_default();
                let rest: Vec<&str> = parts.collect();
                if rest.is_empty() || rest.len() > 2 {
                    return error("is not a ToneScript: expected FreqScript;section[;section]");
                }
                if let Err(m) = check_freq_script(freq) {
                    return error(format!("is not a ToneScript: {m}"));
                }
                check_sections(rest.into_iter(), true).err().and_then(|m| error(format!("is not a ToneScript: {m}")))
            }),
            DataType::PwrLevel => match decimal_places(value, true) {
                Some(p) if p <= 1 => None,
                _ => error("is not a power level in dBm with one decimal place, such as -13.5"),
            },
            DataType::StarCode => {
                if let Some(m) = too_long(value, 7) {
                    return Some(m);
                }
                if value.starts_with('*') && value[1..].bytes().all(|b| b.is_ascii_digit() || b == b'#' || b == b'*') {
                    None
                } else {
                    error("is not a star code such as *69")
                }
            }
            DataType::Rule | DataType::UpgradeRule | DataType::ReportRule => {
                use provisor_rules::rule::{Rule, RuleKind};
                let kind = match self {
                    DataType::UpgradeRule => RuleKind::Upgrade,
                    DataType::ReportRule => RuleKind::Report,
                    _ => RuleKind::Profile,
                };
                Rule::parse(value, kind)
                    .and_then(|r| r.check())
                    .err()
                    .and_then(|e| error(format!("is not a valid rule: column {}: {}", e.column, e.message)))
            }
            DataType::Condition => provisor_rules::condition::check(value)
                .err()
                .and_then(|e| error(format!("is not a valid condition: column {}: {}", e.column, e.message))),
            DataType::DialPlan => balanced(value).err().and_then(|m| error(format!("is not valid {self}: {m}"))),
            DataType::Schedule => check_schedule(value),
            DataType::HhMm => {
                let ok = value.len() == 4
                    && value.bytes().all(|b| b.is_ascii_digit())
                    && value[..2].parse::<u8>().is_ok_and(|h| h < 24)
                    && value[2..].parse::<u8>().is_ok_and(|m| m < 60);
                if ok { None } else { error("is not a time of day hhmm (24-hour), such as 0230") }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: &str, v: &str) {
        let ty: DataType = t.parse().unwrap();
        assert_eq!(ty.check(v), None, "{t} {v:?}");
    }

    fn bad(t: &str, v: &str) {
        let ty: DataType = t.parse().unwrap();
        assert_eq!(ty.check(v).map(|m| m.severity), Some(Severity::Error), "{t} {v:?}");
    }

    /// Every example in Cisco "Provisioning Formats", *Data Types*.
    #[test]
    fn data_types_examples() {
        ok("CadScript", "60(2/4)");
        ok("CadScript", "60(.2/.2,.2/.2,.2/.2,1/4)");
        ok("FQDN", "sip.Cisco.com:5060");
        ok("FQDN", "109.12.14.12:12345");
        ok("FQDN", "sip.Cisco.com");
        ok("FQDN", "109.12.14.12");
        ok("FreqScript", "440@-10");
        ok("FreqScript", "350@-19,440@-19");
        ok("IP", "10.1.2.100");
        for p in ["14081234567", "*69", "*72", "345678", "1234@10.10.10.100:5068", "jsmith@Cisco.com"] {
            ok("Phone", p);
        }
        ok("PhTmpl", "1408*, 1510*");
        ok("PhTmpl", "1408123????, 555?1.");
        ok("PwrLevel", "-13.5");
        ok("PwrLevel", "1.5");
        for r in ["404, 5*", "61?", "407, 408, 487, 481"] {
            ok("RscTmpl", r);
        }
        ok("StarCode", "*69");
        ok("ToneScript", "350@-19,440@-19;10(*0/1+2)");
        ok("ToneScript", "350@-19,440@-19;2(.1/.1/1+2);10(*0/1+2)");
        ok("Uns8", "12");
        ok("Uns8", "0x18");
        ok("Port", "0x13c4");
    }

    /// *Configurable Schedules* examples 1–3.
    #[test]
    fn configurable_schedules_examples() {
        for v in ["7200", "1800,3600,7200,14400", "3600+600", "1800+300,3600+600,7200+900", "1800,3600,7200,14400+3600"]
        {
            ok("Schedule", v);
        }
        bad("Schedule", "1h");
        bad("Schedule", "3600,,7200");
    }

    #[test]
    fn ranges_and_shapes() {
        bad("Uns8", "256");
        ok("Uns8", "255");
        bad("Uns8", "-1");
        ok("Sig8", "-128");
        ok("Sig8", "+127");
        bad("Sig8", "128");
        bad("Bool", "maybe");
        assert_eq!(DataType::Bool.check("yes").unwrap().severity, Severity::Warning);
        bad("IP", "10.1.2.256");
        bad("IP", "10.1.2");
        bad("Port", "65536");
        bad("Str4", "hello");
        bad("Float2", "0.123");
        assert_eq!("Time0".parse::<DataType>().unwrap().check("1.5").unwrap().severity, Severity::Warning);
        bad("CadScript", "60(2-4)");
        bad("FreqScript", "440");
        bad("ToneScript", "350@-19;10(*0/1+9)");
        bad("PwrLevel", "-13.55");
        bad("StarCode", "69");
        bad("RscTmpl", "4040");
        bad("HHmm", "2460");
        ok("HHmm", "0230");
        bad("Rule", "[--key abc http://x/y");
        bad("Rule", "http://a/x | http://b/y");
        bad("Rule", "($NOPE eq 1)? /x");
        bad("UpgradeRule", "[--key k] http://h/f.loads");
        ok("UpgradeRule", "($SWVER ne sip88xx.11-0-0MPP-256)? http://ps.tell.com/sw/sip88xx.11-0-0MPP-BN.loads");
        ok("ReportRule", "[--status]http://h/s.xml [--delta]http://h/d.xml");
        ok("Condition", "$UPGTMR gt 300 and $PRVTMR ge 600");
        bad("Condition", "$UPGTMR gt");
        ok(
            "Rule",
            "(\"$A\" ne \"Provisioned\")? (Line_Enable_1_ = \"No\";)! https://p.tel.com/init-prov | https://p.tel.com/configs",
        );
        bad("{Yes|No}", "Maybe");
        ok("Port", "");
    }

    #[test]
    fn type_names_round_trip() {
        for t in ["Bool", "Uns16", "Sig8", "Str64", "Float2", "Time3", "IP", "Port", "FQDN", "{a|b c}", "HHmm"] {
            let ty: DataType = t.parse().unwrap();
            assert!(ty.to_string() == t || t == "HHmm", "{t} -> {ty}");
        }
        assert!("Uns7".parse::<DataType>().is_err());
        assert!("Nonsense".parse::<DataType>().is_err());
    }
}
