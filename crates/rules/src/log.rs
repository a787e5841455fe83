//! The syslog lines a phone sends around a resync or upgrade: `Log_Request_Msg`, `Log_Success_Msg`,
//! `Log_Failure_Msg` (and the `Log_Upgrade_*` variants), macro-expanded with the fetch's `SCHEME`, `SERV`, `SERVIP`,
//! `PORT`, `PATH` and `ERR` (Cisco "Provisioning Formats", *Macro Expansion*; defaults in `specs.md` §4.1).

use crate::macros::{Context, Variables, expand_over};
use crate::url::Url;

/// The fetch a log line describes.
#[derive(Debug, Clone, Copy)]
pub struct Fetch<'a> {
    /// The URL being fetched.
    pub url: &'a Url,
    /// The server's IP address after name resolution (the host itself if it is an address).
    pub server_ip: &'a str,
    /// The result message (`ERR`), empty before the fetch.
    pub error: &'a str,
}

/// Expands a log template for `fetch`, on top of the phone's other variables.
pub fn message(template: &str, vars: &Variables, fetch: &Fetch<'_>) -> String {
    let port = fetch.url.port.to_string();
    let over = [
        ("SCHEME", fetch.url.scheme.as_str()),
        ("METH", fetch.url.scheme.as_str()),
        ("SERV", fetch.url.host.as_str()),
        ("SERVIP", fetch.server_ip),
        ("PORT", port.as_str()),
        ("PATH", fetch.url.path.as_str()),
        ("ERR", fetch.error),
    ];
    expand_over(template, vars, &over, Context::General)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::parse;

    #[test]
    fn default_templates() {
        let mut v = Variables::new();
        v.set("PN", "CP-8841-3PCC").set("MA", "000e08012345");
        let url = parse("http://prov.example.com/cisco/000e08012345.cfg", None).unwrap();
        let f = Fetch { url: &url, server_ip: "192.0.2.10", error: "" };
        assert_eq!(
            message("$PN $MAC -- Requesting resync $SCHEME://$SERVIP:$PORT$PATH", &v, &f),
            "CP-8841-3PCC 00:0e:08:01:23:45 -- Requesting resync http://192.0.2.10:80/cisco/000e08012345.cfg"
        );
        let f = Fetch { error: "http_get failed", ..f };
        assert_eq!(
            message("$PN $MAC -- Resync failed: $ERR", &v, &f),
            "CP-8841-3PCC 00:0e:08:01:23:45 -- Resync failed: http_get failed"
        );
        assert_eq!(message("$SERV $METH", &v, &f), "prov.example.com http");
    }

    /// The fetch's variables are laid over the phone's without copying them: the result is what setting them on a
    /// copy gives, a fetch variable the phone also has is the fetch's, and the secrets stay unexpanded.
    #[test]
    fn fetch_variables_over_the_phones() {
        let mut v = Variables::new();
        v.set("PN", "CP-8841-3PCC").set("MA", "000e08012345").set("SA", "secret").set("PATH", "stale").set("A", "x");
        let url = parse("https://prov.example.com:8443/p/$MA.xml", None).unwrap();
        let f = Fetch { url: &url, server_ip: "192.0.2.10", error: "timeout" };
        let mut copy = v.clone();
        copy.set("SCHEME", "https")
            .set("METH", "https")
            .set("SERV", "prov.example.com")
            .set("SERVIP", "192.0.2.10")
            .set("PORT", "8443")
            .set("PATH", url.path.as_str())
            .set("ERR", "timeout");
        for template in [
            "$PN $MAC $SCHEME://$SERV:$PORT$PATH ($SERVIP) $ERR",
            "$(PATH:1:2) $(GPP_A) $A $SA $GPP_SA $(SA) $UNKNOWN $$PATH $METH$",
            "",
        ] {
            let want = crate::macros::expand(template, &copy, Context::General);
            assert_eq!(message(template, &v, &f), want, "{template}");
        }
        assert_eq!(message("$PATH $SA", &v, &f), format!("{} $SA", url.path));
    }
}
