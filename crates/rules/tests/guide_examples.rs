//! The conformance suite: every rule example of Cisco "Provisioning Formats" (003) and the 7800/8800 MPP
//! provisioning guide (002), evaluated as a phone would, named after the section it comes from.

use provisor_rules::macros::Variables;
use provisor_rules::rule::{Rule, RuleKind, Selection};
use provisor_rules::url::Scheme;

const DHCP: Option<&str> = Some("192.168.1.5");

fn phone() -> Variables {
    let mut v = Variables::new();
    v.set("MA", "000e08012345")
        .set("PN", "CP-8841-3PCC")
        .set("PSN", "8841")
        .set("SN", "FCH1234ABCD")
        .set("SWVER", "sip88xx.11-3-1MPP-600")
        .set("CCERT", "Installed")
        .set("PRVTMR", "700");
    v
}

fn eval(text: &str, kind: RuleKind, vars: &Variables) -> Selection {
    let rule = Rule::parse(text, kind).unwrap_or_else(|e| panic!("{}", e.render(text)));
    rule.evaluate(vars, DHCP).unwrap_or_else(|e| panic!("{}", e.render(text)))
}

fn url(s: &Selection) -> String {
    s.url.as_ref().map(|u| u.to_string()).unwrap_or_default()
}

#[test]
fn profile_rules_example_1_unconditional() {
    let s = eval("http://remote.server.com/cisco/$MA.cfg", RuleKind::Profile, &phone());
    assert_eq!(s.alternative, Some(0));
    assert_eq!(url(&s), "http://remote.server.com/cisco/000e08012345.cfg");
}

#[test]
fn profile_rules_example_2_post_on_lost_registration() {
    let text = "($PRVTMR ge 600)? http://p.tel.com/has-reg.cfg\n| [--post a] http://p.tel.com/lost-reg?";
    let mut v = phone();
    v.set("A", "MAC=$MA");
    let s = eval(text, RuleKind::Profile, &v);
    assert_eq!((s.alternative, url(&s)), (Some(0), "http://p.tel.com/has-reg.cfg".to_string()));
    v.set("PRVTMR", "10");
    let s = eval(text, RuleKind::Profile, &v);
    assert_eq!((s.alternative, url(&s)), (Some(1), "http://p.tel.com/lost-reg?".to_string()));
    assert_eq!(s.options.post.as_deref(), Some("GPP_A"));
    assert_eq!(s.options.post_body.as_deref(), Some("MAC=000e08012345"), "the POST body is macro-expanded");
}

#[test]
fn profile_rules_example_3_certificate_installed() {
    let text = "(\"$CCERT\" eq \"Installed\")? https://p.tel.com/config?\n| https://p.tel.com/config?cisco$MAU";
    let s = eval(text, RuleKind::Profile, &phone());
    assert_eq!(url(&s), "https://p.tel.com/config?");
    let mut v = phone();
    v.set("CCERT", "Not Installed");
    let s = eval(text, RuleKind::Profile, &v);
    assert_eq!(url(&s), "https://p.tel.com/config?cisco000E08012345");
}

#[test]
fn profile_rules_example_4_assignment_disables_line() {
    let text = "(\"$A\" ne \"Provisioned\")? (Line_Enable_1_ = \"No\";)! https://p.tel.com/init-prov\n| https://p.tel.com/configs";
    let s = eval(text, RuleKind::Profile, &phone());
    assert_eq!(s.alternative, Some(0));
    assert_eq!(s.assignments, vec![("Line_Enable_1_".to_string(), "No".to_string())]);
    assert_eq!(url(&s), "https://p.tel.com/init-prov");
    let mut v = phone();
    v.set("A", "Provisioned");
    let s = eval(text, RuleKind::Profile, &v);
    assert_eq!((s.alternative, s.assignments.len(), url(&s)), (Some(1), 0, "https://p.tel.com/configs".to_string()));
}

#[test]
fn profile_rules_example_5_alias() {
    let s = eval("[--alias b] https://p.tel.com/account/$PN$MA.xml", RuleKind::Profile, &phone());
    assert_eq!(s.options.alias.as_deref(), Some("GPP_B"));
    assert_eq!(url(&s), "https://p.tel.com/account/CP-8841-3PCC000e08012345.xml");
}

#[test]
fn profile_rules_skipped_when_no_condition_holds_or_empty() {
    let s = eval("(1 eq 2)? http://a/x | (2 eq 3)? http://b/y", RuleKind::Profile, &phone());
    assert_eq!(s.alternative, None);
    assert_eq!(s.url, None);
    assert_eq!(s.conditions.len(), 2);
    let s = eval("", RuleKind::Profile, &phone());
    assert_eq!(s.alternative, None);
}

#[test]
fn open_profile_encryption_key_option() {
    let s = eval("[--key \"SecretPhrase1234\"] http://prov.telco.com/path/profile.cfg", RuleKind::Profile, &phone());
    assert_eq!(s.options.key.as_deref(), Some("SecretPhrase1234"));
    assert_eq!(url(&s), "http://prov.telco.com/path/profile.cfg");
}

#[test]
fn optional_resync_arguments_key_examples() {
    let mut v = phone();
    v.set("SC", "sc-secret").set("SD", "sd secret");
    for (text, key) in [
        ("[--key VerySecretValue] /p.cfg", "VerySecretValue"),
        ("[--key \"my secret phrase\"] /p.cfg", "my secret phrase"),
        ("[--key a37d2fb9055c1d04883a0745eb0917a4] /p.cfg", "a37d2fb9055c1d04883a0745eb0917a4"),
        ("[--key $SC] /p.cfg", "sc-secret"),
        ("[--key \"$SD\"] /p.cfg", "sd secret"),
    ] {
        let s = eval(text, RuleKind::Profile, &v);
        assert_eq!(s.options.key.as_deref(), Some(key), "{text}");
        assert_eq!(url(&s), "tftp://192.168.1.5/p.cfg", "no server: the DHCP option 66 server, over TFTP");
    }
}

#[test]
fn optional_resync_arguments_uid_and_pwd() {
    let mut v = phone();
    v.set("SA", "MyUserID").set("SB", "MySecretPassword");
    let s = eval(
        "[--uid $SA --pwd $SB] https://provisioning_server_url/path_to_your_config/your_config.xml",
        RuleKind::Profile,
        &v,
    );
    assert_eq!(s.options.uid.as_deref(), Some("MyUserID"));
    assert_eq!(s.options.pwd.as_deref(), Some("MySecretPassword"));
    // $SA..$SD stay as written anywhere else, e.g. in the URL.
    let s = eval("https://h/$SA.cfg", RuleKind::Profile, &v);
    assert_eq!(url(&s), "https://h/$SA.cfg");
}

#[test]
fn url_syntax_examples_in_rules() {
    let mut v = phone();
    v.set("D", "dir").set("E", "file");
    for (text, expected) in [
        ("/$MA.cfg", "tftp://192.168.1.5/000e08012345.cfg"),
        ("/cisco/cfg.xml", "tftp://192.168.1.5/cisco/cfg.xml"),
        ("192.168.1.130/profiles/init.cfg", "tftp://192.168.1.130/profiles/init.cfg"),
        ("tftp://prov.call.com/cpe/cisco$MA.cfg", "tftp://prov.call.com/cpe/cisco000e08012345.cfg"),
        ("http://neptune.speak.net:8080/prov/$D/$E.cfg", "http://neptune.speak.net:8080/prov/dir/file.cfg"),
        ("https://secure.me.com/profile?Linksys", "https://secure.me.com/profile?Linksys"),
    ] {
        assert_eq!(url(&eval(text, RuleKind::Profile, &v)), expected, "{text}");
    }
    let s = eval("tftp://prov.telco.com:6900/cisco/config/CP_xxxx_MPP.cfg", RuleKind::Profile, &v);
    let u = s.url.unwrap();
    assert_eq!((u.scheme, u.port), (Scheme::Tftp, 6900));
}

#[test]
fn conditional_expressions_upgrade_rule_examples() {
    let mut v = phone();
    for (model, old_fw, new_fw) in [
        ("68xx", "sip68xx.11-0-0MPP-256", "sip68xx.11-0-1MPP-300"),
        ("78xx", "sip78xx.11-0-0MPP-256", "sip78xx.11-0-1MPP-300"),
        ("88xx", "sip88xx.11-0-0MPP-256", "sip88xx.11-0-1MPP-300"),
    ] {
        let text = format!("($SWVER ne sip{model}.11-0-0MPP-256)? http://ps.tell.com/sw/sip{model}.11-0-0MPP-BN.loads");
        v.set("SWVER", old_fw);
        assert_eq!(eval(&text, RuleKind::Upgrade, &v).alternative, None, "{model}: already on that load");
        v.set("SWVER", new_fw);
        let s = eval(&text, RuleKind::Upgrade, &v);
        assert_eq!(url(&s), format!("http://ps.tell.com/sw/sip{model}.11-0-0MPP-BN.loads"));
        let text = format!(
            "($SWVER ne sip{model}.11-3-2MPP0001-609)?\nhttp://ps.tell.com/sw/sip{model}.11-3-2MPP0001-BN.loads"
        );
        v.set("SWVER", format!("sip{model}.11-3-2MPP0001-600"));
        assert!(eval(&text, RuleKind::Upgrade, &v).url.is_some());
    }
}

#[test]
fn upgrade_rule_examples() {
    let v = phone();
    for text in [
        "https://10.73.10.223/firmware/sip78xx.11-3-1MPP-678.loads",
        "http://p.tel.com/firmware/sip88xx.11-3-1MPP-678.loads",
        "http://p.tel.com/firmware/sip6821.11-3-1MPP-678.loads",
        "tftp://192.168.1.5/image/sip88xx.11-0-0MPP-BN.loads",
        "http://10.74.10.205:6970/sip8845_65.0104-MPP-9875dev.loads",
    ] {
        assert_eq!(url(&eval(text, RuleKind::Upgrade, &v)), text);
    }
    let text = "(\"$F\" ne \"beta-customer\")? http://p.tel.com/firmware/sip88xx.11-3-1MPP-678.loads\n| http://p.tel.com/firmware/sip88xx.11-3-1MPP-679.loads";
    let mut v = phone();
    assert!(url(&eval(text, RuleKind::Upgrade, &v)).ends_with("678.loads"));
    v.set("F", "beta-customer");
    assert!(url(&eval(text, RuleKind::Upgrade, &v)).ends_with("679.loads"));
    // "For upgrade rules, the server must be specified."
    let e = Rule::parse("/sip88xx.loads", RuleKind::Upgrade).unwrap().evaluate(&v, DHCP).unwrap_err();
    assert!(e.message.contains("no server"), "{e}");
}

/// 002 (7800/8800 MPP provisioning guide): the secure first provisioning SEC-PRV-1/2 with `[--key $A]` and a random
/// path in GPP_B, the assignment form `(User_ID_1_ = "uid$B"; c = ""; d = "$MA";)!`, and the appendix sample rule.
#[test]
fn provisioning_guide_deployment_examples() {
    let mut v = phone();
    v.set("A", "5f8a2b").set("B", "a7c3e9f01b");
    let s = eval("[--key $A] http://prov.example.com/$B/$MA.cfg", RuleKind::Profile, &v);
    assert_eq!(s.options.key.as_deref(), Some("5f8a2b"));
    assert_eq!(url(&s), "http://prov.example.com/a7c3e9f01b/000e08012345.cfg");

    let s = eval("(User_ID_1_ = \"uid$B\" ; c = \"\" ; d = \"$MA\" ;)! https://p/x.cfg", RuleKind::Profile, &v);
    assert_eq!(
        s.assignments,
        vec![
            ("User_ID_1_".to_string(), "uida7c3e9f01b".to_string()),
            ("GPP_C".to_string(), String::new()),
            ("GPP_D".to_string(), "000e08012345".to_string()),
        ]
    );

    v.set("EMS", "mobile").set("MUID", "jdoe").set("MPWD", "pw");
    let text = "(\"$EMS\" eq \"mobile\")? [--uid $MUID --pwd $MPWD] http://192.0.2.1:80/dms/CP-8851-3PCC//8851System.xml |\nhttp://192.0.2.1:80/dms/CP-8851-3PCC//8851System.xml";
    let s = eval(text, RuleKind::Profile, &v);
    assert_eq!((s.options.uid.as_deref(), s.options.pwd.as_deref()), (Some("jdoe"), Some("pw")));
    assert_eq!(url(&s), "http://192.0.2.1/dms/CP-8851-3PCC//8851System.xml");

    let s = eval("($(MAU:4) eq 08012345)? /$(MAU:8:2).cfg", RuleKind::Profile, &v);
    assert_eq!(url(&s), "tftp://192.168.1.5/23.cfg");
}

#[test]
fn condition_errors_carry_the_rule_column() {
    let text = "(1 eq 1)? http://a/x | ($SWVER gt 5)? http://b/y";
    let r = Rule::parse(text, RuleKind::Profile).unwrap();
    assert!(r.evaluate(&phone(), DHCP).is_ok(), "the first alternative wins before the bad one is reached");
    let text = "(1 eq 2)? http://a/x | ($SWVER gt 5)? http://b/y";
    let e = Rule::parse(text, RuleKind::Profile).unwrap().evaluate(&phone(), DHCP).unwrap_err();
    assert_eq!(e.column, 25, "{e}");
    let e = Rule::parse("http://h:99999/x", RuleKind::Profile).unwrap().evaluate(&phone(), DHCP).unwrap_err();
    assert_eq!(e.column, 10, "{e}");
}

/// More examples of the 7800/8800 MPP provisioning guide (002): first-provisioning rules, conditions on timers and
/// versions, 3PCC upgrade rules, profile URLs with macros.
#[test]
fn provisioning_guide_002_more_examples() {
    let mut v = phone();
    v.set("A", "k3y").set("B", "rnd123");
    let s = eval("tftp.callme.com/profile/$MA/cp-x8xx-3pcc.cfg", RuleKind::Profile, &v);
    assert_eq!(url(&s), "tftp://tftp.callme.com/profile/000e08012345/cp-x8xx-3pcc.cfg");
    let s = eval("[--key $A] tftp.callme.com/profile/$B/cp-x8xx-3pcc.cfg", RuleKind::Profile, &v);
    assert_eq!(
        (s.options.key.as_deref(), url(&s).as_str()),
        (Some("k3y"), "tftp://tftp.callme.com/profile/rnd123/cp-x8xx-3pcc.cfg")
    );
    for (text, expected) in [
        ("tftp://192.168.1.200/CP-7841-3PCC$MA.cfg", "tftp://192.168.1.200/CP-7841-3PCC000e08012345.cfg"),
        ("tftp://prov.telco.com:6900/cisco/config/$PN.cfg", "tftp://prov.telco.com:6900/cisco/config/CP-8841-3PCC.cfg"),
        ("tftp://prov.telco.com/cisco/$B/$MA.cfg", "tftp://prov.telco.com/cisco/rnd123/000e08012345.cfg"),
    ] {
        assert_eq!(url(&eval(text, RuleKind::Profile, &v)), expected);
    }

    v.set("REGTMR1", "400").set("PRVTMR", "1300").set("EXTIP", "198.51.100.7");
    let cond = "($REGTMR1 gt 300 and $PRVTMR gt 1200 and \"$EXTIP\" ne \"\")? /lost.cfg";
    assert_eq!(eval(cond, RuleKind::Profile, &v).alternative, Some(0));
    v.set("EXTIP", "");
    assert_eq!(eval(cond, RuleKind::Profile, &v).alternative, None);

    // SPA-era firmware numbers: "$SWVER = 1.0.33".
    v.set("SWVER", "1.0.33");
    assert_eq!(eval("($SWVER = 1.0.33)? /same.cfg", RuleKind::Profile, &v).alternative, Some(0));

    // 3PCC upgrade rules.
    v.set("SWVER", "sip78xx.10-3-1-9-3PCC");
    let s = eval(
        "($SWVER ne sip78xx.10-3-1-10-3PCC)? http://ps.tell.com/sw/sip78xx.10-3-1-10-3PCC.loads",
        RuleKind::Upgrade,
        &v,
    );
    assert_eq!(url(&s), "http://ps.tell.com/sw/sip78xx.10-3-1-10-3PCC.loads");
    v.set("SWVER", "sip78xx.10-3-1-10-3PCC");
    assert_eq!(
        eval("($SWVER ne sip78xx.10-3-1-10-3PCC)? http://ps.tell.com/sw/x.loads", RuleKind::Upgrade, &v).url,
        None
    );
    for model in ["78xx", "88xx"] {
        let text = format!(
            "(\"$F\" ne \"beta-customer\")? http://p.tel.com/firmware/sip{model}.10-3-1-3PCC.loads\n| http://p.tel.com/firmware/beta.loads"
        );
        assert!(url(&eval(&text, RuleKind::Upgrade, &v)).ends_with("10-3-1-3PCC.loads"));
    }
}
