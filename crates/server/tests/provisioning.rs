//! The provisioning core in process: a [`MemoryStore`], a [`MemoryJournal`], templates in memory and a fixed clock.
//! No sockets, no files, no sleeps: rate limits move with the clock the test holds.

mod common;

use common::*;
use provisor_server::config::{ProfileEncryption, UnknownDevices};
use provisor_server::inventory::{Mac, Store};
use provisor_server::provision::{Protocol, ProvisionError};
use provisor_tftp::packet::ErrorCode;

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

#[tokio::test]
async fn the_secure_flow_gives_secrets_only_to_a_verified_certificate_then_only_ciphertext() {
    let (core, _) = core(|_| {}).await;
    let s = secrets(&core, A).await;

    // 1. By MAC alone (a User-Agent naming it, over HTTP): the bootstrap profile, no secret, sent on to HTTPS.
    let mut by_name = get(Protocol::Http, &format!("/{A}.xml"), 1);
    by_name.user_agent = Some(format!("Cisco-CP-8841-3PCC/12.0.1 ({A})"));
    let r = core.handle(by_name, at(0)).await;
    assert_eq!(r.status, 200);
    let bootstrap = text(&r);
    // It keeps the way back (the plain bootstrap URL first) and sends the phone on to HTTPS with the second rule,
    // retrying within a minute.
    assert_eq!(param(&bootstrap, "Profile_Rule").as_deref(), Some("http://prov.example.com:8080/$MA.xml"));
    assert_eq!(param(&bootstrap, "Profile_Rule_B").as_deref(), Some("https://prov.example.com:8443/$MA.xml"));
    assert_eq!(param(&bootstrap, "Resync_Periodic").as_deref(), Some("60"));
    assert_eq!(param(&bootstrap, "Resync_Error_Retry_Delay").as_deref(), Some("60"));
    for secret in [s.aes_key.as_str(), s.path_token.as_str(), "secret-201"] {
        assert!(!bootstrap.contains(secret), "the bootstrap profile holds no secret");
    }
    // Over HTTPS without a certificate, and over TFTP: the same.
    for protocol in [Protocol::Https, Protocol::Tftp] {
        assert_eq!(text(&core.handle(get(protocol, &format!("/{A}.xml"), 1), at(1)).await), bootstrap);
    }

    // 2. With A's verified certificate: the full profile, its key and random path, and the encrypted resync rule.
    let full = text(&core.handle(with_certificate(&format!("/{A}.xml"), 1, A, "CP-8841-3PCC"), at(2)).await);
    assert_eq!(param(&full, "GPP_SA"), Some(s.aes_key.clone()));
    assert_eq!(param(&full, "GPP_B"), Some(s.path_token.clone()));
    assert_eq!(param(&full, "Password_1_").as_deref(), Some("secret-201"));
    assert_eq!(
        param(&full, "Profile_Rule").as_deref(),
        Some("[--key $SA] http://prov.example.com:8080/profile/$B/profile.cfg")
    );
    // The full profile takes back what the bootstrap set for its quick retries.
    assert_eq!(param(&full, "Profile_Rule_B").as_deref(), Some(""));
    assert_eq!(param(&full, "Resync_Error_Retry_Delay").as_deref(), Some("3600"));

    // 3. The random path: ciphertext only, the same bytes over HTTP and TFTP, opening to the full profile.
    let path = format!("/profile/{}/profile.cfg", s.path_token);
    let over_http = core.handle(get(Protocol::Http, &path, 1), at(3)).await;
    let over_tftp = core.handle(get(Protocol::Tftp, &path, 1), at(4)).await;
    assert_eq!(over_http.content_type, "application/octet-stream");
    assert_eq!(bytes(&over_http), bytes(&over_tftp));
    assert!(!String::from_utf8_lossy(&bytes(&over_http)).contains("secret-201"));
    assert_eq!(open(&bytes(&over_http), Some(&s.aes_key), None).unwrap(), full);
    assert!(open(&bytes(&over_http), Some("wrong key"), None).is_err());

    // Another core on the same inventory renders the same bytes (deterministic salt): nodes agree, restarts too.
    let (other, _) = common::core(|_| {}).await;
    other.store().update_device(&core.store().device(&mac(A)).await.unwrap().unwrap()).await.unwrap();
    other.refresh().await;
    let again = other.handle(get(Protocol::Http, &path, 1), at(5)).await;
    assert_eq!(open(&bytes(&again), Some(&s.aes_key), None).unwrap(), full);

    // Everything is in the journal, attributed to A.
    let entries = core.journal().entries();
    assert_eq!(entries.len(), 6);
    assert!(entries.iter().all(|e| e.device == Some(mac(A)) && e.status == 200 && e.hash.len() == 64), "{entries:?}");
    assert_eq!(entries[3].protocol, "https");
    assert!(entries[3].served_params.as_deref().is_some_and(|p| p.json().contains("Password_1_")));
}

/// A phone fetches its random path right after its full profile has set the rule: the full profile's rendering is
/// also sealed for that fetch, from the same text, so it costs no second inventory read or rendering. The bytes are
/// those a fresh rendering gives.
#[tokio::test]
async fn the_full_profile_also_seals_the_resync_that_follows_it() {
    for encryption in [ProfileEncryption::AesCbc, ProfileEncryption::Aes128gcm] {
        let (core, _) = core(|c| c.provisioning.encryption = encryption).await;
        let s = secrets(&core, A).await;
        let before = core.store().device(&mac(A)).await.unwrap().unwrap();
        let full = text(&core.handle(with_certificate(&format!("/{A}.xml"), 1, A, "CP-8841-3PCC"), at(0)).await);
        assert_eq!(param(&full, "Password_1_").as_deref(), Some("secret-201"));

        // The inventory changes after the full profile went out, and the core has not noticed yet: a fetch that
        // read the inventory again would see the new password.
        let mut changed = before.clone();
        changed.params.insert("Password_1_".into(), "changed".into());
        core.store().update_device(&changed).await.unwrap();

        let path = format!("/profile/{}/profile.cfg", s.path_token);
        let resync = core.handle(get(Protocol::Http, &path, 1), at(1)).await;
        assert_eq!(resync.status, 200);
        let (key, ikm) = match encryption {
            ProfileEncryption::Aes128gcm => (None, Some(s.ikm.as_str())),
            _ => (Some(s.aes_key.as_str()), None),
        };
        assert_eq!(resync.content_encoding.is_some(), encryption == ProfileEncryption::Aes128gcm);
        assert_eq!(open(&bytes(&resync), key, ikm).unwrap(), full, "sealed from the full profile's text");

        // A core that renders the path fresh, on the inventory as it was, gives the same bytes.
        let (other, _) = common::core(|c| c.provisioning.encryption = encryption).await;
        other.store().update_device(&before).await.unwrap();
        other.refresh().await;
        assert_eq!(bytes(&other.handle(get(Protocol::Http, &path, 1), at(2)).await), bytes(&resync));
    }
}

#[tokio::test]
async fn rfc8188_goes_over_http_with_its_content_encoding_and_tftp_keeps_aes_cbc() {
    let (core, _) = core(|c| c.provisioning.encryption = ProfileEncryption::Aes128gcm).await;
    let s = secrets(&core, A).await;
    let path = format!("/profile/{}/profile.cfg", s.path_token);
    let http = core.handle(get(Protocol::Http, &path, 1), at(0)).await;
    assert_eq!(http.content_encoding, Some("aes128gcm"));
    let plain = open(&bytes(&http), None, Some(&s.ikm)).unwrap();
    assert_eq!(param(&plain, "IKM_HTTP_Encrypt_Content"), Some(s.ikm.clone()));
    // TFTP has no Content-Encoding: the phone gets AES-256-CBC with its key.
    let tftp = core.handle(get(Protocol::Tftp, &path, 1), at(1)).await;
    assert_eq!(tftp.content_encoding, None);
    assert_eq!(open(&bytes(&tftp), Some(&s.aes_key), None).unwrap(), plain);
}

#[tokio::test]
async fn a_rotated_key_stays_valid_until_the_phone_has_fetched_the_new_one() {
    let (core, _) = core(|_| {}).await;
    let old = secrets(&core, A).await;
    let old_path = format!("/profile/{}/profile.cfg", old.path_token);
    assert_eq!(core.handle(get(Protocol::Http, &old_path, 1), at(0)).await.status, 200);

    // Rotate twice before the phone resyncs: the phone still holds the first key, so that one stays valid.
    for _ in 0..2 {
        let mut d = core.store().device(&mac(A)).await.unwrap().unwrap();
        d.secrets = d.secrets.rotated().unwrap();
        core.store().update_device(&d).await.unwrap();
    }
    core.refresh().await;
    let new = secrets(&core, A).await;
    assert_ne!(new.aes_key, old.aes_key);

    // The old path, under the old key, hands the phone its new key and path.
    let r = core.handle(get(Protocol::Http, &old_path, 1), at(10)).await;
    let handover = open(&bytes(&r), Some(&old.aes_key), None).expect("sealed with the key the phone has");
    assert_eq!(param(&handover, "GPP_SA"), Some(new.aes_key.clone()));
    assert_eq!(param(&handover, "GPP_B"), Some(new.path_token.clone()));
    assert!(secrets(&core, A).await.previous.is_some(), "not yet forgotten: the phone may retry the old path");
    assert_eq!(core.handle(get(Protocol::Http, &old_path, 1), at(11)).await.status, 200);

    // The first fetch at the new path proves the phone switched: the old secrets go.
    let new_path = format!("/profile/{}/profile.cfg", new.path_token);
    let r = core.handle(get(Protocol::Tftp, &new_path, 1), at(20)).await;
    assert_eq!(open(&bytes(&r), Some(&new.aes_key), None).unwrap(), handover);
    assert!(secrets(&core, A).await.previous.is_none());
    assert!(core.journal().events(&mac(A)).iter().any(|(kind, _)| *kind == "rotated"));
    core.refresh().await;
    let r = core.handle(get(Protocol::Http, &old_path, 1), at(30)).await;
    assert!(matches!(r.error, Some(ProvisionError::NotFound)), "{:?}", r.error);
}

#[tokio::test]
async fn the_cache_follows_the_inventory_and_the_templates_and_bad_templates_fail_whole() {
    let (core, content) = core(|_| {}).await;
    let full = |t: u64| core.handle(with_certificate(&format!("/{A}.xml"), 1, A, "CP-8841-3PCC"), at(t));
    let first = text(&full(0).await);
    assert_eq!(param(&first, "Proxy_1_").as_deref(), Some("sip.example.com"));

    let mut defaults = core.store().group("defaults").await.unwrap().unwrap();
    defaults.params.insert("Proxy_1_".into(), "sip2.example.com".into());
    core.store().put_group(&defaults).await.unwrap();
    assert_eq!(text(&full(1).await), first, "served from the cache until the change is noticed");
    core.refresh().await;
    let second = text(&full(2).await);
    assert_eq!(param(&second, "Proxy_1_").as_deref(), Some("sip2.example.com"));

    // A template change is picked up at the next refresh.
    let custom = provisor_server::render::MPP_TEMPLATE
        .replace("</flat-profile>", "<Text_Logo>{{ device.mac }}</Text_Logo>\n</flat-profile>");
    content.set_template("mpp.xml", &custom);
    core.refresh().await;
    assert_eq!(param(&text(&full(3).await), "Text_Logo").as_deref(), Some(A));

    // A template that does not compile stops every profile (never a half-rendered one) until it is fixed.
    content.set_template("mpp.xml", "{% if %}");
    core.refresh().await;
    let broken = full(4).await;
    assert_eq!(broken.status, 500);
    assert!(matches!(broken.error, Some(ProvisionError::Templates(_))), "{:?}", broken.error);
    assert_eq!(broken.tftp_error().map(|e| e.0), Some(ErrorCode::NotDefined));
    content.set_template("mpp.xml", &custom);
    core.refresh().await;
    assert_eq!(full(5).await.status, 200);
}

#[tokio::test]
async fn unknown_devices_follow_the_policy() {
    const NEW: &str = "0011aabbcc99";
    // deny: an unknown MAC is "not found" (and a failed lookup); a name without a MAC too.
    let (core, _) = core(|c| c.provisioning.unknown_devices = UnknownDevices::Deny).await;
    let r = core.handle(get(Protocol::Http, &format!("/{NEW}.xml"), 1), at(0)).await;
    assert!(matches!(r.error, Some(ProvisionError::UnknownDevice(_))));
    assert_eq!((r.status, text(&r)), (404, "not found\n".to_string()), "no more said than for any other name");
    let r = core.handle(get(Protocol::Http, "/8841.xml", 1), at(0)).await;
    assert!(matches!(r.error, Some(ProvisionError::Unidentified)));
    assert_eq!(core.handle(get(Protocol::Http, &format!("/{A}.xml"), 1), at(0)).await.status, 200);

    // bootstrap: unknown phones get the bootstrap profile.
    let (core, _) = common::core(|c| c.provisioning.unknown_devices = UnknownDevices::Bootstrap).await;
    let r = core.handle(get(Protocol::Tftp, &format!("/{NEW}.xml"), 1), at(0)).await;
    assert!(param(&text(&r), "Profile_Rule_B").is_some_and(|p| p.starts_with("https://")));

    // enrol: only a verified certificate adds the phone, from its claims, to the enrolment group.
    let (core, _) = common::core(|c| {
        c.provisioning.unknown_devices = UnknownDevices::Enrol;
        c.provisioning.enrol_group = Some("office".into());
    })
    .await;
    let r = core.handle(get(Protocol::Http, &format!("/{NEW}.xml"), 1), at(0)).await;
    assert_eq!(r.status, 200);
    assert!(core.store().device(&mac(NEW)).await.unwrap().is_none(), "a name alone enrols nothing");
    let r = core.handle(with_certificate(&format!("/{NEW}.xml"), 1, NEW, "CP-8851-3PCC"), at(1)).await;
    assert!(param(&text(&r), "GPP_SA").is_some(), "the enrolled phone gets its full profile at once");
    let d = core.store().device(&mac(NEW)).await.unwrap().unwrap();
    assert_eq!((d.model.as_str(), d.group.as_deref()), ("CP-8851-3PCC", Some("office")));
    assert!(core.journal().events(&mac(NEW)).iter().any(|(k, t)| *k == "enrolled" && t.contains("CP-8851-3PCC")));
}

#[tokio::test]
async fn identity_comes_from_the_certificate_and_a_certificate_gets_only_its_own_files() {
    let (core, _) = core(|c| c.provisioning.trusted_networks = vec!["10.0.0.0/28".into()]).await;
    let b = secrets(&core, B).await;
    // A's certificate asking for B's file, by name or by B's random path: 403, logged on A, B's MAC not echoed.
    for path in [
        format!("/{B}.xml"),
        format!("/profile/{}/profile.cfg", b.path_token),
        format!("/SEP{}.cnf.xml", B.to_uppercase()),
    ] {
        let r = core.handle(with_certificate(&path, 1, A, "CP-8841-3PCC"), at(0)).await;
        assert!(matches!(r.error, Some(ProvisionError::OtherDevice { .. })), "{path}: {:?}", r.error);
        assert_eq!(r.status, 403);
        assert!(!text(&r).contains(B), "{}", text(&r));
    }
    assert_eq!(core.journal().events(&mac(A)).iter().filter(|(k, _)| *k == "refused").count(), 3);
    // A User-Agent naming A, over HTTPS without a certificate: a claim, not a proof.
    let mut ua = get(Protocol::Https, "/8841.xml", 1);
    ua.user_agent = Some(format!("Cisco-CP-8841-3PCC/12.0.1 ({A})"));
    assert!(param(&text(&core.handle(ua, at(1)).await), "GPP_SA").is_none());
    // The certificate identifies the device when the name does not.
    let r = core.handle(with_certificate("/8841.xml", 1, A, "CP-8841-3PCC"), at(2)).await;
    assert_eq!(param(&text(&r), "User_ID_1_").as_deref(), Some("201"));

    // SEP<MAC>.cnf.xml: enterprise phones only, trusted networks only; an MPP phone looks like an unknown MAC.
    let sep = |m: &str| format!("/SEP{}.cnf.xml", m.to_uppercase());
    let r = core.handle(get(Protocol::Tftp, &sep(E), 2), at(3)).await;
    assert!(text(&r).contains("secret-204"));
    let mpp = core.handle(get(Protocol::Tftp, &sep(A), 2), at(3)).await;
    let unknown = core.handle(get(Protocol::Tftp, &sep("0011aabbcc77"), 2), at(3)).await;
    assert_eq!((mpp.status, mpp.tftp_error()), (unknown.status, unknown.tftp_error()));
    assert_eq!(mpp.tftp_error().map(|e| e.0), Some(ErrorCode::FileNotFound));
    let outside = core.handle(get(Protocol::Tftp, &sep(E), 200), at(3)).await;
    assert!(matches!(outside.error, Some(ProvisionError::UntrustedNetwork)));
    assert_eq!(outside.tftp_error().map(|e| e.0), Some(ErrorCode::AccessViolation));
}

#[tokio::test]
async fn http_credentials_are_asked_for_checked_once_and_never_sent_over_tftp() {
    let (core, _) = core(|c| {
        c.provisioning.http_user = "prov".into();
        c.provisioning.http_password = "pw".into();
    })
    .await;
    let path = format!("/{A}.xml");
    let r = core.handle(get(Protocol::Http, &path, 1), at(0)).await;
    assert_eq!(r.status, 401);
    let challenges = r.challenges().to_vec();
    assert!(challenges.iter().any(|c| c.starts_with("Digest ")) && challenges.iter().any(|c| c.starts_with("Basic ")));

    let answer = provisor_auth::answer(&challenges, "prov", "pw", "GET", &path, 1).unwrap();
    let mut authed = get(Protocol::Http, &path, 1);
    authed.authorization = Some(answer.clone());
    let r = core.handle(authed.clone(), at(1)).await;
    assert_eq!(r.status, 200);
    assert!(param(&text(&r), "Profile_Rule_B").unwrap().starts_with("[--uid prov --pwd pw] https://"));
    // The same answer again (same nonce count) is a replay; on another path it does not match its URI.
    assert_eq!(core.handle(authed.clone(), at(2)).await.status, 401);
    let mut moved = authed;
    moved.path = format!("/{B}.xml");
    moved.target = None;
    assert_eq!(core.handle(moved, at(3)).await.status, 401);
    let wrong = provisor_auth::answer(&challenges, "prov", "nope", "GET", &path, 2).unwrap();
    let mut bad = get(Protocol::Http, &path, 1);
    bad.authorization = Some(wrong);
    assert_eq!(core.handle(bad, at(4)).await.status, 401);

    // TFTP cannot authenticate: the bootstrap profile would carry the credentials, so it is refused.
    let r = core.handle(get(Protocol::Tftp, &path, 1), at(5)).await;
    assert!(matches!(r.error, Some(ProvisionError::CredentialsOverTftp)));
    assert_eq!(r.tftp_error().map(|e| e.0), Some(ErrorCode::AccessViolation));
}

#[tokio::test]
async fn rate_limits_count_per_minute_on_the_clock_they_are_given() {
    let (core, _) = core(|c| {
        c.provisioning.unknown_devices = UnknownDevices::Deny;
        c.limits.failed_lookups_per_minute = 5;
        c.limits.macs_per_address_per_minute = 3;
    })
    .await;
    // Failed lookups: five 404s, then 429 for the rest of the minute, even for a good name.
    for i in 0..5 {
        let r = core.handle(get(Protocol::Http, &format!("/nothing-{i}"), 1), at(0)).await;
        assert_eq!(r.status, 404);
    }
    let r = core.handle(get(Protocol::Http, &format!("/{A}.xml"), 1), at(30)).await;
    assert!(matches!(r.error, Some(ProvisionError::Limited(_))));
    assert_eq!(r.tftp_error().map(|e| e.0), Some(ErrorCode::AccessViolation));
    // Another address is not affected; the next minute, neither is this one.
    assert_eq!(core.handle(get(Protocol::Http, &format!("/{A}.xml"), 2), at(30)).await.status, 200);
    assert_eq!(core.handle(get(Protocol::Http, &format!("/{A}.xml"), 1), at(60)).await.status, 200);

    // Distinct MACs named without proof: three per address per minute (A counts already at 60 s).
    let mut statuses = Vec::new();
    for (i, m) in [B, E, "0011aabbcc05", "0011aabbcc06"].iter().enumerate() {
        let r = core.handle(get(Protocol::Http, &format!("/{m}.xml"), 1), at(61 + i as u64)).await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 429, 429], "A, B, E named: the fourth MAC is refused");
    // A verified certificate is never counted.
    let r = core.handle(with_certificate(&format!("/{A}.xml"), 1, A, "CP-8841-3PCC"), at(70)).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn reports_must_prove_the_device_and_land_in_its_history() {
    let (core, _) = core(|c| c.limits.device_events_per_minute = 3).await;
    let s = secrets(&core, A).await;
    let report =
        format!("<flat-profile><Resync_Periodic>7200</Resync_Periodic><GPP_SA>{}</GPP_SA></flat-profile>", s.aes_key);
    let sealed = provisor_envelope::openssl_enc::encrypt(
        &provisor_envelope::gzip::compress(report.as_bytes()),
        s.aes_key.as_bytes(),
        provisor_envelope::openssl_enc::Kdf::BytesToKey(provisor_envelope::openssl_enc::Digest::Sha256),
        Some(*b"reportsa"),
    );
    let upload = |protocol, body: Vec<u8>, t: u64| {
        let mut r = get(protocol, &format!("/report/{A}.xml"), 1);
        r.method = if protocol == Protocol::Tftp { "WRQ" } else { "PUT" };
        r.body = body.into();
        core.handle(r, at(t))
    };
    let first = upload(Protocol::Http, sealed.clone(), 0).await;
    assert_eq!(first.status, 200, "{:?}", first.error);
    assert_eq!(upload(Protocol::Tftp, sealed.clone(), 1).await.status, 200);
    // In clear over plain HTTP: anyone could have sent it.
    let plain = upload(Protocol::Http, report.clone().into_bytes(), 2).await;
    assert!(matches!(plain.error, Some(ProvisionError::PlainReport(_))));
    // Garbage: 400, and it does not use up the device's allowance.
    let junk = upload(Protocol::Http, b"\x00\x01junk".to_vec(), 3).await;
    assert_eq!(junk.status, 400);
    // A read of a report path is an illegal operation.
    let read = core.handle(get(Protocol::Tftp, &format!("/report/{A}.xml"), 1), at(4)).await;
    assert_eq!(read.tftp_error().map(|e| e.0), Some(ErrorCode::IllegalOperation));
    // The third accepted report of the minute is the last.
    assert_eq!(upload(Protocol::Http, sealed.clone(), 5).await.status, 200);
    assert_eq!(upload(Protocol::Http, sealed.clone(), 6).await.status, 429);
    assert_eq!(upload(Protocol::Http, sealed, 61).await.status, 200);

    let events = core.journal().events(&mac(A));
    let kinds: Vec<&str> = events.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, ["report", "report", "refused", "error", "report", "report"], "{events:?}");
    let reports: Vec<_> = core.journal().entries().into_iter().filter_map(|e| e.report).collect();
    assert!(reports[0].0.contains("\"Resync_Periodic\":\"7200\""));
}

#[tokio::test]
async fn syslog_lines_are_kept_for_known_devices_within_their_allowance() {
    let (core, _) = core(|c| c.limits.device_events_per_minute = 2).await;
    let from = client(7);
    for line in [
        format!("<134>Jan 15 08:00:00 SEP{} CP-8841-3PCC -- Resync succeeded", A.to_uppercase()),
        "<134>Jan 15 08:00:01 host 0011aabbcc77 -- not ours".to_string(),
        format!("<134>Jan 15 08:00:02 host {A} -- second"),
        format!("<134>Jan 15 08:00:03 host {A} -- third, over the allowance"),
    ] {
        provisor_server::front::syslog::receive(&core, from, &line, at(0)).await;
    }
    let events = core.journal().events(&mac(A));
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].1.contains("Resync succeeded"));
    assert!(core.journal().events(&mac("0011aabbcc77")).is_empty());
    // A line without a MAC is attributed to the device last served at the sender's address.
    core.handle(get(Protocol::Http, &format!("/{B}.xml"), 7), at(61)).await;
    provisor_server::front::syslog::receive(&core, from, "<134>Jan 15 08:01:01 host -- no mac here", at(61)).await;
    assert_eq!(core.journal().events(&mac(B)).len(), 1);
}

#[test]
fn every_refusal_knows_its_http_status_and_tftp_code() {
    use ProvisionError::*;
    let m = mac(A);
    let table: Vec<(ProvisionError, u16, ErrorCode)> = vec![
        (Limited(provisor_server::provision::guard::Limited::Failures), 429, ErrorCode::AccessViolation),
        (IllegalName, 404, ErrorCode::FileNotFound),
        (NotFound, 404, ErrorCode::FileNotFound),
        (UnknownDevice(m.clone()), 404, ErrorCode::FileNotFound),
        (NoEnterprisePhone(m.clone()), 404, ErrorCode::FileNotFound),
        (NoTrustList, 404, ErrorCode::FileNotFound),
        (NoSiteCa, 404, ErrorCode::FileNotFound),
        (Unsignable("x".into()), 404, ErrorCode::FileNotFound),
        (Unauthenticated { challenges: vec![] }, 401, ErrorCode::AccessViolation),
        (OtherDevice { certificate: None, asked: m.clone(), path: "/x".into() }, 403, ErrorCode::AccessViolation),
        (UntrustedNetwork, 403, ErrorCode::AccessViolation),
        (CredentialsOverTftp, 403, ErrorCode::AccessViolation),
        (NotAnUpload, 405, ErrorCode::IllegalOperation),
        (ReportTooLarge, 413, ErrorCode::DiskFull),
        (BadReport { name: "r".into(), reason: "x".into() }, 400, ErrorCode::AccessViolation),
        (Render("x".into()), 500, ErrorCode::NotDefined),
        (Inventory("x".into()), 500, ErrorCode::NotDefined),
    ];
    for (e, status, code) in table {
        assert_eq!((e.http_status(), e.tftp_code()), (status, code), "{e:?}");
    }
}

#[tokio::test]
async fn trust_lists_are_served_when_the_site_placed_one_and_not_found_otherwise() {
    let (core, content) = core(|_| {}).await;
    let r = core.handle(get(Protocol::Tftp, "/ITLFile.tlv", 1), at(0)).await;
    assert!(matches!(r.error, Some(ProvisionError::NoTrustList)));
    assert_eq!(r.tftp_error().map(|e| e.0), Some(ErrorCode::FileNotFound));
    content.set_trust_list("ITLFile.tlv", b"\x01\x02trust".to_vec());
    for (protocol, name) in [(Protocol::Tftp, "ITLFile.tlv"), (Protocol::Http, "/itlfile.TLV")] {
        let r = core.handle(get(protocol, name, 1), at(1)).await;
        assert_eq!((r.status, bytes(&r)), (200, b"\x01\x02trust".to_vec()), "{name}");
    }
    let other = core.handle(get(Protocol::Tftp, &format!("CTLSEP{}.tlv", A.to_uppercase()), 1), at(2)).await;
    assert_eq!(other.status, 404);
}

#[tokio::test]
async fn a_verified_certificate_is_never_rate_limited_for_what_its_neighbours_did() {
    let (core, _) = core(|c| c.limits.failed_lookups_per_minute = 3).await;
    // A neighbour behind the same NAT (10.0.0.1) mistypes three times: the address is limited.
    for i in 0..3 {
        core.handle(get(Protocol::Http, &format!("/typo-{i}"), 1), at(0)).await;
    }
    assert_eq!(core.handle(get(Protocol::Http, &format!("/{A}.xml"), 1), at(1)).await.status, 429);
    // A phone at that address with its verified certificate is served.
    let r = core.handle(with_certificate(&format!("/{A}.xml"), 1, A, "CP-8841-3PCC"), at(2)).await;
    assert_eq!(r.status, 200);
    // Its own refusals are logged on its device, not counted against the address.
    let (core, _) = common::core(|c| c.limits.failed_lookups_per_minute = 3).await;
    for t in 0..5 {
        let r = core.handle(with_certificate(&format!("/{B}.xml"), 2, A, "CP-8841-3PCC"), at(t)).await;
        assert_eq!(r.status, 403);
    }
    assert_eq!(core.handle(get(Protocol::Http, &format!("/{B}.xml"), 2), at(6)).await.status, 200);
    assert_eq!(core.journal().events(&mac(A)).iter().filter(|(k, _)| *k == "refused").count(), 5);
}

#[tokio::test]
async fn xmldefault_names_the_call_control_servers_of_the_site_not_the_provisioning_host() {
    let (core, _) = core(|_| {}).await;
    let r = core.handle(get(Protocol::Tftp, "/XMLDefault.cnf.xml", 1), at(0)).await;
    let xml = text(&r);
    assert!(xml.contains("<processNodeName>sip.example.com</processNodeName>"), "{xml}");
    assert!(!xml.contains("prov.example.com"), "{xml}");
    // A backup proxy becomes the second member; a change to the defaults reaches the next fetch.
    let mut g = core.store().group("defaults").await.unwrap().unwrap();
    g.params.insert("Proxy_2_".into(), "sip-backup.example.com".into());
    core.store().put_group(&g).await.unwrap();
    core.refresh().await;
    let xml = text(&core.handle(get(Protocol::Tftp, "/XMLDefault.cnf.xml", 1), at(1)).await);
    assert!(xml.contains("<member priority=\"1\">") && xml.contains("sip-backup.example.com"), "{xml}");
}

#[tokio::test]
async fn identity_mac_gives_an_armed_device_its_secrets_once_over_https_and_the_audit_names_who() {
    let (core, _) = core(|c| {
        c.provisioning.identity = provisor_server::config::Identity::Mac;
        c.provisioning.trusted_networks = vec!["10.0.0.0/29".into()];
    })
    .await;
    let s = secrets(&core, A).await;
    let named = |protocol, from| get(protocol, &format!("/{A}.xml"), from);
    // Plain HTTP and TFTP never take them (HTTPS is there); nor does HTTPS from outside trusted_networks.
    for (protocol, from) in [(Protocol::Http, 1), (Protocol::Tftp, 1), (Protocol::Https, 9)] {
        let r = text(&core.handle(named(protocol, from), at(0)).await);
        assert!(!r.contains(&s.aes_key) && param(&r, "GPP_SA").is_none(), "{protocol:?} from {from}");
    }
    assert!(core.store().is_armed(&mac(A)).await.unwrap());
    // The first HTTPS fetch from a trusted address takes them, once; the audit line names the taker.
    let first = text(&core.handle(named(Protocol::Https, 2), at(1)).await);
    assert_eq!(param(&first, "GPP_SA"), Some(s.aes_key.clone()));
    assert_eq!(param(&first, "Password_1_").as_deref(), Some("secret-201"));
    let second = text(&core.handle(named(Protocol::Https, 3), at(2)).await);
    assert!(!second.contains(&s.aes_key) && !second.contains("secret-201"), "only once");
    let taken = core.journal().entries().into_iter().find(|e| e.note.contains("secrets taken")).expect("audited");
    assert!(taken.note.contains("10.0.0.2") && taken.device == Some(mac(A)), "{}", taken.note);
    // From then on: ciphertext at the random path only. Re-armed (provisor device arm), once more.
    let path = format!("/profile/{}/profile.cfg", s.path_token);
    assert_eq!(
        open(&bytes(&core.handle(get(Protocol::Http, &path, 1), at(3)).await), Some(&s.aes_key), None).unwrap(),
        first
    );
    core.store().arm(&mac(A)).await.unwrap();
    assert!(text(&core.handle(named(Protocol::Https, 4), at(4)).await).contains(&s.aes_key));
    // A device added later is armed; naming MACs counts towards the enumeration limits.
    assert!(!core.store().is_armed(&mac(A)).await.unwrap());
}

#[tokio::test]
async fn the_bootstrap_installs_the_site_ca_unless_it_is_public_and_serves_it() {
    let (core, _) = core(|_| {}).await;
    let pem = bytes::Bytes::from_static(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    assert!(matches!(
        core.handle(get(Protocol::Http, "/ca.pem", 1), at(0)).await.error,
        Some(ProvisionError::NoSiteCa)
    ));
    core.set_site_ca(Some(pem.clone()));
    let boot = text(&core.handle(get(Protocol::Http, &format!("/{A}.xml"), 1), at(1)).await);
    assert_eq!(param(&boot, "Custom_CA_Rule").as_deref(), Some("http://prov.example.com:8080/ca.pem"));
    let ca = core.handle(get(Protocol::Http, "/ca.pem", 1), at(2)).await;
    assert_eq!((ca.status, bytes(&ca)), (200, pem.to_vec()));
    assert_eq!(ca.content_type, "application/x-pem-file");
    // No site CA (`[https] public_ca`: the server leaves it unset): nothing to install.
    core.set_site_ca(None);
    core.reload_templates().unwrap();
    let boot = text(&core.handle(get(Protocol::Http, &format!("/{A}.xml"), 1), at(3)).await);
    assert_eq!(param(&boot, "Custom_CA_Rule"), None);
}
