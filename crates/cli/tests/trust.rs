//! `provisor trust` against real peers: signatures from Provisor verify with `openssl dgst -verify`, `openssl
//! pkeyutl` unwraps an `.enc.sgn` key and `openssl enc -d -aes-128-cbc` opens its body; the golden files of
//! `../shared/reference/test-vectors/cucm-tlv/` verify and decrypt through the CLI; a new trust list is taken only
//! when a SAST of the old one signed it.

mod common;
use common::{ok, peer, provisor, s};

use std::path::{Path, PathBuf};
use std::process::Output;

use provisor_trust::Header;

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/test-vectors/cucm-tlv")
}

/// Splits a signed file into (what the signature covers, the signature), by its header.
fn signed_parts(data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let h = Header::parse(data).unwrap();
    (h.signed_bytes(data), h.signature)
}

/// `openssl dgst -<digest> -verify <pubkey of cert> -signature sig data`.
fn openssl_verifies(dir: &Path, cert: &Path, file: &Path, digest: &str) -> bool {
    let data = std::fs::read(file).unwrap();
    let (covered, sig) = signed_parts(&data);
    let (d, g, p) = (dir.join("covered.bin"), dir.join("sig.bin"), dir.join("pub.pem"));
    std::fs::write(&d, covered).unwrap();
    std::fs::write(&g, sig).unwrap();
    let pubkey = ok(peer("openssl", &["x509", "-in", s(cert), "-pubkey", "-noout"], None)).stdout;
    std::fs::write(&p, pubkey).unwrap();
    let out = peer("openssl", &["dgst", &format!("-{digest}"), "-verify", s(&p), "-signature", s(&g), s(&d)], None);
    out.status.success() && text(&out).contains("Verified OK")
}

#[test]
fn openssl_verifies_what_provisor_signs_and_opens_what_it_encrypts() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("trust");
    ok(provisor(&["trust", "init", s(&site), "--host", "127.0.0.1"]));
    use std::os::unix::fs::PermissionsExt;
    for f in ["sast1.pem", "sast2.pem", "tftp.pem", "tftp-ec.pem"] {
        assert_eq!(std::fs::metadata(site.join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
    }
    // The ITL: signer version 1.1, SAST1 signs, SAST2, TFTP and TFTP-EC listed; openssl agrees with the signature.
    let itl = site.join("ITLFile.tlv");
    let shown: serde_json::Value =
        serde_json::from_slice(&ok(provisor(&["trust", "show", s(&itl), "--json"])).stdout).unwrap();
    assert_eq!(shown["signer_version"], "1.1");
    let roles: Vec<&str> = shown["records"].as_array().unwrap().iter().map(|r| r["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["SAST", "SAST", "TFTP", "TFTP"]);
    assert_eq!(shown["records"][3]["key"], "EC P-256");
    assert!(openssl_verifies(dir.path(), &site.join("sast1.pem"), &itl, "sha1"));

    // A signed config, SHA-1 and SHA-512: openssl verifies both; `trust verify` against the ITL too.
    let config = dir.path().join("SEP001122334466.cnf.xml");
    let plain = std::fs::read(vectors().join("enc/plain-SEP001122334466.cnf.xml")).unwrap();
    std::fs::write(&config, &plain).unwrap();
    for digest in ["sha1", "sha512"] {
        let out = dir.path().join(format!("signed-{digest}.sgn"));
        ok(provisor(&[
            "trust",
            "sign",
            s(&config),
            "--signer",
            s(&site.join("tftp.pem")),
            "-o",
            s(&out),
            "--digest",
            digest,
        ]));
        assert!(openssl_verifies(dir.path(), &site.join("tftp.pem"), &out, digest), "{digest}");
        let v = provisor(&["trust", "verify", s(&out), "--itl", s(&itl)]);
        assert!(v.status.success() && String::from_utf8_lossy(&v.stdout).trim() == "valid", "{}", text(&v));
        // Changed by one byte: invalid, exit 1.
        let mut bad = std::fs::read(&out).unwrap();
        let last = bad.len() - 2;
        bad[last] ^= 1;
        std::fs::write(&out, &bad).unwrap();
        let v = provisor(&["trust", "verify", s(&out), "--itl", s(&itl)]);
        assert_eq!(v.status.code(), Some(1), "{}", text(&v));
        assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "invalid");
    }
    // Nothing to verify against: a usage error, exit 2.
    let v = provisor(&["trust", "verify", s(&dir.path().join("signed-sha1.sgn"))]);
    assert_eq!(v.status.code(), Some(2), "{}", text(&v));

    // Encrypted to the phone: openssl unwraps the key with the phone's private key and decrypts the body.
    let phone = vectors().join("enc/phone.pem");
    let out = dir.path().join("enc");
    ok(provisor(&[
        "trust",
        "encrypt",
        s(&config),
        "--signer",
        s(&site.join("tftp.pem")),
        "--phone-cert",
        s(&phone),
        "-o",
        s(&out),
    ]));
    let enc = std::fs::read(out.join("SEP001122334466.cnf.xml.enc.sgn")).unwrap();
    let h = Header::parse(&enc).unwrap();
    let e = h.encryption.clone().unwrap();
    std::fs::write(dir.path().join("wrapped.bin"), &e.wrapped_key).unwrap();
    let key = ok(peer(
        "openssl",
        &[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            s(&phone),
            "-in",
            s(&dir.path().join("wrapped.bin")),
            "-pkeyopt",
            "rsa_padding_mode:pkcs1",
        ],
        None,
    ))
    .stdout;
    assert_eq!(key.len(), 16);
    std::fs::write(dir.path().join("body.bin"), &enc[h.length..]).unwrap();
    let hexs = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let opened = ok(peer(
        "openssl",
        &[
            "enc",
            "-d",
            "-aes-128-cbc",
            "-K",
            &hexs(&key),
            "-iv",
            &hexs(&e.iv),
            "-nopad",
            "-in",
            s(&dir.path().join("body.bin")),
        ],
        None,
    ))
    .stdout;
    assert_eq!(&opened[..opened.len() - e.padding as usize], &plain[..]);
    assert!(opened[plain.len()..].iter().all(|b| *b == b'\r'), "padded with CR");
    assert!(openssl_verifies(dir.path(), &site.join("tftp.pem"), &out.join("SEP001122334466.cnf.xml.enc.sgn"), "sha1"));
    // The stub beside it holds no secret and names the phone certificate's MD5.
    let stub = ok(provisor(&["trust", "strip", s(&out.join("SEP001122334466.cnf.xml.sgn")), "-o", "-"])).stdout;
    let stub = String::from_utf8(stub).unwrap();
    assert!(
        !stub.contains("s3cret") && stub.contains("<certHash>b755a611ef7b53e7a4f30769e8e8e3c2</certHash>"),
        "{stub}"
    );
    // And provisor decrypts it back.
    let back = ok(provisor(&[
        "trust",
        "decrypt",
        s(&out.join("SEP001122334466.cnf.xml.enc.sgn")),
        "--phone-key",
        s(&phone),
        "-o",
        "-",
    ]))
    .stdout;
    assert_eq!(back, plain);
}

#[test]
fn a_new_trust_list_is_taken_only_when_a_sast_of_the_old_one_signed_it() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("trust");
    ok(provisor(&["trust", "init", s(&site)]));
    let old = site.join("ITLFile.tlv");
    // Rotation: SAST2 signs the new list (keeping SAST1 as the second SAST): a phone holding the old list takes it.
    let rotated = dir.path().join("rotated.tlv");
    ok(provisor(&[
        "trust",
        "itl",
        "-o",
        s(&rotated),
        "--sast",
        s(&site.join("sast2.pem")),
        "--sast",
        s(&site.join("sast1.pem")),
        "--tftp",
        s(&site.join("tftp.pem")),
        "--name",
        "ITLFile.tlv",
    ]));
    let v = provisor(&["trust", "verify", s(&rotated), "--itl", s(&old)]);
    assert!(v.status.success(), "{}", text(&v));
    // A stranger's SAST: not taken.
    let other = dir.path().join("other");
    ok(provisor(&["trust", "init", s(&other)]));
    let v = provisor(&["trust", "verify", s(&other.join("ITLFile.tlv")), "--itl", s(&old)]);
    assert_eq!(v.status.code(), Some(1));
    assert!(text(&v).contains("not a SAST of the trust list the phone holds"), "{}", text(&v));
    // A third SAST is refused; trust init never writes over keys.
    let o = provisor(&[
        "trust",
        "itl",
        "-o",
        s(&dir.path().join("x.tlv")),
        "--sast",
        s(&site.join("sast1.pem")),
        "--sast",
        s(&site.join("sast2.pem")),
        "--sast",
        s(&other.join("sast1.pem")),
    ]);
    assert!(!o.status.success() && text(&o).contains("at most 2"), "{}", text(&o));
    let o = provisor(&["trust", "init", s(&site)]);
    assert!(!o.status.success() && text(&o).contains("not empty"), "{}", text(&o));
}

#[test]
fn the_golden_files_verify_and_decrypt_through_the_cli() {
    let v = vectors();
    for (file, args) in [
        ("ITLFile.tlv", vec![]),
        ("enc/ITLFile-v1.1.tlv", vec![]),
        ("SEP001122334455.cnf.xml.sgn", vec!["--cert", "tftp.crt"]),
        ("enc/SEP001122334466.cnf.xml.sgn", vec!["--cert", "enc/tftp.pem"]),
        ("enc/SEP001122334466.cnf.xml.enc.sgn", vec!["--itl", "enc/ITLFile-v1.1.tlv"]),
    ] {
        let path = v.join(file);
        let args: Vec<String> =
            args.iter().map(|a| if a.starts_with("--") { a.to_string() } else { s(&v.join(a)).to_string() }).collect();
        let mut all = vec!["trust", "verify", s(&path)];
        all.extend(args.iter().map(String::as_str));
        let o = provisor(&all);
        assert!(o.status.success(), "{file}: {}", text(&o));
        // show never fails on them.
        ok(provisor(&["trust", "show", s(&path), "--json"]));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plain.xml");
    ok(provisor(&[
        "trust",
        "decrypt",
        s(&v.join("enc/SEP001122334466.cnf.xml.enc.sgn")),
        "--phone-key",
        s(&v.join("enc/phone.pem")),
        "-o",
        s(&out),
    ]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(v.join("enc/plain-SEP001122334466.cnf.xml")).unwrap());
    // With another key: a clear error, nothing written.
    let out2 = dir.path().join("no.xml");
    let o = provisor(&[
        "trust",
        "decrypt",
        s(&v.join("enc/SEP001122334466.cnf.xml.enc.sgn")),
        "--phone-key",
        s(&v.join("enc/sast.pem")),
        "-o",
        s(&out2),
    ]);
    assert!(!o.status.success() && text(&o).contains("another phone"), "{}", text(&o));
    assert!(!out2.exists());
}

#[test]
fn enterprise_phones_fetch_the_itl_signed_and_encrypted_configs_over_tftp_and_http() {
    use common::serve::{BASE_CONFIG, Pki, Server};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("firmware")).unwrap();
    Pki::new(d, "test-ca");
    ok(provisor(&["trust", "init", s(&d.join("trust")), "--host", "127.0.0.1"]));
    let data = s(&d.join("data")).to_string();
    let mac = "001122334466";
    ok(provisor(&["group", "--data-dir", &data, "put", "defaults", "--param", "Proxy_1_=cucm.example.com"]));
    ok(provisor(&[
        "device",
        "--data-dir",
        &data,
        "add",
        mac,
        "--model",
        "CP-8845",
        "--param",
        "User_ID_1_=2001",
        "--param",
        "Password_1_=s3cret-line-1",
    ]));
    let phone = vectors().join("enc/phone.pem");
    ok(provisor(&["device", "--data-dir", &data, "set", mac, "--cert", s(&phone)]));
    let config = format!(
        "{BASE_CONFIG}[enterprise]\ntrust_dir = \"trust\"\nhttp_listen = \"127.0.0.1:0\"\nhttps_listen = \"127.0.0.1:0\"\n"
    );
    let server = Server::start_with(d, &config);
    let log = server.log.lock().unwrap().clone();
    let url = |label: &str| {
        log.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(|rest| rest.trim().to_string()))
            .unwrap_or_else(|| panic!("the banner's {label} line: {log}"))
    };
    let (ent_http, ent_https) = (url("ent-http "), url("ent-https "));
    let itl = d.join("trust/ITLFile.tlv");
    let upper = mac.to_uppercase();

    // TFTP (tftp-hpa): the ITL as trust init wrote it, and the signed stub, which verifies against it.
    assert_eq!(server.tftp_hpa("/ITLFile.tlv"), std::fs::read(&itl).unwrap());
    let sgn = d.join("stub.sgn");
    std::fs::write(&sgn, server.tftp_hpa(&format!("/SEP{upper}.cnf.xml.sgn"))).unwrap();
    let v = provisor(&["trust", "verify", s(&sgn), "--itl", s(&itl)]);
    assert!(v.status.success(), "{}", text(&v));
    let stub = String::from_utf8(ok(provisor(&["trust", "strip", s(&sgn), "-o", "-"])).stdout).unwrap();
    assert!(stub.contains("<encrConfig>true</encrConfig>") && !stub.contains("s3cret"), "{stub}");
    // HTTP on the enterprise port (curl): the encrypted config opens with the phone's key only.
    let (status, _, enc) = server.curl(&[&format!("{ent_http}/SEP{upper}.cnf.xml.enc.sgn")]);
    assert_eq!(status, 200);
    let enc_path = d.join("cfg.enc.sgn");
    std::fs::write(&enc_path, &enc).unwrap();
    assert!(provisor(&["trust", "verify", s(&enc_path), "--itl", s(&itl)]).status.success());
    let opened = ok(provisor(&["trust", "decrypt", s(&enc_path), "--phone-key", s(&phone), "-o", "-"])).stdout;
    let opened = String::from_utf8(opened).unwrap();
    assert!(
        opened.contains("<authPassword>s3cret-line-1</authPassword>") && opened.contains("cucm.example.com"),
        "{opened}"
    );
    // HTTPS on 6971 with the trust directory's EC certificate: a config's .sgn is the unsigned file.
    let (status, _, plain) = server.curl(&["-k", &format!("{ent_https}/SEP{upper}.cnf.xml.sgn")]);
    assert_eq!((status, String::from_utf8_lossy(&plain).to_string()), (200, stub.clone()));
    let cert = common::peer(
        "sh",
        &[
            "-c",
            &format!(
                "echo | openssl s_client -connect {} 2>/dev/null | openssl x509 -noout -text",
                ent_https.trim_start_matches("https://")
            ),
        ],
        None,
    );
    assert!(text(&cert).contains("id-ecPublicKey") && text(&cert).contains("TFTP-EC"), "{}", text(&cert));
    // A trust list of the device's own (device set --itl): served as ITLSEP<MAC>.tlv; other devices have none.
    let own = d.join("own.tlv");
    ok(provisor(&[
        "trust",
        "itl",
        "-o",
        s(&own),
        "--sast",
        s(&d.join("trust/sast2.pem")),
        "--tftp",
        s(&d.join("trust/tftp.pem")),
        "--name",
        "ITLFile.tlv",
    ]));
    ok(provisor(&["device", "--data-dir", &data, "set", mac, "--itl", s(&own)]));
    let (status, _, body) = server.curl(&[&format!("{ent_http}/ITLSEP{upper}.tlv")]);
    assert_eq!((status, body), (200, std::fs::read(&own).unwrap()));
    assert_eq!(server.curl(&[&format!("{ent_http}/ITLSEP000E08AABB99.tlv")]).0, 404);
    // A file that is not a valid trust list is refused before anything is kept.
    let o = provisor(&["device", "--data-dir", &data, "set", mac, "--itl", s(&d.join("trust/tftp.pem"))]);
    assert!(!o.status.success(), "{}", text(&o));
    // A dial plan the site does not have: "not found" at once, never a profile.
    let (status, _, _) = server.curl(&[&format!("{ent_http}/dialplan.xml")]);
    assert_eq!(status, 404);
    // The audit log says which form went out, signed by whom.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut audit_log = String::new();
    while !audit_log.contains("dialplan.xml") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        audit_log = std::fs::read_to_string(d.join("data/audit.log")).unwrap_or_default();
    }
    assert!(audit_log.contains("signed by CN=TFTP,O=Provisor,OU=Provisor"), "{audit_log}");
    assert!(audit_log.contains("encrypted to CN=CP-8845-SEP001122334466"), "{audit_log}");
}

#[test]
fn repack_edits_an_encrypted_config_by_element_path_and_keeps_its_layers() {
    let v = vectors();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("SEP001122334466.cnf.xml.enc.sgn");
    ok(provisor(&[
        "profile",
        "repack",
        s(&v.join("enc/SEP001122334466.cnf.xml.enc.sgn")),
        "-o",
        s(&out),
        "--signer",
        s(&v.join("enc/tftp.pem")),
        "--phone-key",
        s(&v.join("enc/phone.pem")),
        "--set",
        "loadInformation=sip8845_65.14-2-1",
        "--set",
        "sipProfile/sipLines/line[1]/authPassword=n3w&pw",
    ]));
    // Still encrypted to the phone and signed by the TFTP signer of the ITL, under the same name.
    let v11 = s(&v.join("enc/ITLFile-v1.1.tlv")).to_string();
    assert!(provisor(&["trust", "verify", s(&out), "--itl", &v11]).status.success());
    let shown: serde_json::Value =
        serde_json::from_slice(&ok(provisor(&["trust", "show", s(&out), "--json"])).stdout).unwrap();
    assert_eq!(shown["filename"], "SEP001122334466.cnf.xml.enc.sgn");
    assert_eq!(shown["encryption"]["cipher"], "aes-128-cbc");
    let plain =
        ok(provisor(&["trust", "decrypt", s(&out), "--phone-key", s(&v.join("enc/phone.pem")), "-o", "-"])).stdout;
    let expected = String::from_utf8(std::fs::read(v.join("enc/plain-SEP001122334466.cnf.xml")).unwrap())
        .unwrap()
        .replace("sip8845_65.14-1-1SR1-1", "sip8845_65.14-2-1")
        .replace("s3cret-line-1", "n3w&amp;pw");
    assert_eq!(String::from_utf8(plain).unwrap(), expected, "everything else byte for byte");
    // The signed stub: re-signed with the edit.
    let stub = dir.path().join("stub.sgn");
    ok(provisor(&[
        "profile",
        "repack",
        s(&v.join("enc/SEP001122334466.cnf.xml.sgn")),
        "-o",
        s(&stub),
        "--signer",
        s(&v.join("enc/tftp.pem")),
        "--set",
        "loadInformation=sip8845_65.14-2-1",
    ]));
    assert!(provisor(&["trust", "verify", s(&stub), "--itl", &v11]).status.success());
    let inside = String::from_utf8(ok(provisor(&["trust", "strip", s(&stub), "-o", "-"])).stdout).unwrap();
    assert!(inside.contains("<loadInformation>sip8845_65.14-2-1</loadInformation>"), "{inside}");
    // A path that names nothing: an error, nothing written.
    let bad = dir.path().join("bad.sgn");
    let o = provisor(&[
        "profile",
        "repack",
        s(&v.join("enc/SEP001122334466.cnf.xml.sgn")),
        "-o",
        s(&bad),
        "--signer",
        s(&v.join("enc/tftp.pem")),
        "--set",
        "sipProfile/nothing=1",
    ]);
    assert!(!o.status.success() && text(&o).contains("no such element"), "{}", text(&o));
    assert!(!bad.exists());
}
