//! The syslog lines a phone sends around a resync or upgrade: `Log_Request_Msg`, `Log_Success_Msg`,
//! `Log_Failure_Msg` (and the `Log_Upgrade_*` variants), macro-expanded with the fetch's `SCHEME`, `SERV`, `SERVIP`,
//! `PORT`, `PATH` and `ERR` (Cisco "Provisioning Formats", *Macro Expansion*; defaults in `specs.md` §4.1).

use crate::macros::{Context, Variables, expand};
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
    let mut v = vars.clone();
    v.set("SCHEME", fetch.url.scheme.as_str())
        .set("METH", fetch.url.scheme.as_str())
        .set("SERV", fetch.url.host.as_str())
        .set("SERVIP", fetch.server_ip)
        .set("PORT", fetch.url.port.to_string())
        .set("PATH", fetch.url.path.as_str())
        .set("ERR", fetch.error);
    expand(template, &v, Context::General)
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
}
