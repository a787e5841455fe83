//! What a site's DHCP server must tell phones, for ISC Kea, dnsmasq and ISC dhcpd.
//!
//! - Enterprise phones read option 150 (Cisco: a list of TFTP servers' IPv4 addresses), else option 66
//!   (`tftp-server-name`), and ask that server for their files over TFTP (specs.md §5.1; Cisco "dhcp-options").
//! - MPP phones try the options in `DHCP_Option_To_Use` order (`66,160,159,150,60,43,125`, specs.md §4.2). Option 66
//!   or 160 holding a URL becomes the phone's first profile rule; a bare address in 66 makes it fetch its default
//!   `Profile_Rule` (`/$PSN.xml`) over TFTP from there. The URL given here is the bootstrap URL of the site's plain
//!   HTTP listener (`/$MA.xml`): an unprovisioned phone does not trust the site's HTTPS certificate yet.
//! - Which kind of phone asks is told by its vendor class (option 60): Cisco phones send
//!   `Cisco Systems, Inc. IP Phone <model>` (enterprise `CP-8841`, Multiplatform `CP-8841-3PCC`). Without models,
//!   two classes split them by the `3PCC` suffix; with `models`, one class per model matches the whole string.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::config::Config;
use crate::inventory::is_enterprise_model;

/// The vendor class (option 60) prefix Cisco phones send.
pub const VENDOR_CLASS: &str = "Cisco Systems, Inc. IP Phone";

/// Which DHCP server to write for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhcpServer {
    /// ISC Kea (`Dhcp4` JSON members).
    Kea,
    /// dnsmasq.
    Dnsmasq,
    /// ISC dhcpd.
    Isc,
}

/// What to announce.
#[derive(Clone, Debug)]
pub struct Announce {
    /// The address phones reach the server at (option 150 needs an IPv4 address).
    pub server_ip: Ipv4Addr,
    /// The MPP bootstrap URL (options 66 and 160), if the site has an HTTP listener.
    pub mpp_url: Option<String>,
    /// One class per model, instead of the two generic classes.
    pub models: Vec<String>,
}

impl Announce {
    /// What `config` serves: its HTTP listener's bootstrap URL, with `public_host` (or `server_ip` when that is empty).
    pub fn for_site(config: &Config, server_ip: Ipv4Addr, models: Vec<String>) -> Announce {
        let host = if config.public_host.is_empty() { server_ip.to_string() } else { config.public_host.clone() };
        let mpp_url = config.http.listen.map(|a| match a.port() {
            80 => format!("http://{host}/$MA.xml"),
            p => format!("http://{host}:{p}/$MA.xml"),
        });
        Announce { server_ip, mpp_url, models }
    }
}

/// A class of phones and what it is sent.
struct Class {
    name: String,
    /// The whole vendor class, or `None` for a generic class (prefix, split by the `3PCC` suffix).
    exact: Option<String>,
    enterprise: bool,
}

fn classes(a: &Announce) -> Vec<Class> {
    if a.models.is_empty() {
        return vec![
            Class { name: "cisco-enterprise".into(), exact: None, enterprise: true },
            Class { name: "cisco-mpp".into(), exact: None, enterprise: false },
        ];
    }
    a.models
        .iter()
        .map(|m| Class {
            name: format!("cisco-{}", m.to_ascii_lowercase()),
            exact: Some(format!("{VENDOR_CLASS} {m}")),
            enterprise: is_enterprise_model(m),
        })
        .collect()
}

/// The configuration snippet.
pub fn snippet(server: DhcpServer, a: &Announce) -> String {
    match server {
        DhcpServer::Kea => kea(a),
        DhcpServer::Dnsmasq => dnsmasq(a),
        DhcpServer::Isc => isc(a),
    }
}

fn kea(a: &Announce) -> String {
    let ip = a.server_ip;
    let mut classes_json = Vec::new();
    for c in classes(a) {
        let test = match (&c.exact, c.enterprise) {
            (Some(v), _) => format!("option[60].text == '{v}'"),
            (None, enterprise) => format!(
                "substring(option[60].text,0,{}) == '{VENDOR_CLASS}' and {}(substring(option[60].text,-4,all) == \
                 '3PCC')",
                VENDOR_CLASS.len(),
                if enterprise { "not " } else { "" }
            ),
        };
        let data = if c.enterprise {
            format!(
                r#"{{ "name": "cisco-tftp-servers", "code": 150, "data": "{ip}" }}, {{ "name": "tftp-server-name", "code": 66, "data": "{ip}" }}"#
            )
        } else {
            match &a.mpp_url {
                Some(url) => format!(
                    r#"{{ "name": "tftp-server-name", "code": 66, "data": "{url}" }}, {{ "name": "cisco-provisioning-url", "code": 160, "data": "{url}" }}"#
                ),
                None => format!(r#"{{ "name": "tftp-server-name", "code": 66, "data": "{ip}" }}"#),
            }
        };
        classes_json.push(format!(
            "    {{\n      \"name\": \"{}\",\n      \"test\": \"{test}\",\n      \"option-data\": [ {data} ]\n    }}",
            c.name
        ));
    }
    format!(
        "// Kea DHCPv4: add these members to \"Dhcp4\" (options 150 and 160 need their definitions first).\n\
         \"option-def\": [\n\
         \x20   {{ \"name\": \"cisco-tftp-servers\", \"code\": 150, \"type\": \"ipv4-address\", \"array\": true, \"space\": \"dhcp4\" }},\n\
         \x20   {{ \"name\": \"cisco-provisioning-url\", \"code\": 160, \"type\": \"string\", \"space\": \"dhcp4\" }}\n\
         ],\n\
         \"client-classes\": [\n{}\n]\n",
        classes_json.join(",\n")
    )
}

fn dnsmasq(a: &Announce) -> String {
    let ip = a.server_ip;
    let mut out = String::from(
        "# dnsmasq: Cisco phones by vendor class (option 60, matched as a substring); enterprise phones get option 150\n\
         # and 66 (TFTP), MPP phones option 66 and 160 (their bootstrap URL).\n",
    );
    let send = |out: &mut String, tags: &str, enterprise: bool| {
        if enterprise {
            let _ = writeln!(out, "dhcp-option={tags},150,{ip}\ndhcp-option={tags},66,\"{ip}\"");
        } else {
            match &a.mpp_url {
                Some(url) => {
                    let _ = writeln!(out, "dhcp-option={tags},66,\"{url}\"\ndhcp-option={tags},160,\"{url}\"");
                }
                None => {
                    let _ = writeln!(out, "dhcp-option={tags},66,\"{ip}\"");
                }
            }
        }
    };
    if a.models.is_empty() {
        // Quoted: the vendor class has a comma, which dnsmasq would take as a separator.
        let _ =
            writeln!(out, "dhcp-vendorclass=set:cisco-phone,\"{VENDOR_CLASS}\"\ndhcp-vendorclass=set:cisco-mpp,3PCC");
        send(&mut out, "tag:cisco-phone,tag:!cisco-mpp", true);
        send(&mut out, "tag:cisco-phone,tag:cisco-mpp", false);
    } else {
        for c in classes(a) {
            let _ = writeln!(out, "dhcp-vendorclass=set:{},\"{}\"", c.name, c.exact.as_deref().unwrap_or(VENDOR_CLASS));
            send(&mut out, &format!("tag:{}", c.name), c.enterprise);
        }
    }
    out
}

fn isc(a: &Announce) -> String {
    let ip = a.server_ip;
    let mut out = String::from(
        "# ISC dhcpd: declare options 150 and 160, then one class per kind of phone (by vendor class, option 60).\n\
         option cisco-tftp-servers code 150 = array of ip-address;\n\
         option cisco-provisioning-url code 160 = text;\n",
    );
    for c in classes(a) {
        let matching = match (&c.exact, c.enterprise) {
            (Some(v), _) => format!("option vendor-class-identifier = \"{v}\""),
            (None, enterprise) => format!(
                "substring(option vendor-class-identifier, 0, {}) = \"{VENDOR_CLASS}\" and {}(suffix(option \
                 vendor-class-identifier, 4) = \"3PCC\")",
                VENDOR_CLASS.len(),
                if enterprise { "not " } else { "" }
            ),
        };
        let options = if c.enterprise {
            format!("  option cisco-tftp-servers {ip};\n  option tftp-server-name \"{ip}\";\n")
        } else {
            match &a.mpp_url {
                Some(url) => {
                    format!("  option tftp-server-name \"{url}\";\n  option cisco-provisioning-url \"{url}\";\n")
                }
                None => format!("  option tftp-server-name \"{ip}\";\n"),
            }
        };
        let _ = write!(out, "class \"{}\" {{\n  match if {matching};\n{options}}}\n", c.name);
    }
    out
}
