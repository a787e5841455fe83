//! Provisioning rules: `Profile_Rule`..`Profile_Rule_D`, `Upgrade_Rule` and `Report_Rule`.
//!
//! Cisco "Provisioning Formats", *Profile Rules*: "The contents of each Profile_Rule* parameter consist of a set of
//! alternatives [...] separated by the | (pipe) character. [...] `[ conditional-expr ] [ assignment-expr ] [[ options ]
//! URL ]` [...] all alternatives except the last one must provide a conditional expression. [...] If all alternatives
//! have conditional expressions and none evaluates to true (or if the whole profile rule is empty), the entire
//! Profile_Rule* parameter is skipped." *Upgrade Rule*: the same, but "URL options are not supported for upgrades" and
//! the server must be named. *Optional Resync Arguments*: `--key`, `--uid`, `--pwd` (macro-expanded, including `$SA`..
//! `$SD`); `--post x` and `--alias x` name a general-purpose parameter (`specs.md` §4.2). Report rules (`specs.md`
//! §4.5): up to two `[--delta|--status ...] URL` items separated by white space.
//!
//! The structure (alternatives, condition, assignments, options, URL) is read from the text as written; each part is
//! macro-expanded on its own when the rule is evaluated, so a macro value can never change the structure, and `$SA`
//! ..`$SD` are expanded only inside credentials.

use serde::Serialize;

use crate::SyntaxError;
use crate::condition::{self, Evaluation};
use crate::macros::{self, Context, Variables};
use crate::url::{self, Url};

/// Which parameter a rule comes from; it decides what is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// `Profile_Rule*`: options allowed; a URL without a server uses the DHCP TFTP server.
    Profile,
    /// `Upgrade_Rule`: no options; the URL must name a server.
    Upgrade,
    /// `Report_Rule`: `[--delta|--status|--key|--uid|--pwd] URL` items.
    Report,
}

/// A piece of rule text and where it starts (byte offset in the whole rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The text as written.
    pub text: String,
    /// Byte offset of its first character in the rule.
    pub at: usize,
}

/// `Name = "value"` inside `( ... )!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The parameter: a one-letter name `a`..`p` means `GPP_A`..`GPP_P`.
    pub parameter: String,
    /// The value as written (expanded at evaluation).
    pub value: Span,
}

/// The options inside `[ ... ]`, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--key`: AES-256-CBC pass phrase.
    pub key: Option<Span>,
    /// `--uid`: HTTP user id.
    pub uid: Option<Span>,
    /// `--pwd`: HTTP password.
    pub pwd: Option<Span>,
    /// `--post x`: POST the expanded contents of this general-purpose parameter (e.g. `GPP_A`).
    pub post: Option<String>,
    /// `--alias x`: the alias map in this general-purpose parameter.
    pub alias: Option<String>,
    /// `--srv`: resolve the host by DNS SRV.
    pub srv: bool,
    /// `--delta` (report rules): only changed fields.
    pub delta: bool,
    /// `--status` (report rules): the status report.
    pub status: bool,
}

/// One alternative of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    /// The condition inside `( ... )?`.
    pub condition: Option<Span>,
    /// The assignments inside `( ... )!`.
    pub assignments: Vec<Assignment>,
    /// The options inside `[ ... ]`.
    pub options: Options,
    /// The URL as written.
    pub url: Option<Span>,
    /// Where the alternative starts.
    pub at: usize,
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What kind of rule.
    pub kind: RuleKind,
    /// The alternatives (profile and upgrade rules) or items (report rules), in order.
    pub alternatives: Vec<Alternative>,
    text: String,
}

fn column(text: &str, byte: usize) -> usize {
    let mut b = byte.min(text.len());
    while !text.is_char_boundary(b) {
        b -= 1;
    }
    text[..b].chars().count() + 1
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
}

impl<'a> Scanner<'a> {
    fn err(&self, at: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError::new(column(self.text, at), message)
    }

    fn skip_ws(&self, mut i: usize, end: usize) -> usize {
        while i < end && self.bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    }

    /// The index of the byte that closes the bracket opened at `open`, skipping quoted text and nested brackets.
    fn closing(&self, open: usize, end: usize) -> Result<usize, SyntaxError> {
        let (o, c) = match self.bytes[open] {
            b'(' => (b'(', b')'),
            _ => (b'[', b']'),
        };
        let mut depth = 0;
        let mut quoted = false;
        for i in open..end {
            match self.bytes[i] {
                b'"' => quoted = !quoted,
                _ if quoted => {}
                b if b == o => depth += 1,
                b if b == c => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(i);
                    }
                }
                _ => {}
            }
        }
        Err(self.err(open, format!("this '{}' is not closed", o as char)))
    }

    /// Splits `[start, end)` at top-level `|` characters.
    fn alternatives(&self, start: usize, end: usize) -> Result<Vec<(usize, usize)>, SyntaxError> {
        let mut out = Vec::new();
        let (mut depth, mut quoted, mut from) = (0i32, false, start);
        for i in start..end {
            match self.bytes[i] {
                b'"' => quoted = !quoted,
                _ if quoted => {}
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b'|' if depth == 0 => {
                    out.push((from, i));
                    from = i + 1;
                }
                _ => {}
            }
        }
        if quoted {
            let at = self.bytes[start..end].iter().rposition(|&b| b == b'"').map_or(start, |p| start + p);
            return Err(self.err(at, "this double-quoted string is not closed"));
        }
        out.push((from, end));
        Ok(out)
    }

    fn span(&self, start: usize, end: usize) -> Span {
        let s = self.skip_ws(start, end);
        let mut e = end;
        while e > s && self.bytes[e - 1].is_ascii_whitespace() {
            e -= 1;
        }
        Span { text: self.text[s..e].to_string(), at: s }
    }

    /// A value: `"quoted"` or a bare word. Returns the value span (without quotes) and the index after it.
    fn value(&self, i: usize, end: usize, what: &str) -> Result<(Span, usize), SyntaxError> {
        let i = self.skip_ws(i, end);
        if i >= end {
            return Err(self.err(i, format!("{what} needs a value")));
        }
        if self.bytes[i] == b'"' {
            let close = self.bytes[i + 1..end]
                .iter()
                .position(|&b| b == b'"')
                .ok_or_else(|| self.err(i, "this double-quoted string is not closed"))?;
            let e = i + 1 + close;
            return Ok((Span { text: self.text[i + 1..e].to_string(), at: i + 1 }, e + 1));
        }
        let len = self.bytes[i..end].iter().take_while(|b| !b.is_ascii_whitespace() && **b != b';').count();
        if let Some(q) = self.bytes[i..i + len].iter().position(|b| b"\"|()[]".contains(b)) {
            let c = self.bytes[i + q] as char;
            return Err(
                self.err(i + q, format!("unexpected '{c}' inside a value: put the whole value in double quotes"))
            );
        }
        Ok((Span { text: self.text[i..i + len].to_string(), at: i }, i + len))
    }

    fn general_purpose(&self, span: &Span) -> Result<String, SyntaxError> {
        match span.text.as_bytes() {
            [c] if c.to_ascii_uppercase().is_ascii_uppercase() && (b'A'..=b'P').contains(&c.to_ascii_uppercase()) => {
                Ok(format!("GPP_{}", c.to_ascii_uppercase() as char))
            }
            _ => {
                Err(self
                    .err(span.at, format!("expected a general-purpose parameter letter a..p, found {:?}", span.text)))
            }
        }
    }

    fn options(&self, start: usize, end: usize, kind: RuleKind) -> Result<Options, SyntaxError> {
        let mut o = Options::default();
        let mut i = self.skip_ws(start, end);
        while i < end {
            let len = self.bytes[i..end].iter().take_while(|b| !b.is_ascii_whitespace()).count();
            let word = &self.text[i..i + len];
            let name = word
                .strip_prefix("--")
                .ok_or_else(|| self.err(i, format!("expected an option such as --key, found {word:?}")))?;
            let at = i;
            i += len;
            let duplicate = || self.err(at, format!("option --{name} is given twice"));
            match name {
                "key" | "uid" | "pwd" => {
                    let (v, next) = self.value(i, end, word)?;
                    let slot = match name {
                        "key" => &mut o.key,
                        "uid" => &mut o.uid,
                        _ => &mut o.pwd,
                    };
                    if slot.replace(v).is_some() {
                        return Err(duplicate());
                    }
                    i = next;
                }
                "post" | "alias" if kind != RuleKind::Report => {
                    let (v, next) = self.value(i, end, word)?;
                    let gpp = self.general_purpose(&v)?;
                    let slot = if name == "post" { &mut o.post } else { &mut o.alias };
                    if slot.replace(gpp).is_some() {
                        return Err(duplicate());
                    }
                    i = next;
                }
                "srv" if kind != RuleKind::Report => o.srv = true,
                "delta" if kind == RuleKind::Report => o.delta = true,
                "status" if kind == RuleKind::Report => o.status = true,
                _ => {
                    let allowed = if kind == RuleKind::Report {
                        "--key, --uid, --pwd, --delta, --status"
                    } else {
                        "--key, --uid, --pwd, --post, --alias, --srv"
                    };
                    return Err(self.err(at, format!("unknown option {word}: expected one of {allowed}")));
                }
            }
            i = self.skip_ws(i, end);
        }
        Ok(o)
    }

    fn assignments(&self, start: usize, end: usize) -> Result<Vec<Assignment>, SyntaxError> {
        let mut out = Vec::new();
        let mut i = self.skip_ws(start, end);
        while i < end {
            let len = self.bytes[i..end]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']'))
                .count();
            if len == 0 || !(self.bytes[i].is_ascii_alphabetic() || self.bytes[i] == b'_') {
                return Err(self.err(i, "expected a parameter name in the assignment"));
            }
            let name = &self.text[i..i + len];
            let parameter = match name.as_bytes() {
                [c] if (b'A'..=b'P').contains(&c.to_ascii_uppercase()) => {
                    format!("GPP_{}", c.to_ascii_uppercase() as char)
                }
                _ => name.to_string(),
            };
            i = self.skip_ws(i + len, end);
            if self.bytes.get(i) != Some(&b'=') || i >= end {
                return Err(self.err(i, format!("expected '=' after {name}")));
            }
            let (value, next) = self.value(i + 1, end, name)?;
            out.push(Assignment { parameter, value });
            i = self.skip_ws(next, end);
            if i < end {
                if self.bytes[i] != b';' {
                    return Err(self.err(i, "expected ';' between assignments"));
                }
                i = self.skip_ws(i + 1, end);
            }
        }
        Ok(out)
    }

    fn alternative(&self, start: usize, end: usize, kind: RuleKind) -> Result<Alternative, SyntaxError> {
        let mut alt =
            Alternative { condition: None, assignments: Vec::new(), options: Options::default(), url: None, at: start };
        let mut i = self.skip_ws(start, end);
        alt.at = i;
        for round in 0..2 {
            if i >= end || self.bytes[i] != b'(' {
                break;
            }
            let close = self.closing(i, end)?;
            let after = self.skip_ws(close + 1, end);
            match self.bytes.get(after).filter(|_| after < end) {
                Some(b'?') if round == 0 && kind != RuleKind::Report => {
                    alt.condition = Some(self.span(i + 1, close));
                }
                Some(b'!') if kind != RuleKind::Report => {
                    alt.assignments = self.assignments(i + 1, close)?;
                }
                Some(b'?') => return Err(self.err(after, "the condition must come before the assignments")),
                _ => {
                    return Err(self.err(after, "expected '?' after a condition or '!' after assignments"));
                }
            }
            i = self.skip_ws(after + 1, end);
            if alt.assignments.is_empty() && alt.condition.is_none() {
                break;
            }
        }
        if i < end && self.bytes[i] == b'[' {
            if kind == RuleKind::Upgrade {
                return Err(self.err(i, "options are not supported in Upgrade_Rule"));
            }
            let close = self.closing(i, end)?;
            alt.options = self.options(i + 1, close, kind)?;
            i = close + 1;
        }
        let url = self.span(i, end);
        if let Some(p) = url.text.find('|') {
            return Err(self.err(url.at + p, "unexpected '|' in the URL (alternatives are separated at the top level)"));
        }
        if url.text.starts_with(['(', '[']) {
            return Err(
                self.err(url.at, "expected the URL here: conditions, assignments and options come first, once each")
            );
        }
        if !url.text.is_empty() {
            if url.text.contains(char::is_whitespace) && kind != RuleKind::Report {
                let gap = url.text.find(char::is_whitespace).unwrap_or(0);
                return Err(
                    self.err(url.at + gap, "unexpected white space in the URL (missing '|' between alternatives?)")
                );
            }
            alt.url = Some(url);
        }
        Ok(alt)
    }
}

impl Rule {
    /// Parses a rule as written (newlines count as spaces, as in a profile).
    pub fn parse(text: &str, kind: RuleKind) -> Result<Rule, SyntaxError> {
        let s = Scanner { text, bytes: text.as_bytes() };
        let mut alternatives = Vec::new();
        if kind == RuleKind::Report {
            for (start, end) in report_items(text) {
                alternatives.push(s.alternative(start, end, kind)?);
            }
        } else {
            let parts = s.alternatives(0, text.len())?;
            let count = parts.len();
            for (n, (start, end)) in parts.into_iter().enumerate() {
                let alt = s.alternative(start, end, kind)?;
                let empty = alt.condition.is_none() && alt.assignments.is_empty() && alt.url.is_none();
                if empty && count > 1 {
                    return Err(s.err(alt.at, "empty alternative"));
                }
                if alt.condition.is_none() && n + 1 < count {
                    return Err(s.err(alt.at, "every alternative but the last needs a condition ( ... )?"));
                }
                if kind == RuleKind::Upgrade && alt.url.is_none() && !empty {
                    return Err(s.err(end, "Upgrade_Rule alternatives need a URL"));
                }
                if !empty {
                    alternatives.push(alt);
                }
            }
        }
        Ok(Rule { kind, alternatives, text: text.to_string() })
    }

    /// Checks the rule without values, as a linter must: its structure (already parsed) and every condition's syntax
    /// (see [`condition::check`]). Columns are those of the whole rule.
    pub fn check(&self) -> Result<(), SyntaxError> {
        for alt in &self.alternatives {
            if let Some(cond) = &alt.condition {
                condition::check(&cond.text).map_err(|e| {
                    let base = column(&self.text, cond.at) - 1;
                    SyntaxError::new(base + e.column, e.message)
                })?;
            }
        }
        Ok(())
    }

    /// The text the rule was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn err(&self, at: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError::new(column(&self.text, at), message)
    }

    /// Evaluates the rule as a phone does: conditions left to right, the first true one (or the first alternative
    /// without a condition) is selected, its assignments and options are expanded and its URL resolved.
    ///
    /// `dhcp_server` is the TFTP server from DHCP option 66/150, for profile-rule URLs without a server.
    pub fn evaluate(&self, vars: &Variables, dhcp_server: Option<&str>) -> Result<Selection, SyntaxError> {
        let mut tried = Vec::new();
        for (index, alt) in self.alternatives.iter().enumerate() {
            if let Some(cond) = &alt.condition {
                let evaluation = condition::evaluate(&cond.text, vars).map_err(|e| {
                    let base = column(&self.text, cond.at) - 1;
                    SyntaxError::new(base + e.column, e.message)
                })?;
                let holds = evaluation.holds;
                tried.push((index, evaluation));
                if !holds {
                    continue;
                }
            }
            return self.select(index, alt, vars, dhcp_server, tried);
        }
        Ok(Selection { conditions: tried, ..Selection::default() })
    }

    /// Evaluates every item of a report rule (all items apply, each on its own).
    pub fn evaluate_each(&self, vars: &Variables, dhcp_server: Option<&str>) -> Result<Vec<Selection>, SyntaxError> {
        self.alternatives
            .iter()
            .enumerate()
            .map(|(i, alt)| self.select(i, alt, vars, dhcp_server, Vec::new()))
            .collect()
    }

    fn select(
        &self,
        index: usize,
        alt: &Alternative,
        vars: &Variables,
        dhcp_server: Option<&str>,
        conditions: Vec<(usize, Evaluation)>,
    ) -> Result<Selection, SyntaxError> {
        let general = |s: &Span| macros::expand(&s.text, vars, Context::General);
        let credential = |s: &Span| macros::expand(&s.text, vars, Context::Credential);
        let assignments = alt.assignments.iter().map(|a| (a.parameter.clone(), general(&a.value))).collect();
        let o = &alt.options;
        let post_body = o.post.as_ref().map(|p| macros::expand(vars.get(p).unwrap_or(""), vars, Context::General));
        let options = ExpandedOptions {
            key: o.key.as_ref().map(credential),
            uid: o.uid.as_ref().map(credential),
            pwd: o.pwd.as_ref().map(credential),
            post: o.post.clone(),
            post_body,
            alias: o.alias.clone(),
            srv: o.srv,
            delta: o.delta,
            status: o.status,
        };
        let server = if self.kind == RuleKind::Upgrade { None } else { dhcp_server };
        let url = match &alt.url {
            None => None,
            Some(span) => {
                let expansion = macros::expand_mapped(&span.text, vars, Context::General);
                let u = url::parse(&expansion.text, server).map_err(|e| {
                    let origin = expansion.origin_of(e.at, span.text.len());
                    self.err(span.at + origin, e.message)
                })?;
                Some(u)
            }
        };
        Ok(Selection { alternative: Some(index), conditions, assignments, options, url })
    }
}

/// Splits a report rule into its items: each starts at a `[` or a URL, after white space.
fn report_items(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        if bytes[i] == b'[' {
            let mut quoted = false;
            while i < bytes.len() && (quoted || bytes[i] != b']') {
                if bytes[i] == b'"' {
                    quoted = !quoted;
                }
                i += 1;
            }
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
        }
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        items.push((start, i.min(bytes.len())));
    }
    items
}

/// Options after macro expansion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpandedOptions {
    /// The `--key` pass phrase.
    pub key: Option<String>,
    /// The `--uid` user id.
    pub uid: Option<String>,
    /// The `--pwd` password.
    pub pwd: Option<String>,
    /// The parameter named by `--post` (e.g. `GPP_A`).
    pub post: Option<String>,
    /// The POST body: the macro-expanded contents of that parameter.
    #[serde(skip)]
    pub post_body: Option<String>,
    /// The parameter named by `--alias`.
    pub alias: Option<String>,
    /// `--srv`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub srv: bool,
    /// `--delta`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub delta: bool,
    /// `--status`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub status: bool,
}

/// What a rule evaluated to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The selected alternative (0-based), or `None` when the rule is skipped.
    pub alternative: Option<usize>,
    /// The conditions evaluated on the way, with their alternative's index: for explanations.
    pub conditions: Vec<(usize, Evaluation)>,
    /// Assignments of the selected alternative: parameter name and expanded value.
    pub assignments: Vec<(String, String)>,
    /// Options of the selected alternative.
    pub options: ExpandedOptions,
    /// The URL to fetch, if the alternative has one.
    pub url: Option<Url>,
}

fn write_value(f: &mut std::fmt::Formatter<'_>, v: &str) -> std::fmt::Result {
    if v.is_empty() || v.contains(|c: char| c.is_ascii_whitespace() || c == ';' || c == ']' || c == ')') {
        write!(f, "\"{v}\"")
    } else {
        f.write_str(v)
    }
}

fn letter(gpp: &str) -> String {
    gpp.strip_prefix("GPP_").unwrap_or(gpp).to_ascii_lowercase()
}

impl std::fmt::Display for Rule {
    /// The rule in canonical form: alternatives joined by ` | `, each `(condition)? (a = "v";)! [options] URL`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let separator = if self.kind == RuleKind::Report { " " } else { " | " };
        for (i, alt) in self.alternatives.iter().enumerate() {
            if i > 0 {
                f.write_str(separator)?;
            }
            let mut parts: Vec<String> = Vec::new();
            if let Some(c) = &alt.condition {
                parts.push(format!("({})?", c.text));
            }
            if !alt.assignments.is_empty() {
                let body: Vec<String> =
                    alt.assignments.iter().map(|a| format!("{} = \"{}\";", a.parameter, a.value.text)).collect();
                parts.push(format!("({})!", body.join(" ")));
            }
            let o = &alt.options;
            let mut opts: Vec<String> = Vec::new();
            for (name, v) in [("key", &o.key), ("uid", &o.uid), ("pwd", &o.pwd)] {
                if let Some(v) = v {
                    opts.push(format!("--{name} {}", Quoted(&v.text)));
                }
            }
            if let Some(p) = &o.post {
                opts.push(format!("--post {}", letter(p)));
            }
            if let Some(a) = &o.alias {
                opts.push(format!("--alias {}", letter(a)));
            }
            for (flag, on) in [("srv", o.srv), ("delta", o.delta), ("status", o.status)] {
                if on {
                    opts.push(format!("--{flag}"));
                }
            }
            if !opts.is_empty() {
                parts.push(format!("[{}]", opts.join(" ")));
            }
            if let Some(u) = &alt.url {
                parts.push(u.text.clone());
            }
            // An alternative with nothing in it (written `[]`) must still print as one.
            if parts.is_empty() {
                parts.push("[]".into());
            }
            f.write_str(&parts.join(" "))?;
        }
        Ok(())
    }
}

struct Quoted<'a>(&'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_value(f, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(text: &str) -> Rule {
        Rule::parse(text, RuleKind::Profile).unwrap_or_else(|e| panic!("{}", e.render(text)))
    }

    #[test]
    fn structure() {
        let r = profile(
            "(\"$A\" ne \"Provisioned\")? (Line_Enable_1_ = \"No\";)! https://p.tel.com/init-prov | https://p.tel.com/configs",
        );
        assert_eq!(r.alternatives.len(), 2);
        assert_eq!(r.alternatives[0].condition.as_ref().unwrap().text, "\"$A\" ne \"Provisioned\"");
        assert_eq!(r.alternatives[0].assignments[0].parameter, "Line_Enable_1_");
        assert_eq!(r.alternatives[0].assignments[0].value.text, "No");
        assert_eq!(r.alternatives[1].url.as_ref().unwrap().text, "https://p.tel.com/configs");
    }

    #[test]
    fn syntax_errors_point_at_columns() {
        let cases = [
            ("http://a/x | http://b/y", 1, "needs a condition"),
            ("($A eq 1 http://a/x", 1, "not closed"),
            ("($A eq 1) http://a/x", 11, "expected '?'"),
            ("[--nope x] http://a/x", 2, "unknown option --nope"),
            ("[--key] http://a/x", 7, "needs a value"),
            ("[--post z] http://a/x", 9, "letter a..p"),
            ("(a \"x\";)! http://a/x", 4, "expected '='"),
            ("[--key \"abc] http://a/x", 8, "not closed"),
            ("http://a/x http://b/y", 11, "white space"),
            ("[--key a --key b] /x", 10, "twice"),
        ];
        for (text, col, msg) in cases {
            let e = Rule::parse(text, RuleKind::Profile).unwrap_err();
            assert!(e.column == col && e.message.contains(msg), "{text:?}: {e}");
        }
        let e = Rule::parse("[--key x] http://a/x.loads", RuleKind::Upgrade).unwrap_err();
        assert!(e.message.contains("not supported in Upgrade_Rule"), "{e}");
    }

    #[test]
    fn report_rules() {
        let r = Rule::parse(
            "[--status]http://my_http_server/config-mpp-status.xml [--delta]http://my_http_server/config-mpp-delta.xml",
            RuleKind::Report,
        )
        .unwrap();
        assert_eq!(r.alternatives.len(), 2);
        assert!(r.alternatives[0].options.status);
        assert!(r.alternatives[1].options.delta);
        let r = Rule::parse("[--delta --key test123]http://my_http_server/config-mpp-delta.enc.xml", RuleKind::Report)
            .unwrap();
        assert_eq!(r.alternatives[0].options.key.as_ref().unwrap().text, "test123");
    }
}
