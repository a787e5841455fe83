//! The rule parser, the condition evaluator and the schedule parser never panic; a parsed rule prints to text that
//! parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisor_rules::condition;
use provisor_rules::macros::Variables;
use provisor_rules::rule::{Rule, RuleKind};
use provisor_rules::schedule::Schedule;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut vars = Variables::new();
    vars.set("MA", "000e08012345").set("A", "1").set("SWVER", "sip88xx.11-0-1MPP-312");
    for kind in [RuleKind::Profile, RuleKind::Upgrade, RuleKind::Report] {
        if let Ok(rule) = Rule::parse(text, kind) {
            let _ = rule.evaluate(&vars, Some("10.0.0.1"));
            let printed = rule.to_string();
            Rule::parse(&printed, kind).expect("a printed rule parses");
        }
    }
    let _ = condition::evaluate(text, &vars);
    let _ = Schedule::parse(text);
});
