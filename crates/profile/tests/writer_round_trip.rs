//! The writer's output parses back to the same parameters, under every parse-option combination.

use proptest::prelude::*;
use provisor_profile::{EmptyTag, EmptyValue, Parameter, ParseOptions, Position, Profile, UserAccess, Value};

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_.-]{0,20}"
}

/// Values as a phone can hold them: no leading/trailing white space, no line breaks (the phone folds those).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\"\"".to_string()),
        "[ -~]{0,40}".prop_map(|s| s.trim().to_string()),
        "[a-z<>&'\"\\t]{1,10}".prop_map(|s| s.trim_matches(|c: char| c.is_ascii_whitespace()).to_string()),
    ]
}

fn parameter(options: ParseOptions) -> impl Strategy<Value = Parameter> {
    let ua = prop::option::of(prop_oneof![Just(UserAccess::Na), Just(UserAccess::Ro), Just(UserAccess::Rw)]);
    (name(), text(), ua, any::<bool>(), prop::option::of(any::<bool>()), 0..4u8).prop_map(
        move |(name, text, ua, preserve_value, user_pref, kind)| {
            let has_attributes = ua.is_some() || preserve_value || user_pref.is_some();
            let value = match kind {
                1 if options.empty_value == EmptyValue::Default => Value::Default,
                2 if has_attributes && options.empty_tag == EmptyTag::AttributesOnly => Value::Unchanged,
                _ => Value::Text(text.into()),
            };
            Parameter { name: name.into(), value, ua, preserve_value, user_pref, position: Position::default() }
        },
    )
}

fn options() -> impl Strategy<Value = ParseOptions> {
    (any::<bool>(), any::<bool>()).prop_map(|(d, t)| ParseOptions {
        empty_value: if d { EmptyValue::Default } else { EmptyValue::EmptyString },
        empty_tag: if t { EmptyTag::EmptyValue } else { EmptyTag::AttributesOnly },
        ascii_only: true,
    })
}

fn without_positions(p: &Profile) -> Vec<Parameter> {
    p.parameters
        .iter()
        .cloned()
        .map(|mut p| {
            p.position = Position::default();
            p
        })
        .collect()
}

proptest! {
    #[test]
    fn written_profiles_parse_back((options, params) in options().prop_flat_map(|o| (Just(o), prop::collection::vec(parameter(o), 0..20)))) {
        let profile = Profile { parameters: params };
        let xml = profile.write(&options).unwrap();
        let back = Profile::parse_str(&xml, &options).map_err(|e| TestCaseError::fail(format!("{e}\n{xml}")))?;
        prop_assert_eq!(without_positions(&back), without_positions(&profile), "{}", xml);
    }

    #[test]
    fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Profile::parse(&bytes, &ParseOptions::default());
    }

    #[test]
    fn parser_never_panics_on_near_xml(s in "(<flat-profile>|</flat-profile>|<[A-Za-z_]{1,3}( ua=\"rw\")?/?>|</[A-Za-z_]{1,3}>|&[a-z#x0-9]{0,5};|[a-z \n]{0,4}|<!--|-->|<\\?|\\?>|\"\"){0,20}") {
        let _ = Profile::parse_str(&s, &ParseOptions::default());
    }
}
