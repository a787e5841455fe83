//! What a requested file name asks for: a device's profile (by configurable patterns), an enterprise
//! `SEP<MAC>.cnf.xml` or `XMLDefault.cnf.xml`, a trust list, firmware, the encrypted-profile path of the secure flow,
//! or a report upload.
//!
//! Names are matched case-insensitively, with or without a leading `/` (TFTP clients send both), and with the
//! `Communicator/` prefix of the soft client removed (specs.md §5.1).

use crate::inventory::Mac;

/// One element of a [`Pattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Mac,
    Model,
    Any,
}

/// A file-name pattern such as `/{model}/{mac}.cfg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pieces: Vec<Piece>,
    source: String,
}

/// What a pattern captured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures {
    /// `{mac}`.
    pub mac: Option<Mac>,
    /// `{model}`.
    pub model: Option<String>,
}

impl Pattern {
    /// Parses a pattern; placeholders are `{mac}`, `{model}` and `{any}`, each within one path segment.
    pub fn parse(source: &str) -> Result<Pattern, String> {
        if !source.starts_with('/') {
            return Err(format!("{source:?} must start with '/'"));
        }
        let mut pieces = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after.find('}').ok_or_else(|| format!("{source:?}: '{{' without '}}'"))?;
                pieces.push(match &after[..end] {
                    "mac" => Piece::Mac,
                    "model" => Piece::Model,
                    "any" => Piece::Any,
                    other => return Err(format!("{source:?}: unknown placeholder {{{other}}} (use mac, model, any)")),
                });
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                if rest[..end].contains('}') {
                    return Err(format!("{source:?}: '}}' without '{{'"));
                }
                pieces.push(Piece::Literal(rest[..end].to_ascii_lowercase()));
                rest = &rest[end..];
            }
        }
        for w in pieces.windows(2) {
            if !matches!(w[0], Piece::Literal(_)) && !matches!(w[1], Piece::Literal(_)) {
                return Err(format!("{source:?}: two placeholders need text between them"));
            }
        }
        Ok(Pattern { pieces, source: source.to_string() })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Matches a normalised path (leading `/`).
    pub fn matches(&self, path: &str) -> Option<Captures> {
        let mut captures = Captures::default();
        match_pieces(&self.pieces, path, &mut captures).then_some(captures)
    }
}

fn match_pieces(pieces: &[Piece], path: &str, captures: &mut Captures) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return path.is_empty();
    };
    match first {
        Piece::Literal(l) => {
            path.len() >= l.len()
                && path.is_char_boundary(l.len())
                && path[..l.len()].eq_ignore_ascii_case(l)
                && match_pieces(rest, &path[l.len()..], captures)
        }
        Piece::Mac => {
            let Some(hex) = path.get(..12) else { return false };
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return false;
            }
            let saved = captures.mac.replace(hex.parse().expect("12 hex digits are a MAC"));
            match_pieces(rest, &path[12..], captures) || {
                captures.mac = saved;
                false
            }
        }
        Piece::Model | Piece::Any => {
            let segment_end = path.find('/').unwrap_or(path.len());
            // Shortest first, so a literal suffix such as `.xml` can follow.
            for end in (1..=segment_end).filter(|&e| path.is_char_boundary(e)) {
                let saved = captures.model.clone();
                if matches!(first, Piece::Model) {
                    captures.model = Some(path[..end].to_string());
                }
                if match_pieces(rest, &path[end..], captures) {
                    return true;
                }
                captures.model = saved;
            }
            false
        }
    }
}

/// What a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `CTL*.tlv` / `ITL*.tlv`: the site's trust list if it placed one, else "not found" (phones without a trust list
    /// then accept unsigned files).
    TrustList,
    /// `SEP<MAC>.cnf.xml` (enterprise firmware).
    Enterprise(Mac),
    /// `XMLDefault.cnf.xml`, the enterprise fallback (any case).
    EnterpriseDefault,
    /// `/profile/<token>/<name>`: the device's encrypted profile (SEC-PRV-2).
    EncryptedProfile(String),
    /// `/firmware/<name>`.
    Firmware(String),
    /// `/report/<anything>`: a `Report_Rule` upload.
    Report(String),
    /// `/ca.pem`: the site's CA certificate, which the bootstrap profile's `Custom_CA_Rule` installs on phones.
    SiteCa,
    /// `<file>.sgn`: the signed form of `<file>` (the path without `.sgn`).
    Signed(String),
    /// `SEP<MAC>.cnf.xml.enc.sgn`: the device's config encrypted to its phone certificate.
    EncryptedConfig(Mac),
    /// A file enterprise phones ask for beside their config (dial plan, softkeys, ring lists, locales, backgrounds):
    /// served from the site's files, or "not found" at once, never a profile.
    Static(String),
    /// A profile pattern matched.
    Profile {
        /// The pattern.
        pattern: String,
        /// What it captured.
        captures: Captures,
    },
    /// Nothing matched.
    Unknown,
}

/// Files enterprise phones ask for beside their config (specs.md §5.1): a catch-all profile pattern never answers
/// them.
fn is_enterprise_file(lower: &str, base: &str) -> bool {
    const NAMES: [&str; 9] = [
        "appdialrules.xml",
        "dialplan.xml",
        "ringlist.xml",
        "distinctiveringlist.xml",
        "softkeys.xml",
        "featurepolicy.xml",
        "g3-tones.xml",
        "ringlist-wb.xml",
        "os79xx.txt",
    ];
    NAMES.contains(&base)
        || lower.starts_with("/desktops/")
        || base.ends_with(".jar")
        || base.starts_with("defaultheadsetconfig")
        || (base.ends_with(".cnf") && (base.starts_with("sip") || base.starts_with("sep")))
}

/// Turns file names into [`Route`]s.
#[derive(Debug, Clone)]
pub struct Router {
    patterns: Vec<Pattern>,
}

/// A normalised path: leading `/`, `Communicator/` removed, query removed. `None` for names that are never served
/// (NUL, backslash, `..`).
pub fn normalise(name: &str) -> Option<std::borrow::Cow<'_, str>> {
    // Byte scans: this runs on every request, and `str`'s pattern searchers cost more than the rest of it.
    let end = name.bytes().position(|b| b == b'?' || b == b'#').unwrap_or(name.len());
    let name = &name[..end];
    let original = name;
    if name.bytes().any(|b| b == 0 || b == b'\\') {
        return None;
    }
    let mut name = name.trim_start_matches('/');
    for prefix in ["Communicator/", "communicator/"] {
        name = name.strip_prefix(prefix).unwrap_or(name);
    }
    if name.as_bytes().split(|&b| b == b'/').any(|s| s == b"..") {
        return None;
    }
    // Borrowed when it already was normal (one leading `/`): a request's path, most of the time.
    // (`name` is what is left of the end of `original`.)
    if original.len() == name.len() + 1 && original.starts_with('/') {
        return Some(std::borrow::Cow::Borrowed(original));
    }
    let mut out = String::with_capacity(name.len() + 1);
    out.push('/');
    out.push_str(name);
    Some(std::borrow::Cow::Owned(out))
}

impl Router {
    /// A router with these profile patterns (already checked by the configuration).
    pub fn new(patterns: &[String]) -> Result<Router, String> {
        Ok(Router { patterns: patterns.iter().map(|p| Pattern::parse(p)).collect::<Result<_, _>>()? })
    }

    /// What `path` (already [`normalise`]d) asks for.
    pub fn route(&self, path: &str) -> Route {
        // Lower case for matching; most paths already are (no copy then).
        let lower: std::borrow::Cow<'_, str> =
            if path.bytes().any(|b| b.is_ascii_uppercase()) { path.to_ascii_lowercase().into() } else { path.into() };
        let base = lower.rsplit('/').next().unwrap_or("");
        if (base.starts_with("ctl") || base.starts_with("itl")) && base.ends_with(".tlv") {
            return Route::TrustList;
        }
        if lower == "/ca.pem" || lower == "ca.pem" {
            return Route::SiteCa;
        }
        if let Some(hex) = base.strip_prefix("sep").and_then(|b| b.strip_suffix(".cnf.xml.enc.sgn"))
            && let Ok(mac) = hex.parse::<Mac>()
        {
            return Route::EncryptedConfig(mac);
        }
        if lower.ends_with(".sgn") && !lower.ends_with(".sgn.sgn") {
            return Route::Signed(path[..path.len() - 4].to_string());
        }
        if is_enterprise_file(&lower, base) {
            return Route::Static(path.trim_start_matches('/').to_string());
        }
        if base == "xmldefault.cnf.xml" {
            return Route::EnterpriseDefault;
        }
        if let Some(hex) = base.strip_prefix("sep").and_then(|b| b.strip_suffix(".cnf.xml"))
            && let Ok(mac) = hex.parse::<Mac>()
        {
            return Route::Enterprise(mac);
        }
        if let Some(rest) = lower.strip_prefix("/profile/") {
            let token = rest.split('/').next().unwrap_or("");
            if !token.is_empty() && rest.len() > token.len() + 1 {
                return Route::EncryptedProfile(token.to_string());
            }
        }
        if let Some(name) = path.strip_prefix("/firmware/").or_else(|| path.strip_prefix("/FIRMWARE/")) {
            return Route::Firmware(name.to_string());
        }
        if lower.starts_with("/report/") {
            return Route::Report(path["/report/".len()..].to_string());
        }
        for p in &self.patterns {
            if let Some(captures) = p.matches(path) {
                return Route::Profile { pattern: p.as_str().to_string(), captures };
            }
        }
        Route::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_PATTERNS;

    fn router() -> Router {
        Router::new(&DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn mac(s: &str) -> Option<Mac> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn default_routes() {
        let r = router();
        let route = |p: &str| r.route(&normalise(p).unwrap());
        assert_eq!(route("CTLSEP001122334455.tlv"), Route::TrustList);
        assert_eq!(route("/ITLFile.tlv"), Route::TrustList);
        assert_eq!(route("xmlDefault.CNF.XML"), Route::EnterpriseDefault);
        assert_eq!(route("SEP001122AABBCC.cnf.xml"), Route::Enterprise(mac("001122aabbcc").unwrap()));
        assert_eq!(route("Communicator/SEP001122AABBCC.cnf.xml"), Route::Enterprise(mac("001122aabbcc").unwrap()));
        assert_eq!(route("/profile/abc123/V03.cfg"), Route::EncryptedProfile("abc123".into()));
        assert_eq!(route("/firmware/sip88xx.loads"), Route::Firmware("sip88xx.loads".into()));
        assert_eq!(route("/report/001122aabbcc.xml"), Route::Report("001122aabbcc.xml".into()));
        let Route::Profile { captures, pattern } = route("/0011223344AA.xml") else { panic!() };
        assert_eq!((captures.mac, pattern.as_str()), (mac("0011223344aa"), "/{mac}.xml"));
        let Route::Profile { captures, .. } = route("CP-8841-3PCC/0011223344aa.cfg") else { panic!() };
        assert_eq!(captures.model.as_deref(), Some("CP-8841-3PCC"));
        assert_eq!(captures.mac, mac("0011223344aa"));
        let Route::Profile { captures, pattern } = route("/V03.xml") else { panic!() };
        assert_eq!((captures.mac, pattern.as_str()), (None, "/{any}.xml"));
        assert_eq!(route("/a/b/c.txt"), Route::Unknown);
        assert_eq!(normalise("../etc/passwd"), None);
        assert_eq!(normalise("a\\b"), None);
        assert_eq!(normalise("/x.xml?y=1").as_deref(), Some("/x.xml"));
    }

    /// The rule `normalise` implements, written plainly with `str`'s searchers.
    fn normalise_model(name: &str) -> Option<String> {
        let name = name.split(['?', '#']).next().unwrap_or("");
        if name.contains(['\0', '\\']) {
            return None;
        }
        let mut name = name.trim_start_matches('/');
        for prefix in ["Communicator/", "communicator/"] {
            name = name.strip_prefix(prefix).unwrap_or(name);
        }
        if name.split('/').any(|s| s == "..") {
            return None;
        }
        Some(format!("/{name}"))
    }

    proptest::proptest! {
        #[test]
        fn normalise_is_its_rule(name in "(/|\\.|\\.\\.|[?#]|\\\\|\u{0}|Communicator/|communicator/|[a-zA-Z0-9_.-]{1,6}|é){0,12}") {
            proptest::prop_assert_eq!(normalise(&name).map(std::borrow::Cow::into_owned), normalise_model(&name));
        }
    }

    #[test]
    fn pattern_errors() {
        assert!(Pattern::parse("x.xml").is_err());
        assert!(Pattern::parse("/{mac").is_err());
        assert!(Pattern::parse("/{serial}.xml").is_err());
        assert!(Pattern::parse("/{model}{mac}.xml").is_err());
        let p = Pattern::parse("/cisco/{mac}-{any}.cfg").unwrap();
        assert_eq!(p.matches("/CISCO/001122334455-x.cfg").unwrap().mac, mac("001122334455"));
        assert!(p.matches("/cisco/00112233445-x.cfg").is_none());
    }
}
