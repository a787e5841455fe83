//! Every example in the format sections of Cisco "Provisioning Formats" (`003_9fca91ea9f58c65c.txt`), as a test
//! named after its section, plus the parsing rules of `specs.md` §6.1.

use provisor_profile::{
    EmptyTag, EmptyValue, Parameter, ParseErrorKind, ParseOptions, Position, Profile, UserAccess, Value,
};

fn parse(xml: &str) -> Profile {
    Profile::parse_str(xml, &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn text(p: &Profile, name: &str) -> String {
    match &p.get(name).unwrap_or_else(|| panic!("{name} missing")).value {
        Value::Text(t) => t.to_string(),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn example_open_profile_format() {
    let p = parse(
        "<flat-profile>\n<Resync_On_Reset> Yes </Resync_On_Reset>\n<Resync_Periodic> 7200 </Resync_Periodic>\n\
         <Profile_Rule> tftp://prov.telco.com:6900/cisco/config/CP_xxxx_MPP.cfg</Profile_Rule>\n</flat-profile>\n",
    );
    assert_eq!(p.parameters.len(), 3);
    assert_eq!(text(&p, "Resync_On_Reset"), "Yes");
    assert_eq!(text(&p, "Resync_Periodic"), "7200");
    assert_eq!(text(&p, "Profile_Rule"), "tftp://prov.telco.com:6900/cisco/config/CP_xxxx_MPP.cfg");
    assert_eq!(p.parameters[1].position, Position { line: 3, column: 1 });
}

#[test]
fn element_tag_properties_matching_closing_tags() {
    let p = parse(
        "<flat-profile>\n<Resync_On_Reset> Yes\n  </Resync_On_Reset>\n<Resync_Periodic> 7200\n  </Resync_Periodic>\n\
         <Profile_Rule>tftp://prov.telco.com: 6900/cisco/config/CP_xxxx_MPP.cfg\n  </Profile_Rule>\n</flat-profile>",
    );
    assert_eq!(text(&p, "Resync_On_Reset"), "Yes");
    assert_eq!(text(&p, "Resync_Periodic"), "7200");
    assert_eq!(text(&p, "Profile_Rule"), "tftp://prov.telco.com: 6900/cisco/config/CP_xxxx_MPP.cfg");
}

#[test]
fn element_tag_properties_case_sensitive() {
    let p = parse(
        "<flat-profile><resync_on_reset>No</resync_on_reset><Resync_On_Reset>Yes</Resync_On_Reset></flat-profile>",
    );
    assert_eq!(text(&p, "Resync_On_Reset"), "Yes");
    assert_eq!(text(&p, "resync_on_reset"), "No");
    let err =
        Profile::parse_str("<flat-profile><GPP_A>1</gpp_a></flat-profile>", &ParseOptions::default()).unwrap_err();
    assert!(matches!(err.kind, ParseErrorKind::Xml(_)), "{err}");
}

#[test]
fn element_tag_properties_empty_element_profile_rule_b() {
    let p = parse("<flat-profile><Profile_Rule_B /></flat-profile>");
    assert_eq!(p.get("Profile_Rule_B").unwrap().value, Value::Text(Default::default()));
}

#[test]
fn element_tag_properties_empty_element_keeps_user_values() {
    let mut xml = String::from("<flat-profile>\n");
    for i in 2..=9 {
        xml += &format!("<Speed_Dial_{i}_Name ua=\"rw\"/>\n<Speed_Dial_{i}_Number ua=\"rw\"/>\n");
    }
    xml += "</flat-profile>\n";
    let p = parse(&xml);
    assert_eq!(p.parameters.len(), 16);
    for param in &p.parameters {
        assert_eq!(param.value, Value::Unchanged, "{}", param.name);
        assert_eq!(param.ua, Some(UserAccess::Rw));
    }
}

#[test]
fn element_tag_properties_empty_value_gpp_a() {
    let p = parse("<flat-profile>\n<GPP_A>\n</GPP_A>\n</flat-profile>");
    assert_eq!(p.get("GPP_A").unwrap().value, Value::Text(Default::default()));
}

#[test]
fn element_tag_properties_unrecognized_names_are_kept_for_the_caller_to_ignore() {
    let p = parse("<flat-profile><Not_A_Parameter>1</Not_A_Parameter></flat-profile>");
    assert_eq!(text(&p, "Not_A_Parameter"), "1");
}

#[test]
fn parameter_properties_last_occurrence_wins() {
    let p = parse("<flat-profile><GPP_A>first</GPP_A><GPP_B>b</GPP_B><GPP_A>second</GPP_A></flat-profile>");
    assert_eq!(text(&p, "GPP_A"), "second");
    let names: Vec<&str> = p.effective().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["GPP_A", "GPP_B"]);
    assert_eq!(p.effective()[0].value, Value::Text("second".into()));
}

#[test]
fn string_formats_comments_header_whitespace_newlines() {
    let p = parse(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- My comment is typed here -->\n<flat-profile>\n\
         <!-- inside too -->\n<GPP_A>\n   line one\n   line two  \n</GPP_A>\n<GPP_B>a<!-- c -->b</GPP_B>\n</flat-profile>",
    );
    assert_eq!(text(&p, "GPP_A"), "line one    line two");
    assert_eq!(text(&p, "GPP_B"), "ab");
}

#[test]
fn string_formats_crlf_becomes_one_space() {
    let p = parse("<flat-profile>\r\n<GPP_A>a\r\nb</GPP_A>\r\n</flat-profile>\r\n");
    assert_eq!(text(&p, "GPP_A"), "a b");
}

#[test]
fn string_formats_dial_plan_escapes() {
    let p = parse("<flat-profile>\n<Dial_Plan_1_>\n(S0 &lt;:18005551212&gt;)\n</Dial_Plan_1_>\n</flat-profile>");
    assert_eq!(text(&p, "Dial_Plan_1_"), "(S0 <:18005551212>)");
}

#[test]
fn string_formats_all_five_escapes_and_numeric_references() {
    let p = parse("<flat-profile><GPP_A>&amp;&lt;&gt;&apos;&quot; &#40;&#x2e;&#65;</GPP_A></flat-profile>");
    assert_eq!(text(&p, "GPP_A"), "&<>'\" (.A");
    let err =
        Profile::parse_str("<flat-profile><GPP_A>&nbsp;</GPP_A></flat-profile>", &ParseOptions::default()).unwrap_err();
    assert!(matches!(err.kind, ParseErrorKind::UnknownEntity(ref e) if e == "nbsp"), "{err}");
    assert_eq!(err.position, Position { line: 1, column: 22 });
}

#[test]
fn string_formats_ascii_only() {
    let err = Profile::parse_str("<flat-profile>\n<GPP_A>caf\u{e9}</GPP_A></flat-profile>", &ParseOptions::default())
        .unwrap_err();
    assert!(matches!(err.kind, ParseErrorKind::NonAscii { character: '\u{e9}', .. }), "{err}");
    assert_eq!(err.position.line, 2);
    let lenient = ParseOptions { ascii_only: false, ..ParseOptions::default() };
    assert!(Profile::parse_str("<flat-profile><GPP_A>caf\u{e9}</GPP_A></flat-profile>", &lenient).is_ok());
}

#[test]
fn configuration_profile_formats_utf8_only() {
    let err =
        Profile::parse(b"<flat-profile>\n<GPP_A>\xe9</GPP_A></flat-profile>", &ParseOptions::default()).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::InvalidUtf8);
    assert_eq!(err.position, Position { line: 2, column: 8 });
}

#[test]
fn wrappers_device_and_arbitrary_elements() {
    let p = parse(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<device xsi:type=\"axl:XIPPhone\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n<flat-profile>\n<GPP_A>1</GPP_A>\n</flat-profile>\n</device>",
    );
    assert_eq!(text(&p, "GPP_A"), "1");
    let p = parse(
        "<a><b><flat-profile><GPP_A>1</GPP_A></flat-profile></b><flat-profile><GPP_A>2</GPP_A></flat-profile></a>",
    );
    assert_eq!(p.parameters.len(), 2);
    assert_eq!(text(&p, "GPP_A"), "2");
}

#[test]
fn elements_outside_flat_profile_are_not_parameters() {
    let p = parse("<device><GPP_A>x</GPP_A><flat-profile><GPP_B>1</GPP_B></flat-profile></device>");
    assert!(p.get("GPP_A").is_none());
    let err = Profile::parse_str("<device><GPP_A>x</GPP_A></device>", &ParseOptions::default()).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::NoFlatProfile);
}

#[test]
fn attributes_ua_preserve_value_user_pref() {
    let p = parse(
        "<flat-profile><Station_Name ua=\"rw\" preserve-value=\"y\">Travel Agent 1</Station_Name>\
         <GPP_A ua=\"na\" user-pref=\"n\" group=\"Phone/General\">x</GPP_A><GPP_B ua='ro'>y</GPP_B></flat-profile>",
    );
    let s: &Parameter = p.get("Station_Name").unwrap();
    assert_eq!((s.ua, s.preserve_value, s.user_pref), (Some(UserAccess::Rw), true, None));
    let a = p.get("GPP_A").unwrap();
    assert_eq!((a.ua, a.preserve_value, a.user_pref), (Some(UserAccess::Na), false, Some(false)));
    assert_eq!(p.get("GPP_B").unwrap().ua, Some(UserAccess::Ro));
    let err =
        Profile::parse_str("<flat-profile>\n  <GPP_A ua=\"xx\">1</GPP_A></flat-profile>", &ParseOptions::default())
            .unwrap_err();
    assert!(matches!(err.kind, ParseErrorKind::UserAccess { .. }), "{err}");
    assert_eq!(err.position, Position { line: 2, column: 3 });
    assert_eq!(err.to_string(), "2:3: parameter <GPP_A> has ua=\"xx\"; expected \"na\", \"ro\" or \"rw\"");
    let curly = Profile::parse_str(
        "<flat-profile><GPP_A ua=\u{201d}na\u{201d}>1</GPP_A></flat-profile>",
        &ParseOptions::default(),
    );
    assert!(curly.is_err());
}

#[test]
fn data_types_note_empty_string_literal_and_reset_to_default() {
    let reset = ParseOptions { empty_value: EmptyValue::Default, ..ParseOptions::default() };
    let xml = "<flat-profile><GPP_A></GPP_A><GPP_B>\"\"</GPP_B><GPP_C/><GPP_D ua=\"rw\"/></flat-profile>";
    let p = Profile::parse_str(xml, &reset).unwrap();
    assert_eq!(p.get("GPP_A").unwrap().value, Value::Default);
    assert_eq!(p.get("GPP_B").unwrap().value, Value::Text(Default::default()));
    assert_eq!(p.get("GPP_C").unwrap().value, Value::Default);
    assert_eq!(p.get("GPP_D").unwrap().value, Value::Unchanged);
    let p = parse(xml);
    assert_eq!(p.get("GPP_A").unwrap().value, Value::Text(Default::default()));
    assert_eq!(p.get("GPP_B").unwrap().value, Value::Text(Default::default()));
    assert_eq!(p.get("GPP_C").unwrap().value, Value::Text(Default::default()));
    let literal = ParseOptions { empty_tag: EmptyTag::EmptyValue, ..ParseOptions::default() };
    let p = Profile::parse_str(xml, &literal).unwrap();
    assert_eq!(p.get("GPP_D").unwrap().value, Value::Text(Default::default()));
    // An escaped quote pair is a value of two quote characters, not the empty-string marker.
    assert_eq!(text(&parse("<flat-profile><GPP_A>&quot;\"</GPP_A></flat-profile>"), "GPP_A"), "\"\"");
}

#[test]
fn malformed_xml_errors_name_line_and_column() {
    let cases = [
        ("<flat-profile>\n<GPP_A>1</GPP_B>\n</flat-profile>", 2),
        ("<flat-profile>\n<GPP_A>1\n", 3),
        ("<flat-profile>\n<GPP_A><GPP_B>1</GPP_B></GPP_A>\n</flat-profile>", 2),
        ("<flat-profile>\n\n<GPP_A x=>1</GPP_A></flat-profile>", 3),
    ];
    for (xml, line) in cases {
        let err = Profile::parse_str(xml, &ParseOptions::default()).unwrap_err();
        assert_eq!(err.position.line, line, "{xml:?}: {err}");
    }
}

#[test]
fn appendix_sample_comment_with_double_hyphen_is_accepted() {
    // The 7800/8800 MPP provisioning guide's sample profile documents rule syntax inside a comment.
    let p = parse(
        "<flat-profile>\n<!--\nProfile Rule Syntax:\n(\"$EMS\" eq \"mobile\")? [--uid $MUID$PDOM --pwd $MPWD]\n-->\n\
         <Provision_Enable ua=\"na\">Yes</Provision_Enable>\n</flat-profile>",
    );
    assert_eq!(text(&p, "Provision_Enable"), "Yes");
}
