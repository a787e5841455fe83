//! `provisor dhcp-snippet`: every snippet passes its DHCP server's own configuration check (`kea-dhcp4 -t`,
//! `dnsmasq --test`, `dhcpd -t`), and says what each kind of phone needs. A missing server is a failure (CI installs
//! them, see .ci/test).

mod common;

use std::path::Path;
use std::process::Output;

use common::{ok, peer, provisor, s};

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs the server's own check on `snippet` (wrapped into a whole configuration where the server needs one).
fn check(server: &str, snippet: &str, dir: &Path) -> Output {
    let file = dir.join(format!("{server}.conf"));
    match server {
        "kea" => {
            let whole = format!(
                "{{ \"Dhcp4\": {{ \"interfaces-config\": {{ \"interfaces\": [ ] }}, \"subnet4\": [ {{ \"id\": 1, \
                 \"subnet\": \"192.0.2.0/24\", \"pools\": [ {{ \"pool\": \"192.0.2.10 - 192.0.2.200\" }} ] }} ],\n{snippet}\n}} }}"
            );
            std::fs::write(&file, whole).unwrap();
            peer("/usr/sbin/kea-dhcp4", &["-t", s(&file)], None)
        }
        "dnsmasq" => {
            std::fs::write(&file, snippet).unwrap();
            peer("/usr/sbin/dnsmasq", &["--test", &format!("--conf-file={}", s(&file))], None)
        }
        _ => {
            std::fs::write(&file, snippet).unwrap();
            peer("/usr/sbin/dhcpd", &["-t", "-cf", s(&file)], None)
        }
    }
}

#[test]
fn every_snippet_passes_its_servers_own_check() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    ok(provisor(&["init", s(&site), "--identity", "mac"]));
    let config = site.join("provisor.toml");
    let url = "http://127.0.0.1:8080/$MA.xml";
    for server in ["kea", "dnsmasq", "isc"] {
        for models in [&[][..], &["--model", "CP-8841-3PCC", "--model", "CP-8845"]] {
            let mut args = vec!["dhcp-snippet", server, "--config", s(&config)];
            args.extend_from_slice(models);
            let snippet = String::from_utf8(ok(provisor(&args)).stdout).unwrap();
            let checked = check(server, &snippet, dir.path());
            assert!(checked.status.success(), "{server} {models:?} refused:\n{snippet}\n{}", text(&checked));
            // Enterprise phones: option 150 with the server's address; MPP phones: options 66 and 160 with the
            // bootstrap URL of the HTTP listener; each by vendor class.
            assert!(snippet.contains("150") && snippet.contains("127.0.0.1"), "{snippet}");
            assert!(snippet.contains("160") && snippet.matches(url).count() == 2, "{server}: {snippet}");
            assert!(snippet.contains("Cisco Systems, Inc. IP Phone"), "{snippet}");
            if !models.is_empty() {
                assert!(snippet.contains("IP Phone CP-8841-3PCC") && snippet.contains("IP Phone CP-8845"), "{snippet}");
            }
            // The check really checks: the same snippet with one option name misspelt is refused.
            let broken =
                snippet.replacen("tftp-server-name", "tftp-server-nam", 1).replacen("dhcp-option=", "dhcp-optio=", 1);
            assert!(!check(server, &broken, dir.path()).status.success(), "{server} accepted a broken snippet");
        }
    }
    // A name in public_host needs --server-ip (option 150 holds IPv4 addresses); the URL keeps the name.
    let named = dir.path().join("named.toml");
    std::fs::write(&named, "public_host = \"prov.example.com\"\n\n[http]\nlisten = \"0.0.0.0:80\"\n").unwrap();
    let o = provisor(&["dhcp-snippet", "isc", "--config", s(&named)]);
    assert!(!o.status.success() && text(&o).contains("--server-ip"), "{}", text(&o));
    let out = String::from_utf8(
        ok(provisor(&["dhcp-snippet", "isc", "--config", s(&named), "--server-ip", "192.0.2.5"])).stdout,
    )
    .unwrap();
    assert!(
        out.contains("cisco-tftp-servers 192.0.2.5") && out.contains("\"http://prov.example.com/$MA.xml\""),
        "{out}"
    );
}
