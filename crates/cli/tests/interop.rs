//! End-to-end tests of the `provisor` binary against real peers: the `openssl` CLI, `gzip`, and Python `http_ece`.
//! A missing peer is a failure, never a skip: CI installs them (see `.ci/run`).

mod common;
use common::{ok, peer, provisor, s};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

const PROFILE: &str = "<flat-profile>\n  <Resync_On_Reset>Yes</Resync_On_Reset>\n  <Resync_Periodic>7200</Resync_Periodic>\n  \
<Profile_Rule>[--key $B] http://prov.example.com/$MA.cfg</Profile_Rule>\n  <GPP_A ua=\"na\">x &amp; y</GPP_A>\n</flat-profile>\n";

fn write_profile(dir: &Path) -> PathBuf {
    let p = dir.join("profile.xml");
    std::fs::write(&p, PROFILE).unwrap();
    p
}

#[test]
fn our_encryption_decrypts_with_openssl_for_both_digests_with_and_without_gzip() {
    let dir = tmp();
    let xml = write_profile(dir.path());
    for md in ["sha256", "md5"] {
        for gzip in [false, true] {
            let out = dir.path().join(format!("p-{md}-{gzip}.cfg"));
            let mut args = vec!["profile", "encrypt", s(&xml), "-o", s(&out), "--key", "SecretPhrase1234", "--md", md];
            if gzip {
                args.push("--gzip");
            }
            ok(provisor(&args));
            let dec = ok(peer(
                "openssl",
                &["enc", "-d", "-aes-256-cbc", "-md", md, "-k", "SecretPhrase1234", "-in", s(&out)],
                None,
            ));
            let plain = if gzip { ok(peer("gzip", &["-dc"], Some(&dec.stdout))).stdout } else { dec.stdout };
            assert_eq!(String::from_utf8(plain).unwrap(), PROFILE, "md {md} gzip {gzip}");
        }
    }
}

#[test]
fn openssl_encryption_decrypts_with_ours_for_both_digests_with_and_without_gzip() {
    let dir = tmp();
    let xml = write_profile(dir.path());
    let gz = dir.path().join("profile.xml.gz");
    std::fs::write(&gz, ok(peer("gzip", &["-c", s(&xml)], None)).stdout).unwrap();
    for md in ["sha256", "md5"] {
        for input in [&xml, &gz] {
            let out = dir.path().join("o.cfg");
            ok(peer(
                "openssl",
                &["enc", "-e", "-aes-256-cbc", "-md", md, "-k", "SecretPhrase1234", "-in", s(input), "-out", s(&out)],
                None,
            ));
            // --md auto finds the digest by itself.
            let dec = dir.path().join("o.xml");
            ok(provisor(&["profile", "decrypt", s(&out), "-o", s(&dec), "--key", "SecretPhrase1234"]));
            assert_eq!(std::fs::read_to_string(&dec).unwrap(), PROFILE, "md {md} {}", input.display());
            let parsed =
                ok(provisor(&["profile", "parse", s(&out), "--key", "SecretPhrase1234", "--md", md, "--json"]));
            let json: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
            assert_eq!(json["GPP_A"]["value"], "x & y");
            assert_eq!(json["GPP_A"]["ua"], "na");
            assert_eq!(json["Resync_Periodic"]["ua"], serde_json::Value::Null);
        }
    }
}

#[test]
fn openssl_nosalt_and_pbkdf2_interoperate() {
    let dir = tmp();
    let xml = write_profile(dir.path());
    let out = dir.path().join("n.cfg");
    ok(provisor(&["profile", "encrypt", s(&xml), "-o", s(&out), "--key", "k", "--md", "md5", "--nosalt"]));
    let dec =
        ok(peer("openssl", &["enc", "-d", "-aes-256-cbc", "-md", "md5", "-nosalt", "-k", "k", "-in", s(&out)], None));
    assert_eq!(dec.stdout, PROFILE.as_bytes());
    ok(provisor(&["profile", "encrypt", s(&xml), "-o", s(&out), "--key", "k", "--pbkdf2", "--iter", "1000"]));
    let dec = ok(peer(
        "openssl",
        &["enc", "-d", "-aes-256-cbc", "-pbkdf2", "-iter", "1000", "-k", "k", "-in", s(&out)],
        None,
    ));
    assert_eq!(dec.stdout, PROFILE.as_bytes());
    // openssl -nosalt output is read back when the key is given.
    ok(peer(
        "openssl",
        &["enc", "-e", "-aes-256-cbc", "-md", "sha256", "-nosalt", "-k", "k", "-in", s(&xml), "-out", s(&out)],
        None,
    ));
    let dec = dir.path().join("n.xml");
    ok(provisor(&["profile", "decrypt", s(&out), "-o", s(&dec), "--key", "k"]));
    assert_eq!(std::fs::read_to_string(&dec).unwrap(), PROFILE);
}

const ECE_DECRYPT: &str = "import sys, http_ece\n\
data = open(sys.argv[1], 'rb').read()\n\
sys.stdout.buffer.write(http_ece.decrypt(data, key=bytes.fromhex(sys.argv[2]), version='aes128gcm'))\n";

const ECE_ENCRYPT: &str = "import sys, os, http_ece\n\
data = open(sys.argv[1], 'rb').read()\n\
out = http_ece.encrypt(data, salt=os.urandom(16), key=bytes.fromhex(sys.argv[2]), rs=int(sys.argv[3]), keyid=sys.argv[4], version='aes128gcm')\n\
open(sys.argv[5], 'wb').write(out)\n";

#[test]
fn http_ece_decrypts_our_aes128gcm_and_we_decrypt_its_output() {
    let dir = tmp();
    let xml = write_profile(dir.path());
    let ikm = "000102030405060708090a0b0c0d0e0f";
    for (rs, keyid, gzip) in [("4096", "", false), ("40", "a1", false), ("18", "", true), ("100", "k", true)] {
        let out = dir.path().join("e.cfg");
        let mut args = vec!["profile", "encrypt", s(&xml), "-o", s(&out), "--ikm", ikm, "--rs", rs, "--keyid", keyid];
        if gzip {
            args.push("--gzip");
        }
        ok(provisor(&args));
        let dec = ok(peer("python3", &["-c", ECE_DECRYPT, s(&out), ikm], None)).stdout;
        let plain = if gzip { ok(peer("gzip", &["-dc"], Some(&dec))).stdout } else { dec };
        assert_eq!(plain, PROFILE.as_bytes(), "rs {rs} keyid {keyid:?} gzip {gzip}");

        let theirs = dir.path().join("t.cfg");
        ok(peer("python3", &["-c", ECE_ENCRYPT, s(&xml), ikm, rs, keyid, s(&theirs)], None));
        let back = dir.path().join("t.xml");
        ok(provisor(&["profile", "decrypt", s(&theirs), "-o", s(&back), "--ikm", ikm]));
        assert_eq!(std::fs::read_to_string(&back).unwrap(), PROFILE, "rs {rs}");
    }
}

#[test]
fn repack_changes_key_and_parameters_and_openssl_reads_it() {
    let dir = tmp();
    let xml = write_profile(dir.path());
    let old = dir.path().join("old.cfg");
    let gz = ok(peer("gzip", &["-c", s(&xml)], None)).stdout;
    std::fs::write(dir.path().join("p.gz"), &gz).unwrap();
    ok(peer(
        "openssl",
        &["enc", "-e", "-aes-256-cbc", "-md", "md5", "-k", "old", "-in", s(&dir.path().join("p.gz")), "-out", s(&old)],
        None,
    ));
    let new = dir.path().join("new.cfg");
    ok(provisor(&[
        "profile",
        "repack",
        s(&old),
        "-o",
        s(&new),
        "--key",
        "old",
        "--new-key",
        "new",
        "--set",
        "GPP_B=hello",
        "--set",
        "Dial Plan[1]=(xx.)",
    ]));
    let dec =
        ok(peer("openssl", &["enc", "-d", "-aes-256-cbc", "-md", "md5", "-k", "new", "-in", s(&new)], None)).stdout;
    let text = String::from_utf8(ok(peer("gzip", &["-dc"], Some(&dec))).stdout).unwrap();
    assert!(text.contains("<GPP_B>hello</GPP_B>"), "{text}");
    assert!(text.contains("<Dial_Plan_1_>(xx.)</Dial_Plan_1_>"), "{text}");
    assert!(text.contains("<GPP_A ua=\"na\">x &amp; y</GPP_A>"), "{text}");
    // Without --set the XML passes through byte for byte.
    ok(provisor(&[
        "profile",
        "repack",
        s(&old),
        "-o",
        s(&new),
        "--key",
        "old",
        "--new-key",
        "other",
        "--new-md",
        "sha256",
    ]));
    let dec = ok(peer("openssl", &["enc", "-d", "-aes-256-cbc", "-md", "sha256", "-k", "other", "-in", s(&new)], None))
        .stdout;
    assert_eq!(ok(peer("gzip", &["-dc"], Some(&dec))).stdout, PROFILE.as_bytes());
}

/// Bad input: one clear line on stderr, a non-zero exit, no panic, and no output file.
#[test]
fn bad_input_gives_one_line_and_no_output() {
    let dir = tmp();
    let xml = write_profile(dir.path());
    let enc = dir.path().join("e.cfg");
    ok(provisor(&["profile", "encrypt", s(&xml), "-o", s(&enc), "--key", "k", "--gzip"]));
    let data = std::fs::read(&enc).unwrap();
    let cases: Vec<(&str, Vec<u8>, Vec<&str>, &str)> = vec![
        ("truncated", data[..data.len() - 5].to_vec(), vec!["--key", "k"], "truncated or corrupt"),
        (
            "corrupt",
            {
                let mut d = data.clone();
                let n = d.len();
                d[n - 20] ^= 0xff;
                d
            },
            vec!["--key", "k"],
            "bad decrypt",
        ),
        ("wrong-key", data.clone(), vec!["--key", "nope"], "wrong key"),
        ("no-key", data.clone(), vec![], "give the key"),
        (
            "corrupt-gzip",
            {
                let mut g = ok(peer("gzip", &["-c", s(&xml)], None)).stdout;
                let n = g.len();
                g[n / 2] ^= 0x55;
                g.truncate(n - 4);
                g
            },
            vec!["--key", "k"],
            "gzip",
        ),
        ("malformed", b"<flat-profile>\n<GPP_A>1</GPP_B>\n</flat-profile>\n".to_vec(), vec![], "2:"),
        ("non-ascii", "<flat-profile><GPP_A>caf\u{e9}</GPP_A></flat-profile>".as_bytes().to_vec(), vec![], "non-ASCII"),
        ("not-a-profile", b"\x00\x01\x02 binary".to_vec(), vec![], "not XML"),
    ];
    for (name, input, keys, expect) in cases {
        let inp = dir.path().join(format!("{name}.in"));
        std::fs::write(&inp, &input).unwrap();
        let out = dir.path().join(format!("{name}.out"));
        let mut args = vec!["profile", "decrypt", s(&inp), "-o", s(&out)];
        if keys.is_empty() {
            args = vec!["profile", "parse", s(&inp)];
        }
        args.extend(keys);
        let r = provisor(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{name}: should fail");
        assert_eq!(r.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: one line expected: {err}");
        assert!(err.contains(expect), "{name}: {err:?} should mention {expect:?}");
        assert!(err.contains(&format!("{name}.in")), "{name}: {err:?} should name the file");
        assert!(!out.exists(), "{name}: no output file may be left");
        assert!(r.stdout.is_empty(), "{name}: no output");
    }
}

#[test]
fn a_100_mb_file_is_refused_clearly() {
    let dir = tmp();
    let big = dir.path().join("big.xml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(100 * 1024 * 1024).unwrap();
    let r = provisor(&["profile", "parse", s(&big)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("limit"), "{err}");
}

#[test]
fn lint_exit_codes_and_positions() {
    let dir = tmp();
    let good = write_profile(dir.path());
    let r = provisor(&["profile", "lint", s(&good)]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stdout));
    let bad = dir.path().join("bad.xml");
    std::fs::write(&bad, "<flat-profile>\n<Resync_Periodik>1</Resync_Periodik>\n<Resync_On_Reset>Maybe</Resync_On_Reset>\n</flat-profile>\n").unwrap();
    let r = provisor(&["profile", "lint", s(&bad)]);
    assert_eq!(r.status.code(), Some(1));
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.contains("bad.xml:2:1: warning[unknown]") && out.contains("did you mean Resync_Periodic?"), "{out}");
    assert!(out.contains("bad.xml:3:1: error[type]"), "{out}");
    let r = provisor(&["profile", "lint", s(&bad), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(json[1]["line"], 3);
    assert_eq!(json[1]["severity"], "error");
}

#[test]
fn fmt_and_diff() {
    let dir = tmp();
    let a = dir.path().join("a.xml");
    std::fs::write(
        &a,
        "<device><flat-profile><!-- c --><GPP_A>\n 1\n</GPP_A><GPP_B ua='rw'>2</GPP_B></flat-profile></device>",
    )
    .unwrap();
    let formatted = ok(provisor(&["profile", "fmt", s(&a)])).stdout;
    assert_eq!(
        String::from_utf8(formatted.clone()).unwrap(),
        "<flat-profile>\n  <GPP_A>1</GPP_A>\n  <GPP_B ua=\"rw\">2</GPP_B>\n</flat-profile>\n"
    );
    assert_eq!(provisor(&["profile", "fmt", "--check", s(&a)]).status.code(), Some(1));
    let b = dir.path().join("b.xml");
    std::fs::write(&b, &formatted).unwrap();
    assert!(provisor(&["profile", "fmt", "--check", s(&b)]).status.success());
    assert!(provisor(&["profile", "diff", s(&a), s(&b)]).status.success(), "same parameters");
    std::fs::write(&b, "<flat-profile><GPP_A>9</GPP_A><GPP_C>3</GPP_C></flat-profile>").unwrap();
    let r = provisor(&["profile", "diff", s(&a), s(&b)]);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&r.stdout), "~ GPP_A: \"1\" -> \"9\"\n- GPP_B = \"2\"\n+ GPP_C = \"3\"\n");
}

#[test]
fn stdin_and_stdout() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(["profile", "encrypt", "-", "-o", "-", "--key", "k"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(PROFILE.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.stdout.starts_with(b"Salted__"));
    let dec = ok(peer("openssl", &["enc", "-d", "-aes-256-cbc", "-k", "k"], Some(&out.stdout)));
    assert_eq!(dec.stdout, PROFILE.as_bytes());
}

/// 003 "AES-256-CBC Encryption": the guide's exact openssl commands (plain and gzip-compressed input), and the
/// `--key` usage examples of "Optional Resync Arguments" as pass phrases (a hex-looking key is still a pass phrase).
#[test]
fn aes_256_cbc_encryption_guide_commands_and_key_examples() {
    let dir = tmp();
    let xml = write_profile(dir.path());
    std::fs::write(dir.path().join("profile.xml.gz"), ok(peer("gzip", &["-c", s(&xml)], None)).stdout).unwrap();
    for input in ["profile.xml", "profile.xml.gz"] {
        let cfg = dir.path().join("profile.cfg");
        let inp = dir.path().join(input);
        ok(peer(
            "openssl",
            &["enc", "-e", "-aes-256-cbc", "-k", "SecretPhrase1234", "-in", s(&inp), "-out", s(&cfg)],
            None,
        ));
        let r = ok(provisor(&["profile", "parse", s(&cfg), "--key", "SecretPhrase1234", "--json"]));
        let json: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(json["Resync_Periodic"]["value"], "7200", "{input}");
    }
    for key in ["VerySecretValue", "my secret phrase", "a37d2fb9055c1d04883a0745eb0917a4"] {
        let cfg = dir.path().join("k.cfg");
        ok(peer(
            "openssl",
            &["enc", "-e", "-aes-256-cbc", "-md", "md5", "-k", key, "-in", s(&xml), "-out", s(&cfg)],
            None,
        ));
        let out = dir.path().join("k.xml");
        ok(provisor(&["profile", "decrypt", s(&cfg), "-o", s(&out), "--key", key]));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), PROFILE, "{key}");
    }
}

#[test]
fn decrypt_returns_any_plaintext_that_openssl_or_http_ece_encrypted() {
    let dir = tmp();
    // Not XML: a JSON report, and binary bytes (a firmware list, anything).
    let mut binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    binary[0] = 0x7f;
    for (name, plain) in [("report.json", b"{\"status\": \"ok\"}\n".to_vec()), ("blob.bin", binary)] {
        let input = dir.path().join(name);
        std::fs::write(&input, &plain).unwrap();
        for md in ["sha256", "md5"] {
            let enc = dir.path().join("o.enc");
            ok(peer(
                "openssl",
                &["enc", "-e", "-aes-256-cbc", "-md", md, "-k", "SecretPhrase1234", "-in", s(&input), "-out", s(&enc)],
                None,
            ));
            let out = dir.path().join("o.plain");
            ok(provisor(&["profile", "decrypt", s(&enc), "-o", s(&out), "--key", "SecretPhrase1234", "--md", md]));
            assert_eq!(std::fs::read(&out).unwrap(), plain, "{name} md {md}");
            // Only `parse` needs XML, and says so for text (binary could as well be a wrong key: it says that).
            let o = provisor(&["profile", "parse", s(&enc), "--key", "SecretPhrase1234", "--md", md]);
            assert!(!o.status.success(), "{name}");
            if name.ends_with(".json") {
                assert!(
                    String::from_utf8_lossy(&o.stderr).contains("not XML"),
                    "{}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
        let ikm = "000102030405060708090a0b0c0d0e0f";
        let theirs = dir.path().join("t.ece");
        ok(peer("python3", &["-c", ECE_ENCRYPT, s(&input), ikm, "4096", "", s(&theirs)], None));
        let back = dir.path().join("t.plain");
        ok(provisor(&["profile", "decrypt", s(&theirs), "-o", s(&back), "--ikm", ikm]));
        assert_eq!(std::fs::read(&back).unwrap(), plain, "{name} aes128gcm");
    }
}
