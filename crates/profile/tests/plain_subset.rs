//! The fast path for plain profiles (`parse/plain.rs`) never answers differently from the XML reader: whenever
//! `Profile::parse_plain` gives a profile, `Profile::parse_xml` gives the same one, positions included. And it does
//! answer for the profiles generators write, or it would be no faster.

use proptest::prelude::*;
use provisor_profile::{EmptyTag, EmptyValue, ParseOptions, Profile};

/// Pieces of valid and broken XML, so random sequences hit the edges of the subset.
const PIECES: &[&str] = &[
    "<",
    ">",
    "/",
    "</",
    "/>",
    "<!--",
    "-->",
    "<!-->",
    "<!--->",
    "<?xml version=\"1.0\"?>",
    "<?pi x?>",
    "?>",
    "<!DOCTYPE d>",
    "<![CDATA[x]]>",
    "]]>",
    "flat-profile",
    "<flat-profile>",
    "</flat-profile>",
    "<flat-profile/>",
    "device",
    "<device>",
    "</device>",
    "A",
    "B_1_",
    "<A>",
    "</A>",
    "<B_1_>",
    "</B_1_>",
    "<A/>",
    " ua=\"na\"",
    " ua='rw'",
    " ua=\"xx\"",
    " user-pref=\"y\"",
    " preserve-value='n'",
    " group=\"g\"",
    " ua=\"na\" ua=\"ro\"",
    "ua",
    "=",
    "\"",
    "'",
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&apos;",
    "&#65;",
    "&#x41;",
    "&foo;",
    "&",
    ";",
    " ",
    "\n",
    "\t",
    "\r",
    "\r\n",
    "é",
    "\"\"",
    "text",
    "-",
    ".",
    ":",
    "1",
    "<1>",
    "<:a>",
    "<a:b>",
    "</A >",
    "<A >",
    "<A\n>",
    "<A ua=\"na\"/>",
    "<A ua=\"n>a\">",
    "<A ua=\"&amp;\">",
];

fn soup() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(prop::sample::select(PIECES), 0..40)).prop_map(|(bom, pieces)| {
        let mut s = if bom { "\u{feff}".to_string() } else { String::new() };
        s.extend(pieces);
        s
    })
}

fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-zA-Z0-9 .:;|*()\\[\\]-]{0,12}",
            Just("&amp;".to_string()),
            Just("&lt;".to_string()),
            Just("\"\"".to_string()),
            Just("\n  ".to_string()),
        ],
        0..4,
    )
    .prop_map(|parts| parts.concat())
}

/// Well-formed profiles as generators write them.
fn generated() -> impl Strategy<Value = String> {
    let parameter = (
        "[A-Z][A-Za-z_]{0,10}(_[1-9]_)?",
        prop_oneof![Just(""), Just(" ua=\"na\""), Just(" ua=\"rw\" user-pref='y'"), Just(" preserve-value=\"y\"")],
        prop_oneof![value().prop_map(Some), Just(None)],
    )
        .prop_map(|(name, attributes, value)| match value {
            Some(v) => format!("<{name}{attributes}>{v}</{name}>\n"),
            None => format!("<{name}{attributes}/>\n"),
        });
    (any::<bool>(), any::<bool>(), prop::collection::vec(parameter, 0..20)).prop_map(|(decl, wrap, parameters)| {
        let mut s = String::new();
        if decl {
            s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        }
        s.push_str(if wrap { "<device>\n<!-- generated -->\n<flat-profile>\n" } else { "<flat-profile>\n" });
        s.extend(parameters);
        s.push_str(if wrap { "</flat-profile>\n</device>\n" } else { "</flat-profile>\n" });
        s
    })
}

fn every_option() -> Vec<ParseOptions> {
    let mut all = Vec::new();
    for empty_value in [EmptyValue::EmptyString, EmptyValue::Default] {
        for empty_tag in [EmptyTag::AttributesOnly, EmptyTag::EmptyValue] {
            for ascii_only in [true, false] {
                all.push(ParseOptions { empty_value, empty_tag, ascii_only });
            }
        }
    }
    all
}

fn agree(text: &str) -> Result<bool, TestCaseError> {
    let mut answered = true;
    for options in every_option() {
        match Profile::parse_plain(text, &options) {
            Some(fast) => prop_assert_eq!(Ok(fast), Profile::parse_xml(text, &options), "{:?} {:?}", text, options),
            None => answered = false,
        }
    }
    Ok(answered)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn the_fast_path_agrees_with_the_xml_reader_on_anything(text in soup()) {
        agree(&text)?;
    }

    #[test]
    fn the_fast_path_reads_what_generators_write(text in generated()) {
        prop_assert!(agree(&text)?, "the fast path gave up on a plain profile: {:?}", text);
    }
}

#[test]
fn the_shipped_samples_take_the_fast_path() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/out/profile-1000.xml");
    let generated = std::fs::read_to_string(dir).ok();
    let sample = "<?xml version=\"1.0\"?>\n<device>\n<flat-profile>\n<!-- a --uid comment -->\n\
                  <Profile_Rule ua=\"na\">https://ps.example.com/$MA.xml</Profile_Rule>\n\
                  <Station_Name ua=\"rw\"/>\n<Display_Name_1_>Desk &amp; Phone</Display_Name_1_>\n\
                  </flat-profile>\n</device>\n";
    for text in generated.iter().map(String::as_str).chain([sample]) {
        assert!(Profile::parse_plain(text, &ParseOptions::default()).is_some(), "{}", &text[..text.len().min(200)]);
        assert_eq!(
            Profile::parse_plain(text, &ParseOptions::default()).map(Ok),
            Some(Profile::parse_xml(text, &ParseOptions::default()))
        );
    }
}
