//! Macro expansion: `$NAME`, `$(NAME)`, `$(NAME:p)`, `$(NAME:p:q)` and `$$`.
//!
//! Cisco "Provisioning Formats", *Macro Expansion*: "the contents of the named variables replace expressions of the
//! form `$NAME` and `$(NAME)`. [...] If a macro name is not recognized, it remains unexpanded. [...] Macro expansion
//! is not applied recursively." Substrings `$(A:2)`, `$(A:2:3)`: 7800/8800 MPP provisioning guide.
//!
//! **Where a bare name ends** (the guides do not say): at the first character that is not a letter, digit or `_`.
//! The whole run is the name; if it is not a known macro the text is left exactly as written. So `$MAU.cfg` is MAU,
//! `$STRANGE$MAU.cfg` keeps `$STRANGE`, and `$MAcfg` stays `$MAcfg` (the guides write `$(MAU)config.cfg` when
//! letters follow, which this rule requires too).
//!
//! Known names are those of the guides' macro table (`specs.md` §4.1): `A`..`P`, `SA`..`SD`, `MA`, `MAU`, `MAC`,
//! `PN`, `PSN`, `SN`, `CCERT`, `IP`, `EXTIP`, `SWVER`, `HWVER`, `PRVST`, `UPGST`, `UPGERR`, `PRVTMR`, `UPGTMR`,
//! `REGTMR1`, `REGTMR2`, `UPGCOND`, `SCHEME`, `METH`, `SERV`, `SERVIP`, `PORT`, `PATH`, `ERR`, `UIDn`, `EMS`, `MUID`,
//! `MPWD`, and `GPP_A`..`GPP_P`, `GPP_SA`..`GPP_SD` ("referenced by prefixing the variable name with a '$'
//! character, such as $GPP_A"). A known name with no value expands to the empty string, as on a phone.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

const FIXED: &[&str] = &[
    "MA", "MAU", "MAC", "PN", "PSN", "SN", "CCERT", "IP", "EXTIP", "SWVER", "HWVER", "PRVST", "UPGST", "UPGERR",
    "PRVTMR", "UPGTMR", "REGTMR1", "REGTMR2", "UPGCOND", "SCHEME", "METH", "SERV", "SERVIP", "PORT", "PATH", "ERR",
    "EMS", "MUID", "MPWD",
];

/// The `--key`, `--uid` and `--pwd` secrets: expanded only inside those options.
pub const SECRET_NAMES: [&str; 4] = ["SA", "SB", "SC", "SD"];

/// What a macro name refers to, after resolving aliases (`GPP_A` → `A`).
fn canonical(name: &str) -> Option<&str> {
    let name = name.strip_prefix("GPP_").unwrap_or(name);
    let general = name.len() == 1 && matches!(name.as_bytes()[0], b'A'..=b'P');
    let secret = SECRET_NAMES.contains(&name);
    let uid = name.strip_prefix("UID").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (general || secret || uid || FIXED.contains(&name)).then_some(name)
}

/// Whether `name` is a macro name a phone recognises (see the module documentation).
pub fn is_known(name: &str) -> bool {
    canonical(name).is_some()
}

/// Whether `name` is one of the secrets `SA`..`SD` (or `GPP_SA`..`GPP_SD`).
pub fn is_secret(name: &str) -> bool {
    canonical(name).is_some_and(|n| SECRET_NAMES.contains(&n))
}

/// The names of the general-purpose and user-ID variables, so that a known name is kept without a copy.
const LISTED: &[&str] = &[
    "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "UID1", "UID2", "UID3", "UID4",
    "UID5", "UID6", "UID7", "UID8", "UID9", "UID10", "UID11", "UID12", "UID13", "UID14", "UID15", "UID16",
];

/// `name` as a static string when it is one the guides list (no allocation), otherwise copied.
fn kept_name(name: &str) -> Cow<'static, str> {
    match FIXED.iter().chain(&SECRET_NAMES).chain(LISTED).find(|n| **n == name) {
        Some(n) => Cow::Borrowed(n),
        None => Cow::Owned(name.to_string()),
    }
}

/// The values of the macro variables, by macro name (`MA`, `A`, `SWVER`, ...). Cheap to clone: names are static and
/// values shared (a simulated phone copies its variables whenever its status changes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables {
    values: BTreeMap<Cow<'static, str>, Arc<str>>,
}

impl Variables {
    /// No values: every known macro expands to the empty string.
    pub fn new() -> Self {
        Variables::default()
    }

    /// Sets a variable by macro name (`GPP_A` and `A` are the same variable). `MA` also sets `MAU` and `MAC`
    /// unless they are set explicitly.
    pub fn set(&mut self, name: &str, value: impl Into<Arc<str>>) -> &mut Self {
        let name = kept_name(canonical(name).unwrap_or(name));
        let value: Arc<str> = value.into();
        if name == "MA" {
            let hex: String = value.chars().filter(char::is_ascii_hexdigit).collect::<String>().to_ascii_lowercase();
            self.values.entry(Cow::Borrowed("MAU")).or_insert_with(|| hex.to_ascii_uppercase().into());
            let colons = hex.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>();
            self.values.entry(Cow::Borrowed("MAC")).or_insert_with(|| colons.join(":").into());
            self.values.insert(name, hex.into());
        } else {
            self.values.insert(name, value);
        }
        self
    }

    /// The value of a known macro (empty if unset); `None` for a name the phone does not recognise.
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = canonical(name)?;
        Some(self.values.get(name).map(|v| &**v).unwrap_or(""))
    }

    /// Every value that was set, by canonical name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (&**k, &**v))
    }
}

/// Where expansion happens, which decides whether `$SA`..`$SD` are expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Anywhere but the arguments of `--key`, `--uid` and `--pwd`: the secrets stay as written.
    General,
    /// The argument of `--key`, `--uid` or `--pwd`.
    Credential,
}

/// Expanded text and, for each output byte, the input byte it came from (for error columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded text.
    pub text: String,
    /// `origin[i]` is the byte offset in the input that produced output byte `i`.
    pub origin: Vec<usize>,
}

impl Expansion {
    /// The input byte offset of output byte `i` (the end of the input for `i` past the end).
    pub fn origin_of(&self, i: usize, input_len: usize) -> usize {
        self.origin.get(i).copied().unwrap_or(input_len)
    }
}

/// Expands the macros in `text` once (never recursively).
pub fn expand(text: &str, vars: &Variables, context: Context) -> String {
    expand_with(text, |name| vars.get(name), context, &mut ())
}

/// [`expand`] with `over` set on top of `vars` (canonical names), without copying `vars`: a log line's fetch
/// variables (`SCHEME`, `PATH`, ...) over the phone's own.
pub fn expand_over(text: &str, vars: &Variables, over: &[(&str, &str)], context: Context) -> String {
    let lookup = |name: &str| {
        let canonical = canonical(name)?;
        match over.iter().find(|(n, _)| *n == canonical) {
            Some((_, v)) => Some(*v),
            None => vars.get(canonical),
        }
    };
    expand_with(text, lookup, context, &mut ())
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// [`expand`], keeping track of where each output byte came from.
pub fn expand_mapped(text: &str, vars: &Variables, context: Context) -> Expansion {
    let mut origin = Vec::with_capacity(text.len());
    let text = expand_with(text, |name| vars.get(name), context, &mut origin);
    Expansion { text, origin }
}

/// Where the output bytes of an expansion came from: a `Vec` of input offsets, or nothing (`()`) when no one asks.
trait Origins {
    fn extend_from(&mut self, input: std::ops::Range<usize>);
    fn repeat(&mut self, at: usize, n: usize);
}

impl Origins for () {
    fn extend_from(&mut self, _: std::ops::Range<usize>) {}
    fn repeat(&mut self, _: usize, _: usize) {}
}

impl Origins for Vec<usize> {
    fn extend_from(&mut self, input: std::ops::Range<usize>) {
        self.extend(input);
    }
    fn repeat(&mut self, at: usize, n: usize) {
        self.extend(std::iter::repeat_n(at, n));
    }
}

/// The expansion itself, with `value` giving a known macro's value (`None` for a name the phone does not recognise).
fn expand_with<'v>(
    text: &str,
    value: impl Fn(&str) -> Option<&'v str>,
    context: Context,
    origin: &mut impl Origins,
) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let push = |out: &mut String, origin: &mut _, s: &str, at: usize| {
        out.push_str(s);
        Origins::repeat(origin, at, s.len());
    };
    let lookup = |name: &str| -> Option<&'v str> {
        if context == Context::General && is_secret(name) {
            return None;
        }
        value(name)
    };
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        if bytes[i] != b'$' {
            // Copy a run of ordinary text (always ends on a char boundary: '$' is ASCII).
            let end = bytes[i..].iter().position(|&b| b == b'$').map_or(bytes.len(), |p| i + p);
            out.push_str(&text[i..end]);
            origin.extend_from(i..end);
            i = end;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => {
                push(&mut out, origin, "$", start);
                i += 2;
            }
            Some(b'(') => {
                let close = bytes[i + 2..].iter().position(|&b| b == b')').map(|p| i + 2 + p);
                let expanded = close.and_then(|close| {
                    let inner = &text[i + 2..close];
                    let mut parts = inner.split(':');
                    let name = parts.next()?;
                    let value = lookup(name)?;
                    let p: Option<usize> = match parts.next() {
                        None => Some(0),
                        Some(p) => p.trim().parse().ok(),
                    };
                    let q: Option<Option<usize>> = match parts.next() {
                        None => Some(None),
                        Some(q) => q.trim().parse().ok().map(Some),
                    };
                    if parts.next().is_some() {
                        return None;
                    }
                    let (p, q) = (p?, q?);
                    let sub: String = match q {
                        Some(q) => value.chars().skip(p).take(q).collect(),
                        None => value.chars().skip(p).collect(),
                    };
                    Some((sub, close))
                });
                match expanded {
                    Some((sub, close)) => {
                        push(&mut out, origin, &sub, start);
                        i = close + 1;
                    }
                    None => {
                        // Unknown name or malformed substring: left exactly as written.
                        let end = close.map_or(bytes.len(), |c| c + 1);
                        out.push_str(&text[i..end]);
                        origin.extend_from(i..end);
                        i = end;
                    }
                }
            }
            _ => {
                let run = bytes[i + 1..].iter().take_while(|&&b| is_name_byte(b)).count();
                let name = &text[i + 1..i + 1 + run];
                match (run > 0).then(|| lookup(name)).flatten() {
                    Some(value) => push(&mut out, origin, value, start),
                    None => {
                        out.push_str(&text[i..i + 1 + run]);
                        origin.extend_from(i..i + 1 + run);
                    }
                }
                i += 1 + run;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        let mut v = Variables::new();
        v.set("MA", "000e08012345")
            .set("A", "ABCDEF")
            .set("B", "123")
            .set("SA", "MyUserID")
            .set("SB", "MySecretPassword");
        v
    }

    /// Every name a phone sets is kept without a copy, and a clone shares the values; an unlisted name still works.
    #[test]
    fn names_kept_static_and_values_shared() {
        let letters = (b'A'..=b'P').map(|b| (b as char).to_string());
        let uids = (1..=16).map(|n| format!("UID{n}"));
        for name in letters.chain(uids).chain(SECRET_NAMES.iter().map(|s| s.to_string())) {
            assert!(matches!(kept_name(&name), Cow::Borrowed(_)), "{name}");
        }
        for name in FIXED {
            assert!(matches!(kept_name(name), Cow::Borrowed(_)), "{name}");
        }
        assert!(matches!(kept_name("UID17"), Cow::Owned(_)));
        let mut v = vars();
        v.set("UID17", "1017");
        let copy = v.clone();
        assert!(Arc::ptr_eq(&v.values["A"], &copy.values["A"]), "a clone shares the values");
        assert_eq!(
            expand("$UID17 $(UID17:1) $GPP_A $MAC", &copy, Context::General),
            "1017 017 ABCDEF 00:0e:08:01:23:45"
        );
    }

    /// 003 *Macro Expansion*: `$(MAU)config.cfg`.
    #[test]
    fn macro_expansion_mau_example() {
        assert_eq!(expand("$(MAU)config.cfg", &vars(), Context::General), "000E08012345config.cfg");
    }

    /// 003 *Macro Expansion*: `$STRANGE$MAU.cfg`.
    #[test]
    fn macro_expansion_unrecognized_name() {
        assert_eq!(expand("$STRANGE$MAU.cfg", &vars(), Context::General), "$STRANGE000E08012345.cfg");
    }

    /// 003 *Macro Expansion*: "`$$MAU` expands into `$MAU`".
    #[test]
    fn macro_expansion_not_recursive() {
        assert_eq!(expand("$$MAU", &vars(), Context::General), "$MAU");
    }

    /// 003 *Use General Purpose Parameters*: `$A$B` → `ABC123`-style concatenation.
    #[test]
    fn general_purpose_parameters_concatenate() {
        let mut v = Variables::new();
        v.set("GPP_A", "ABC").set("GPP_B", "123");
        assert_eq!(expand("$A$B", &v, Context::General), "ABC123");
        assert_eq!(expand("$GPP_A", &v, Context::General), "ABC");
    }

    /// 002 / `specs.md` §4.1: substring macros.
    #[test]
    fn substring_macros() {
        let v = vars();
        assert_eq!(expand("$(A:2)", &v, Context::General), "CDEF");
        assert_eq!(expand("$(A:2:3)", &v, Context::General), "CDE");
        assert_eq!(expand("$(MAU:4)", &v, Context::General), "08012345");
        assert_eq!(expand("$(MAU:8:2)", &v, Context::General), "23");
        assert_eq!(expand("$(A:10)", &v, Context::General), "");
        assert_eq!(expand("$(A:x)", &v, Context::General), "$(A:x)");
        assert_eq!(expand("$(FOO)", &v, Context::General), "$(FOO)");
        assert_eq!(expand("$(A", &v, Context::General), "$(A");
    }

    /// 003 *Optional Resync Arguments*: `$SA`..`$SD` only inside --key/--uid/--pwd.
    #[test]
    fn secrets_only_in_credentials() {
        let v = vars();
        assert_eq!(expand("[--uid $SA --pwd $SB]", &v, Context::General), "[--uid $SA --pwd $SB]");
        assert_eq!(expand("$SA", &v, Context::Credential), "MyUserID");
        assert_eq!(expand("$(SB)", &v, Context::Credential), "MySecretPassword");
    }

    #[test]
    fn names_and_edges() {
        let v = vars();
        assert_eq!(expand("/$MA.cfg", &v, Context::General), "/000e08012345.cfg");
        assert_eq!(expand("$MAC", &v, Context::General), "00:0e:08:01:23:45");
        assert_eq!(expand("$MAcfg", &v, Context::General), "$MAcfg");
        assert_eq!(expand("$", &v, Context::General), "$");
        assert_eq!(expand("a$ b", &v, Context::General), "a$ b");
        assert_eq!(expand("$PN", &v, Context::General), "", "a known name without a value is empty");
        assert_eq!(expand("$UID1", &v, Context::General), "");
        assert_eq!(expand("h\u{e9}$A", &v, Context::General), "h\u{e9}ABCDEF");
    }

    #[test]
    fn origins_point_into_the_input() {
        let v = vars();
        let e = expand_mapped("x$A y", &v, Context::General);
        assert_eq!(e.text, "xABCDEF y");
        assert_eq!(e.origin, vec![0, 1, 1, 1, 1, 1, 1, 3, 4]);
    }
}
