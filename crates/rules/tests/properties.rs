//! Expansion and evaluation are total: they never panic, whatever the text and the variables.

use proptest::prelude::*;
use provisor_rules::condition;
use provisor_rules::macros::{Context, Variables, expand, expand_mapped};
use provisor_rules::rule::{Rule, RuleKind};
use provisor_rules::schedule::{ResyncParameters, Schedule, SplitMix64, TimeOfDay, next_resync};

fn vars() -> impl Strategy<Value = Variables> {
    prop::collection::vec(("(A|B|MA|SWVER|PRVTMR|SA|X)", "[ -~]{0,12}"), 0..5).prop_map(|pairs| {
        let mut v = Variables::new();
        for (k, val) in pairs {
            v.set(&k, val);
        }
        v
    })
}

fn rulish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("(".to_string()),
            Just(")".to_string()),
            Just(")?".to_string()),
            Just(")!".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("|".to_string()),
            Just("\"".to_string()),
            Just(" ".to_string()),
            Just("--key ".to_string()),
            Just("--post a".to_string()),
            Just(" eq ".to_string()),
            Just(" and ".to_string()),
            Just("$SWVER".to_string()),
            Just("$(A:1:2)".to_string()),
            Just("http://h/x".to_string()),
            Just("/p.cfg".to_string()),
            Just("1".to_string()),
            Just("sip88xx.11-0-1MPP-3".to_string()),
            Just("x = \"y\";".to_string()),
            "[ -~]{0,3}",
        ],
        0..14,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn expansion_is_total_and_maps_every_byte(text in "[ -~\u{e9}]{0,40}", v in vars()) {
        let e = expand_mapped(&text, &v, Context::General);
        prop_assert_eq!(e.origin.len(), e.text.len());
        prop_assert!(e.origin.iter().all(|&o| o < text.len().max(1)));
        let _ = expand(&text, &v, Context::Credential);
    }

    #[test]
    fn text_without_dollar_is_unchanged(text in "[^$]{0,40}", v in vars()) {
        prop_assert_eq!(expand(&text, &v, Context::General), text);
    }

    #[test]
    fn conditions_never_panic(text in rulish(), v in vars()) {
        if let Err(e) = condition::evaluate(&text, &v) {
            prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{} {:?}", e, text);
        }
    }

    #[test]
    fn rules_never_panic(text in rulish(), v in vars()) {
        for kind in [RuleKind::Profile, RuleKind::Upgrade, RuleKind::Report] {
            match Rule::parse(&text, kind) {
                Ok(rule) => {
                    if let Err(e) = rule.evaluate(&v, Some("10.0.0.1")) {
                        prop_assert!(e.column >= 1, "{}", e);
                    }
                }
                Err(e) => prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{} {:?}", e, text),
            }
        }
    }

    #[test]
    fn schedules_never_panic(text in "[0-9+, x]{0,20}", failures in 0u32..10, seed in any::<u64>()) {
        if let Ok(s) = Schedule::parse(&text) {
            let _ = s.delay(failures as usize, &mut SplitMix64(seed));
        }
        let p = ResyncParameters::from_parameters(|n| (n == "Resync_Error_Retry_Delay").then(|| text.clone()));
        if let Ok(p) = p {
            let _ = next_resync(&p, failures, 0, TimeOfDay { seconds: 0 }, &mut SplitMix64(seed));
        }
    }
}

proptest! {
    #[test]
    fn printing_then_reparsing_is_stable(text in rulish()) {
        for kind in [RuleKind::Profile, RuleKind::Upgrade, RuleKind::Report] {
            if let Ok(rule) = Rule::parse(&text, kind) {
                let printed = rule.to_string();
                let again = Rule::parse(&printed, kind)
                    .map_err(|e| TestCaseError::fail(format!("{}\nfrom {text:?}", e.render(&printed))))?;
                prop_assert_eq!(again.to_string(), printed.clone(), "from {:?}", text);
                prop_assert_eq!(again.alternatives.len(), rule.alternatives.len());
            }
        }
    }
}

/// Found by the property above: an empty alternative prints as `[]`, not as nothing.
#[test]
fn an_empty_alternative_survives_printing() {
    for kind in [RuleKind::Profile, RuleKind::Upgrade, RuleKind::Report] {
        if let Ok(rule) = Rule::parse("[]", kind) {
            let again = Rule::parse(&rule.to_string(), kind).unwrap();
            assert_eq!(again.alternatives.len(), rule.alternatives.len(), "{kind:?}: {rule}");
        }
    }
}

#[test]
fn printing_examples() {
    let text = "(\"$A\" ne \"Provisioned\")?(Line_Enable_1_=\"No\")!https://p.tel.com/init-prov|[--key \"my key\" --post b] /x";
    let rule = Rule::parse(text, RuleKind::Profile).unwrap();
    assert_eq!(
        rule.to_string(),
        "(\"$A\" ne \"Provisioned\")? (Line_Enable_1_ = \"No\";)! https://p.tel.com/init-prov | [--key \"my key\" --post b] /x"
    );
}

/// Found by the `rule_parse` fuzz target: a URL may not start with a bracket, or printing would not re-parse.
#[test]
fn fuzz_regression_bracket_after_options() {
    for kind in [RuleKind::Profile, RuleKind::Report] {
        assert!(Rule::parse("[][", kind).is_err());
        assert!(Rule::parse("[--key a] (x)", kind).is_err());
    }
    assert!(Rule::parse("(4=b\"\")! /x", RuleKind::Profile).is_err(), "names start with a letter");
    assert!(Rule::parse("(a=b\"c\" d)! /x", RuleKind::Profile).is_err(), "no quote inside a bare value");
    assert!(Rule::parse("\n(j=e(j=elj\x11)!|/+[9lj\x11)!|/+[9", RuleKind::Profile).is_err(), "fuzz crash 8adedd6a");
    let r = Rule::parse("(a = \"x y\"; b = z)! /x", RuleKind::Profile).unwrap();
    assert_eq!(r.to_string(), "(GPP_A = \"x y\"; GPP_B = \"z\";)! /x");
}
