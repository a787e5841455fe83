//! Resync and upgrade URLs: `[scheme://][server[:port]]filepath`.
//!
//! Cisco "Provisioning Formats", *URL Syntax*: "If scheme is omitted, tftp is assumed. [...] The filepath must begin
//! with the root directory (/); it must be an absolute path. If server is missing, the tftp server specified through
//! DHCP (option 66) is used. [...] For upgrade rules, the server must be specified. If port is missing, the standard
//! port for the specified scheme is used. Tftp uses UDP port 69, http uses TCP port 80, https uses TCP port 443."

use serde::Serialize;

/// The transfer protocol of a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// TFTP (UDP), the default.
    Tftp,
    /// HTTP.
    Http,
    /// HTTPS.
    Https,
}

impl Scheme {
    /// The standard port.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Tftp => 69,
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `tftp`, `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tftp => "tftp",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A resolved URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Url {
    /// The scheme.
    pub scheme: Scheme,
    /// The server: a host name or IP address (IPv6 without brackets).
    pub host: String,
    /// The port (explicit or the scheme's standard port).
    pub port: u16,
    /// The absolute path, with any query (`/profile?Linksys`).
    pub path: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == self.scheme.default_port() {
            write!(f, "{}://{host}{}", self.scheme.as_str(), self.path)
        } else {
            write!(f, "{}://{host}:{}{}", self.scheme.as_str(), self.port, self.path)
        }
    }
}

/// Why a URL cannot be used; `at` is a byte offset into the (expanded) URL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    /// Byte offset of the problem in the URL text.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses an expanded URL. `dhcp_server` is the TFTP server from DHCP option 66/150 (used when no server is given;
/// `None` for upgrade rules, which must name one).
pub fn parse(text: &str, dhcp_server: Option<&str>) -> Result<Url, UrlError> {
    let err = |at: usize, message: String| UrlError { at, message };
    let (scheme, rest, rest_at) = match text.find("://") {
        Some(i) => {
            let scheme = match text[..i].to_ascii_lowercase().as_str() {
                "tftp" => Scheme::Tftp,
                "http" => Scheme::Http,
                "https" => Scheme::Https,
                "gds" => {
                    return Err(err(
                        0,
                        "gds:// starts Webex activation-code onboarding, which is not supported".into(),
                    ));
                }
                other => return Err(err(0, format!("unknown scheme {other:?}: expected tftp, http or https"))),
            };
            (scheme, &text[i + 3..], i + 3)
        }
        None => (Scheme::Tftp, text, 0),
    };
    let (authority, path, path_at) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..], rest_at + i),
        None => (rest, "", rest_at + rest.len()),
    };
    if path.is_empty() {
        return Err(err(path_at, "the URL has no file path; it must be absolute, starting with /".into()));
    }
    let (host, port) = if authority.is_empty() {
        if scheme != Scheme::Tftp && rest_at > 0 {
            return Err(err(rest_at, format!("{}:// needs a server", scheme.as_str())));
        }
        match dhcp_server {
            Some(server) => (server.to_string(), None),
            None => {
                return Err(err(
                    rest_at,
                    "no server given and none from DHCP (upgrade rules must name a server)".into(),
                ));
            }
        }
    } else if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']').ok_or_else(|| err(rest_at, "unclosed [ in the IPv6 address".into()))?;
        let after = &v6[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some((p, rest_at + close + 3)),
            None if after.is_empty() => None,
            None => return Err(err(rest_at + close + 2, "expected :port or / after the IPv6 address".into())),
        };
        (v6[..close].to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some((p, rest_at + h.len() + 1))),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '@') {
        return Err(err(rest_at, format!("{host:?} is not a server name or address")));
    }
    let port = match port {
        Some((p, at)) => p.parse::<u16>().map_err(|_| err(at, format!("port {p:?} is not a number 0..65535")))?,
        None => scheme.default_port(),
    };
    Ok(Url { scheme, host, port, path: path.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        parse(text, Some("10.0.0.1")).unwrap_or_else(|e| panic!("{text}: {}", e.message))
    }

    /// 003 *URL Syntax*: every example of a valid URL (after macro expansion).
    #[test]
    fn url_syntax_examples() {
        assert_eq!(
            url("/000e08012345.cfg"),
            Url { scheme: Scheme::Tftp, host: "10.0.0.1".into(), port: 69, path: "/000e08012345.cfg".into() }
        );
        assert_eq!(url("/cisco/cfg.xml").path, "/cisco/cfg.xml");
        let u = url("192.168.1.130/profiles/init.cfg");
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
            (Scheme::Tftp, "192.168.1.130", 69, "/profiles/init.cfg")
        );
        let u = url("tftp://prov.call.com/cpe/cisco000e08012345.cfg");
        assert_eq!((u.host.as_str(), u.port), ("prov.call.com", 69));
        let u = url("http://neptune.speak.net:8080/prov/D/E.cfg");
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
            (Scheme::Http, "neptune.speak.net", 8080, "/prov/D/E.cfg")
        );
        let u = url("https://secure.me.com/profile?Linksys");
        assert_eq!((u.scheme, u.port, u.path.as_str()), (Scheme::Https, 443, "/profile?Linksys"));
        assert_eq!(url("tftp://prov.telco.com:6900/cisco/config/CP_xxxx_MPP.cfg").port, 6900);
    }

    /// "For upgrade rules, the server must be specified."
    #[test]
    fn upgrade_urls_need_a_server() {
        assert!(parse("/sip88xx.loads", None).is_err());
        assert!(parse("http://p.tel.com/firmware/sip88xx.11-3-1MPP-678.loads", None).is_ok());
    }

    #[test]
    fn bad_urls() {
        assert!(parse("config.cfg", Some("x")).is_err(), "relative paths are rejected");
        assert!(parse("http://host", Some("x")).is_err(), "no path");
        assert!(parse("ftp://host/x", Some("x")).is_err());
        assert!(parse("http:///x", Some("x")).is_err());
        assert!(parse("http://host:99999/x", Some("x")).is_err());
        assert!(parse("gds://x/y", Some("x")).unwrap_err().message.contains("Webex"));
        let u = parse("http://[2001:db8::1]:8080/p.xml", None).unwrap();
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 8080));
        assert_eq!(u.to_string(), "http://[2001:db8::1]:8080/p.xml");
        assert_eq!(parse("HTTP://h/x", None).unwrap().scheme, Scheme::Http);
    }
}
