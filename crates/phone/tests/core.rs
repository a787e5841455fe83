//! The phone core on a virtual clock: boot, rules in order, HTTP status handling, decryption, schedules, upgrades,
//! triggers and reports, with canned responses (no network).

use provisor_envelope::openssl_enc::{Digest, Kdf};
use provisor_envelope::{Encryption, WrapSpec, wrap};
use provisor_phone::phone::{Action, Device, Event, Phone, Purpose, Request, Response};

fn phone() -> Phone {
    let mut p =
        Phone::new(Device::new("000e08aabbcc", "CP-8841-3PCC", "sip88xx.11-0-1MPP"), Some("10.0.0.5".into()), 7);
    p.boot(0);
    p
}

/// Runs the clock to the next wake-up and returns the request the phone makes.
fn next_request(p: &mut Phone) -> (u64, Request) {
    let t = p.poll_timeout().expect("a resync is scheduled");
    p.handle_timeout(t);
    (t, take_request(p))
}

fn take_request(p: &mut Phone) -> Request {
    loop {
        match p.poll_action().expect("an action") {
            Action::Request(r) => return r,
            Action::Syslog { .. } => {}
        }
    }
}

fn ok(body: &str) -> Response {
    Response { status: 200, body: body.as_bytes().to_vec(), ..Response::default() }
}

fn status(s: u16) -> Response {
    Response { status: s, ..Response::default() }
}

/// The timeline as printed (for failure messages).
fn notes(p: &Phone) -> String {
    p.notes().iter().map(|n| format!("{:>6} {}\n", n.at, n.event)).collect()
}

/// Whether an event matching `f` happened.
fn happened(p: &Phone, f: impl Fn(&Event) -> bool) -> bool {
    p.notes().iter().any(|n| f(&n.event))
}

/// When the first event matching `f` happened.
fn when(p: &Phone, f: impl Fn(&Event) -> bool) -> Option<u64> {
    p.notes().iter().find(|n| f(&n.event)).map(|n| n.at)
}

#[test]
fn boot_fetches_the_default_rule_from_the_dhcp_server_within_the_random_delay() {
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    assert!(t <= 2, "Resync_Random_Delay defaults to 2 s: {t}");
    assert_eq!(r.url.to_string(), "tftp://10.0.0.5/8841.xml");
    assert_eq!(r.purpose, Purpose::Profile(0));
    assert_eq!(r.user_agent, "Cisco-CP-8841-3PCC/11.0.1 (000e08aabbcc)");
}

#[test]
fn a_profile_is_applied_and_the_next_resync_follows_resync_periodic() {
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    let profile = "<flat-profile><Resync_Periodic>600</Resync_Periodic><GPP_A>x</GPP_A>\
                   <Profile_Rule>http://prov.example.com/$MA.xml</Profile_Rule></flat-profile>";
    p.handle_response(r.id, ok(profile), t + 1);
    assert_eq!(p.state().value("GPP_A"), "x");
    assert_eq!(p.failures(), 0);
    assert_eq!(p.poll_timeout(), Some(t + 1 + 600), "{}", notes(&p));
    let (_, r) = next_request(&mut p);
    assert_eq!(r.url.to_string(), "http://prov.example.com/000e08aabbcc.xml");
}

#[test]
fn rules_b_c_d_follow_in_order_and_later_files_win() {
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok("<flat-profile><Profile_Rule_B>http://s/b.xml</Profile_Rule_B><Profile_Rule_D>http://s/d.xml</Profile_Rule_D><GPP_C>a</GPP_C></flat-profile>"),
        t,
    );
    let b = take_request(&mut p);
    assert_eq!((b.url.path.as_str(), b.purpose), ("/b.xml", Purpose::Profile(1)));
    p.handle_response(b.id, ok("<flat-profile><GPP_C>b</GPP_C></flat-profile>"), t);
    let d = take_request(&mut p);
    assert_eq!((d.url.path.as_str(), d.purpose), ("/d.xml", Purpose::Profile(3)));
    p.handle_response(d.id, ok("<flat-profile><GPP_C>d</GPP_C></flat-profile>"), t);
    assert_eq!(p.state().value("GPP_C"), "d");
    assert!(!p.busy());
}

#[test]
fn encrypted_profiles_need_the_key_and_rfc8188_needs_the_header() {
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok("<flat-profile><GPP_SA>k3y</GPP_SA><IKM_HTTP_Encrypt_Content>000102030405060708090a0b0c0d0e0f</IKM_HTTP_Encrypt_Content>\
            <Profile_Rule>[--key $SA] http://s/p.cfg</Profile_Rule><Resync_Periodic>100</Resync_Periodic></flat-profile>"),
        t,
    );
    let spec = WrapSpec {
        gzip: true,
        encryption: Some(Encryption::AesCbc {
            key: b"k3y".to_vec(),
            kdf: Kdf::BytesToKey(Digest::Sha256),
            salted: true,
        }),
    };
    let body = wrap(b"<flat-profile><GPP_D>decrypted</GPP_D></flat-profile>", &spec).unwrap();
    let (t, r) = next_request(&mut p);
    p.handle_response(r.id, Response { status: 200, body, ..Response::default() }, t);
    assert_eq!(p.state().value("GPP_D"), "decrypted", "{}", notes(&p));
    // RFC 8188 with Content-Encoding: the IKM is used even though the rule has --key.
    let spec = WrapSpec {
        gzip: true,
        encryption: Some(Encryption::Aes128Gcm { ikm: (0u8..16).collect(), rs: 4096, keyid: vec![] }),
    };
    let body = wrap(b"<flat-profile><GPP_D>gcm</GPP_D></flat-profile>", &spec).unwrap();
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        Response { status: 200, body: body.clone(), content_encoding: Some("aes128gcm".into()), ..Response::default() },
        t,
    );
    assert_eq!(p.state().value("GPP_D"), "gcm");
    // Garbage fails the resync and keeps the state.
    let (t, r) = next_request(&mut p);
    p.handle_response(r.id, ok("Salted__12345678 not really"), t);
    assert_eq!((p.state().value("GPP_D").as_str(), p.failures()), ("gcm", 1), "{}", notes(&p));
}

#[test]
fn status_codes_as_the_guides_say() {
    // 404 fails the resync (retry after Resync_Error_Retry_Delay)...
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(r.id, status(404), t);
    assert_eq!(p.failures(), 1);
    assert_eq!(p.poll_timeout(), Some(t + 3600));
    let (t, r) = next_request(&mut p);
    assert!(p.variables().get("PRVST") == Some("2"), "a retry has $PRVST 2");
    // ... unless Resync_Fails_On_FNF is No. 302 is followed at once.
    p.handle_response(
        r.id,
        ok("<flat-profile><Resync_Fails_On_FNF>No</Resync_Fails_On_FNF><Profile_Rule>[--uid u --pwd p] http://s/a.xml</Profile_Rule></flat-profile>"),
        t,
    );
    let (t, r) = next_request(&mut p);
    p.handle_response(r.id, Response { status: 302, location: Some("/moved.xml".into()), ..Response::default() }, t);
    let r2 = take_request(&mut p);
    assert_eq!(r2.url.to_string(), "http://s/moved.xml");
    // 401: answered with --uid/--pwd at most twice, then the resync fails.
    let challenge = Response { status: 401, challenges: vec!["Basic realm=\"x\"".into()], ..Response::default() };
    p.handle_response(r2.id, challenge.clone(), t);
    let r3 = take_request(&mut p);
    assert_eq!(r3.authorization.as_deref(), Some("Basic dTpw"));
    p.handle_response(r3.id, challenge.clone(), t);
    let r4 = take_request(&mut p);
    p.handle_response(r4.id, challenge, t);
    assert!(p.poll_action().is_none(), "no third retry");
    assert_eq!(p.failures(), 1, "{}", notes(&p));
    // 404 now counts as success.
    let (t, r) = next_request(&mut p);
    p.handle_response(r.id, status(404), t);
    assert_eq!(p.failures(), 0, "{}", notes(&p));
    // 500 is an error.
    let (t, r) = next_request(&mut p);
    p.handle_response(r.id, status(500), t);
    assert_eq!(p.failures(), 1);
}

#[test]
fn upgrade_rule_downloads_reboots_and_resyncs() {
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok("<flat-profile><Upgrade_Rule>($SWVER ne sip88xx.12-0-1MPP)? http://s/fw/sip88xx.12-0-1MPP.loads</Upgrade_Rule></flat-profile>"),
        t,
    );
    let fw = take_request(&mut p);
    assert_eq!((fw.purpose, fw.url.path.as_str()), (Purpose::Upgrade, "/fw/sip88xx.12-0-1MPP.loads"));
    p.handle_response(fw.id, ok("firmware image"), t + 5);
    assert_eq!(p.device().firmware, "sip88xx.12-0-1MPP");
    assert_eq!(p.device().user_agent(), "Cisco-CP-8841-3PCC/12.0.1 (000e08aabbcc)");
    // After the reboot, the boot resync; the rule's condition no longer holds.
    let (t2, r) = next_request(&mut p);
    assert!(t2 <= t + 5 + 2);
    p.handle_response(r.id, status(404), t2);
    let upgraded = when(&p, |e| matches!(e, Event::Upgraded { load, .. } if load == "sip88xx.12-0-1MPP"));
    let rebooted = p.notes().iter().rev().find(|n| matches!(n.event, Event::Booted { .. })).map(|n| n.at);
    assert!(upgraded.is_some() && rebooted >= upgraded, "{}", notes(&p));
}

#[test]
fn triggers_hold_back_a_due_resync() {
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok(r#"<flat-profile><Resync_Trigger_1>"$A" eq "go"</Resync_Trigger_1><Resync_Periodic>60</Resync_Periodic></flat-profile>"#),
        t,
    );
    let due = p.poll_timeout().unwrap();
    p.handle_timeout(due);
    assert!(p.poll_action().is_none(), "trigger false: no fetch");
    assert!(happened(&p, |e| *e == Event::TriggersHoldBack), "{}", notes(&p));
}

#[test]
fn reports_upload_the_configuration_encrypted_with_the_key() {
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok("<flat-profile><GPP_SA>k</GPP_SA><Report_Rule>[--key $SA]http://s/report/$MA.xml</Report_Rule></flat-profile>"),
        t,
    );
    p.report(t + 1);
    let up = take_request(&mut p);
    assert_eq!((up.method, up.purpose, up.url.path.as_str()), ("POST", Purpose::Report, "/report/000e08aabbcc.xml"));
    let keys = provisor_envelope::Keys { key: Some(b"k".to_vec()), ..Default::default() };
    let plain = provisor_envelope::unwrap(&up.body, &keys, &Default::default()).unwrap().plaintext;
    assert!(String::from_utf8(plain).unwrap().contains("<GPP_SA ua=\"na\">k</GPP_SA>"));
}

#[test]
fn schedules_periodic_lists_resync_at_and_random_delay() {
    // A list in Resync_Periodic: successive successes take successive elements.
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok("<flat-profile><Resync_Periodic>100,200,300</Resync_Periodic><Profile_Rule>http://s/a.xml</Profile_Rule></flat-profile>"),
        t,
    );
    let first = p.poll_timeout().unwrap() - t;
    let (t2, r) = next_request(&mut p);
    p.handle_response(r.id, ok("<flat-profile/>"), t2);
    let second = p.poll_timeout().unwrap() - t2;
    assert_eq!((first, second), (100, 200), "{}", notes(&p));
    // Resync_At: the next resync is at that time of day, plus up to Resync_At_Random_Delay.
    let (t3, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok("<flat-profile><Resync_At>0300</Resync_At><Resync_At_Random_Delay>60</Resync_At_Random_Delay></flat-profile>"),
        t3,
    );
    let at = p.poll_timeout().unwrap();
    assert!((3 * 3600..=3 * 3600 + 60).contains(&(at % 86_400)), "{at}: {}", notes(&p));
    // Resync_Random_Delay bounds the boot resync, with any seed.
    for seed in 0..50 {
        let mut q = Phone::new(Device::new("000e08aabbcc", "CP-8841-3PCC", "sip88xx.11-0-1MPP"), None, seed);
        q.boot(1000);
        assert!((1000..=1002).contains(&q.poll_timeout().unwrap()));
    }
}

#[test]
fn post_sends_the_expanded_gpp_as_the_body() {
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok(r#"<flat-profile><GPP_C>MAC_Addr = "$MA"; SW_Ver = "$SWVER";</GPP_C><Profile_Rule>[--post c] http://s/post</Profile_Rule></flat-profile>"#),
        t,
    );
    let (_, r) = next_request(&mut p);
    assert_eq!(r.method, "POST");
    assert_eq!(String::from_utf8(r.body).unwrap(), r#"MAC_Addr = "000e08aabbcc"; SW_Ver = "sip88xx.11-0-1MPP";"#);
}

#[test]
fn downgrade_rev_limit_and_upgrade_enable_stop_upgrades() {
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok("<flat-profile><Downgrade_Rev_Limit>sip88xx.11-0-0MPP</Downgrade_Rev_Limit>\
            <Upgrade_Rule>http://s/fw/sip88xx.10-4-1MPP.loads</Upgrade_Rule></flat-profile>"),
        t,
    );
    assert!(p.poll_action().is_none() || !p.busy(), "no firmware fetch");
    assert!(
        happened(&p, |e| matches!(e, Event::UpgradeSkipped(why) if why.contains("Downgrade_Rev_Limit"))),
        "{}",
        notes(&p)
    );
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok("<flat-profile><Upgrade_Enable>No</Upgrade_Enable><Downgrade_Rev_Limit></Downgrade_Rev_Limit></flat-profile>"),
        t,
    );
    assert!(
        happened(&p, |e| matches!(e, Event::UpgradeSkipped(why) if why.contains("Upgrade_Enable"))),
        "{}",
        notes(&p)
    );
}

#[test]
fn a_transport_error_is_a_failed_resync_and_syslog_says_so() {
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok("<flat-profile><Syslog_Server>10.0.0.9:514</Syslog_Server><Profile_Rule>http://s/a.xml</Profile_Rule></flat-profile>"),
        t,
    );
    let due = p.poll_timeout().unwrap();
    p.handle_timeout(due);
    let mut lines = Vec::new();
    let mut request = None;
    while let Some(a) = p.poll_action() {
        match a {
            Action::Syslog { server, line } => lines.push((server, line)),
            Action::Request(r) => request = Some(r),
        }
    }
    let r = request.unwrap();
    p.handle_response(r.id, Response { error: Some("connection refused".into()), ..Response::default() }, due);
    while let Some(a) = p.poll_action() {
        if let Action::Syslog { server, line } = a {
            lines.push((server, line));
        }
    }
    assert_eq!(p.failures(), 1);
    assert!(lines.iter().all(|(s, _)| s == "10.0.0.9:514"));
    assert!(
        lines.iter().any(|(_, l)| l.contains("CP-8841-3PCC 00:0e:08:aa:bb:cc -- Requesting resync http://s:80/a.xml")),
        "{lines:?}"
    );
    assert!(
        lines.last().unwrap().1.starts_with("<11>")
            && lines.last().unwrap().1.contains("Resync failed: connection refused"),
        "{lines:?}"
    );
}

#[test]
fn a_failed_upgrade_is_retried_after_upgrade_error_retry_delay() {
    let profile = "<flat-profile><Upgrade_Error_Retry_Delay>300</Upgrade_Error_Retry_Delay>\
                   <Resync_Periodic>3600</Resync_Periodic>\
                   <Upgrade_Rule>http://s/fw/sip88xx.12-0-1MPP.loads</Upgrade_Rule></flat-profile>";
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(r.id, ok(profile), t);
    let fw = take_request(&mut p);
    assert_eq!(fw.purpose, Purpose::Upgrade);
    p.handle_response(fw.id, status(503), t);
    // Resync_After_Upgrade_Attempt (Yes by default): a resync at once, which does not try the upgrade again.
    let (t1, again) = next_request(&mut p);
    assert_eq!((t1, again.purpose), (t, Purpose::Profile(0)), "{}", notes(&p));
    p.handle_response(again.id, ok(profile), t1);
    assert!(p.poll_action().is_none(), "no second upgrade attempt before the retry delay: {}", notes(&p));
    let after_upgrade = |e: &Event| matches!(e, Event::ResyncStarted { reason: "after_upgrade", prvst: 1 });
    assert!(happened(&p, after_upgrade), "{}", notes(&p));
    assert_eq!(p.poll_timeout(), Some(t + 300), "{}", notes(&p));
    let (t2, again) = next_request(&mut p);
    assert_eq!((t2, again.purpose), (t + 300, Purpose::Upgrade));
    assert_eq!(p.variables().get("UPGST"), Some("2"));
    p.handle_response(again.id, ok("image"), t2);
    assert_eq!(p.device().firmware, "sip88xx.12-0-1MPP", "{}", notes(&p));

    // Resync_After_Upgrade_Attempt = No: the failure leaves the periodic schedule alone.
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok(&profile.replace(
            "<flat-profile>",
            "<flat-profile><Resync_After_Upgrade_Attempt>No</Resync_After_Upgrade_Attempt>",
        )),
        t,
    );
    let fw = take_request(&mut p);
    p.handle_response(fw.id, status(503), t);
    assert_eq!(p.poll_timeout(), Some(t + 300), "{}", notes(&p));
    assert!(!happened(&p, |e| matches!(e, Event::ResyncStarted { reason: "after_upgrade", .. })), "{}", notes(&p));
}

#[test]
fn proxy_challenges_and_redirects_to_another_scheme() {
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        ok("<flat-profile><Profile_Rule>[--uid u --pwd p] http://s/a.xml</Profile_Rule></flat-profile>"),
        t,
    );
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        Response { status: 302, location: Some("https://t:8443/b.xml".into()), ..Response::default() },
        t,
    );
    let r2 = take_request(&mut p);
    assert_eq!(r2.url.to_string(), "https://t:8443/b.xml");
    let digest = "Digest realm=\"r\", nonce=\"n1\", qop=\"auth\"".to_string();
    p.handle_response(r2.id, Response { status: 407, challenges: vec![digest], ..Response::default() }, t);
    let r3 = take_request(&mut p);
    let auth = r3.authorization.clone().unwrap();
    assert!(auth.starts_with("Digest username=\"u\", realm=\"r\", nonce=\"n1\", uri=\"/b.xml\""), "{auth}");
    p.handle_response(r3.id, ok("<flat-profile><GPP_E>via proxy</GPP_E></flat-profile>"), t);
    assert_eq!(p.state().value("GPP_E"), "via proxy");
}

/// A phone provisioned with `params` (a flat profile's body), its first resync answered; returns the time.
fn provisioned(params: &str) -> (Phone, u64) {
    let mut p = phone();
    let (t, r) = next_request(&mut p);
    p.handle_response(r.id, ok(&format!("<flat-profile>{params}</flat-profile>")), t);
    (p, t)
}

fn requests(p: &mut Phone) -> Vec<Request> {
    let mut v = Vec::new();
    while let Some(a) = p.poll_action() {
        if let Action::Request(r) = a {
            v.push(r);
        }
    }
    v
}

#[test]
fn a_resync_waits_for_idle_lines_at_most_forced_resync_delay() {
    let params = "<Resync_Periodic>1000</Resync_Periodic><Forced_Resync_Delay>500</Forced_Resync_Delay>\
                  <Profile_Rule>http://s/a.xml</Profile_Rule>";
    // The call ends before Forced_Resync_Delay: the resync runs when the lines go idle.
    let (mut p, t) = provisioned(params);
    p.set_line_active(t + 900, true);
    assert_eq!(p.poll_timeout(), Some(t + 1000));
    p.handle_timeout(t + 1000);
    assert!(requests(&mut p).is_empty(), "no resync during the call: {}", notes(&p));
    assert_eq!(p.poll_timeout(), Some(t + 1500), "woken again when Forced_Resync_Delay has passed");
    p.set_line_active(t + 1200, false);
    let r = requests(&mut p);
    assert_eq!(r.len(), 1, "{}", notes(&p));
    assert_eq!(r[0].url.to_string(), "http://s/a.xml");
    // The call goes on: the resync is forced Forced_Resync_Delay after it came due.
    let (mut p, t) = provisioned(params);
    p.set_line_active(t + 10, true);
    p.handle_timeout(t + 1000);
    assert!(requests(&mut p).is_empty());
    p.handle_timeout(t + 1499);
    assert!(requests(&mut p).is_empty());
    p.handle_timeout(t + 1500);
    assert_eq!(requests(&mut p).len(), 1, "{}", notes(&p));
    assert!(happened(&p, |e| *e == Event::ResyncForced), "{}", notes(&p));
}

#[test]
fn sip_notify_resync_follows_resync_from_sip_and_report_and_reboot_work() {
    let (mut p, t) = provisioned(
        "<Profile_Rule>http://s/a.xml</Profile_Rule><Report_Rule>http://s/r.xml</Report_Rule>\
         <Resync_Periodic>3600</Resync_Periodic>",
    );
    assert!(p.sip_notify(t + 5, "resync"));
    let r = requests(&mut p);
    assert_eq!(r.len(), 1);
    assert_eq!(p.variables().get("PRVST"), Some("-1"), "an explicit request: $PRVST is -1");
    p.handle_response(r[0].id, ok("<flat-profile><Resync_From_SIP>No</Resync_From_SIP></flat-profile>"), t + 6);
    assert!(!p.sip_notify(t + 10, "resync"));
    assert!(requests(&mut p).is_empty(), "{}", notes(&p));
    assert!(p.sip_notify(t + 11, "report"));
    let r = requests(&mut p);
    assert_eq!((r.len(), r[0].purpose, r[0].method), (1, Purpose::Report, "POST"));
    assert!(!p.sip_notify(t + 12, "check-sync"));
    assert!(p.sip_notify(t + 20, "reboot_now"));
    let boots: Vec<u64> = p.notes().iter().filter(|n| matches!(n.event, Event::Booted { .. })).map(|n| n.at).collect();
    assert!(boots.contains(&20) || boots.contains(&(t + 20)), "{}", notes(&p));
    assert!((t + 20..=t + 22).contains(&p.poll_timeout().unwrap()), "Resync_On_Reset after the reboot");
}

#[test]
fn provision_enable_no_stops_resyncs_until_it_is_yes_again() {
    let (mut p, t) = provisioned("<Provision_Enable>No</Provision_Enable><Resync_Periodic>100</Resync_Periodic>");
    p.handle_timeout(t + 100);
    assert!(requests(&mut p).is_empty());
    assert_eq!(p.poll_timeout(), None, "{}", notes(&p));
    p.local_change(t + 150, "Provision_Enable", "Yes");
    assert_eq!(p.poll_timeout(), Some(t + 250), "{}", notes(&p));
    p.handle_timeout(t + 250);
    assert_eq!(requests(&mut p).len(), 1);
}

fn decrypt(body: &[u8], key: &str) -> String {
    let keys = provisor_envelope::Keys { key: Some(key.as_bytes().to_vec()), ..Default::default() };
    String::from_utf8(provisor_envelope::unwrap(body, &keys, &Default::default()).unwrap().plaintext).unwrap()
}

#[test]
fn report_to_server_periodically_and_on_local_change_with_delta_and_status_reports() {
    // Periodically: every Periodic_Upload_To_Server seconds, 600 at least.
    let (mut p, t) = provisioned(
        "<Report_To_Server>Periodically</Report_To_Server><Periodic_Upload_To_Server>100</Periodic_Upload_To_Server>\
         <Report_Rule>http://s/full.xml</Report_Rule><Resync_Periodic>86400</Resync_Periodic>",
    );
    assert_eq!(p.poll_timeout(), Some(t + 600), "{}", notes(&p));
    p.handle_timeout(t + 600);
    assert_eq!(requests(&mut p).len(), 1);
    assert_eq!(p.poll_timeout(), Some(t + 1200));

    // On Local Change: Upload_Delay_On_Local_Change after the last change; --delta carries only what changed,
    // --status the status page; a TFTP URL is written.
    let (mut p, t) = provisioned(
        "<GPP_SA>k</GPP_SA><Report_To_Server>On Local Change</Report_To_Server>\
         <Upload_Delay_On_Local_Change>30</Upload_Delay_On_Local_Change><Resync_Periodic>86400</Resync_Periodic>\
         <Report_Rule>[--delta --key $SA]http://s/delta.xml [--status]tftp://s/status.xml</Report_Rule>",
    );
    assert_eq!(p.poll_timeout(), Some(t + 86400));
    p.local_change(t + 10, "Station_Display_Name", "Desk 1");
    p.local_change(t + 20, "Station_Display_Name", "Desk 2");
    assert_eq!(p.poll_timeout(), Some(t + 50), "debounced: 30 s after the last change: {}", notes(&p));
    p.handle_timeout(t + 50);
    let r = requests(&mut p);
    assert_eq!(r.len(), 2, "{}", notes(&p));
    let first_delta = decrypt(&r[0].body, "k");
    assert!(first_delta.contains("Desk 2") && first_delta.contains("<GPP_SA"), "the first delta is everything");
    assert_eq!((r[1].method, r[1].url.scheme.as_str()), ("PUT", "tftp"));
    let status = String::from_utf8(r[1].body.clone()).unwrap();
    assert!(status.contains("<Product_Name>CP-8841-3PCC</Product_Name>"), "{status}");
    assert!(status.contains("<MAC_Address>000e08aabbcc</MAC_Address>"), "{status}");
    p.local_change(t + 100, "Station_Display_Name", "Desk 3");
    p.handle_timeout(t + 130);
    let r = requests(&mut p);
    let delta = decrypt(&r[0].body, "k");
    assert!(delta.contains("Desk 3") && !delta.contains("GPP_SA"), "only the change: {delta}");

    // On Request (the default): no timer.
    let (p, t) = provisioned("<Report_Rule>http://s/r.xml</Report_Rule><Resync_Periodic>5000</Resync_Periodic>");
    assert_eq!(p.poll_timeout(), Some(t + 5000));
}

#[test]
fn srv_names_the_lookup_and_fails_with_tftp() {
    let (mut p, _) = provisioned(
        "<Profile_Rule>[--srv] https://prov.example.com/$MA.xml</Profile_Rule>\
         <Profile_Rule_B>[--srv] tftp://prov.example.com/b.xml</Profile_Rule_B><Resync_Periodic>100</Resync_Periodic>",
    );
    // The first resync already failed on Profile_Rule_B: the retry follows Resync_Error_Retry_Delay.
    let srv_tftp = |e: &Event| matches!(e, Event::Unsupported { error, .. } if error == "Error - TFTP Scheme not supported in SRV lookups");
    assert!(happened(&p, srv_tftp), "{}", notes(&p));
    assert_eq!(p.failures(), 1);
    let (t, r) = next_request(&mut p);
    assert_eq!(r.srv.as_deref(), Some("_ciscoprov-https._tls.prov.example.com"));
    p.handle_response(r.id, ok("<flat-profile/>"), t + 1);
    assert!(requests(&mut p).is_empty(), "no TFTP fetch with --srv");
    assert_eq!(p.failures(), 2);
}

#[test]
fn periodic_ranges_and_error_retry_lists_through_the_core() {
    // Resync_Periodic "2400+30": 2400 s plus up to 30 s, for any seed.
    for seed in 0..20 {
        let mut p =
            Phone::new(Device::new("000e08aabbcc", "CP-8841-3PCC", "sip88xx.11-0-1MPP"), Some("10.0.0.5".into()), seed);
        p.boot(0);
        let (t, r) = next_request(&mut p);
        p.handle_response(r.id, ok("<flat-profile><Resync_Periodic>2400+30</Resync_Periodic></flat-profile>"), t);
        let d = p.poll_timeout().unwrap() - t;
        assert!((2400..=2430).contains(&d), "{d}");
    }
    // Resync_Error_Retry_Delay "30,60,120": successive failures take successive elements, then the last one.
    let (mut p, _) = provisioned(
        "<Resync_Error_Retry_Delay>30,60,120</Resync_Error_Retry_Delay><Profile_Rule>http://s/a.xml</Profile_Rule>\
         <Resync_Periodic>1000</Resync_Periodic>",
    );
    let mut delays = Vec::new();
    for _ in 0..4 {
        let (t, r) = next_request(&mut p);
        p.handle_response(r.id, status(500), t);
        delays.push(p.poll_timeout().unwrap() - t);
    }
    assert_eq!(delays, [30, 60, 120, 120], "{}", notes(&p));
    let (t, r) = next_request(&mut p);
    p.handle_response(r.id, ok("<flat-profile/>"), t);
    assert_eq!(p.poll_timeout().unwrap() - t, 1000, "a success goes back to Resync_Periodic");
}

#[test]
fn resync_after_upgrade_attempt_resyncs_after_the_reboot_without_resync_on_reset() {
    let (mut p, t) = provisioned(
        "<Resync_On_Reset>No</Resync_On_Reset><Upgrade_Rule>http://s/fw/sip88xx.12-0-1MPP.loads</Upgrade_Rule>\
         <Profile_Rule>http://s/a.xml</Profile_Rule>",
    );
    let fw = take_request(&mut p);
    p.handle_response(fw.id, ok("image"), t + 5);
    assert_eq!(p.poll_timeout(), Some(t + 5), "{}", notes(&p));
    let (_, r) = next_request(&mut p);
    assert_eq!(r.url.to_string(), "http://s/a.xml");
    assert!(happened(&p, |e| matches!(e, Event::ResyncStarted { reason: "after_upgrade", .. })), "{}", notes(&p));
}

/// specs.md §4.3, the whole table: 301/302 retried at once, 401/407 answered at most twice; 404 is "B", every other
/// status "C" (a failed resync, retried after Resync_Error_Retry_Delay). No other 3xx is followed.
#[test]
fn every_other_status_is_a_failed_resync_retried_after_the_error_delay() {
    for code in [300, 303, 304, 305, 307, 308, 400, 402, 403, 405, 406, 408, 410, 429, 500, 501, 502, 503, 504, 599] {
        let (mut p, _) = provisioned(
            "<Profile_Rule>[--uid u --pwd p] http://s/a.xml</Profile_Rule><Resync_Error_Retry_Delay>77</Resync_Error_Retry_Delay>",
        );
        let (t, r) = next_request(&mut p);
        let response =
            Response { status: code, location: Some("http://elsewhere/x.xml".into()), ..Response::default() };
        p.handle_response(r.id, response, t);
        assert!(requests(&mut p).is_empty(), "{code} is not retried at once: {}", notes(&p));
        assert_eq!(p.failures(), 1, "{code}: {}", notes(&p));
        assert_eq!(p.poll_timeout(), Some(t + 77), "{code}");
        let failed = |e: &Event| matches!(e, Event::FetchFailed { error, .. } if *error == format!("http_get failed (status {code})"));
        assert!(happened(&p, failed), "{code}: {}", notes(&p));
    }
    // 301 and 302 need a Location; a redirect loop ends after 5 hops.
    let (mut p, _) = provisioned("<Profile_Rule>http://s/a.xml</Profile_Rule>");
    let (t, r) = next_request(&mut p);
    p.handle_response(r.id, status(301), t);
    assert_eq!(p.failures(), 1, "301 without Location: {}", notes(&p));
    let (t, mut r) = next_request(&mut p);
    let mut hops = 0;
    loop {
        p.handle_response(r.id, Response { status: 302, location: Some("/loop.xml".into()), ..Response::default() }, t);
        match requests(&mut p).pop() {
            Some(next) => {
                hops += 1;
                r = next;
            }
            None => break,
        }
    }
    assert_eq!((hops, p.failures()), (5, 2), "{}", notes(&p));
    // 401 with no --uid/--pwd in the rule: not answered.
    let (t, r) = next_request(&mut p);
    p.handle_response(
        r.id,
        Response { status: 401, challenges: vec!["Basic realm=\"r\"".into()], ..Response::default() },
        t,
    );
    assert!(requests(&mut p).is_empty());
    assert_eq!(p.failures(), 3);
}
