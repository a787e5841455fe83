//! `PhoneState::apply` against a plain model of the phone's rules (Cisco "Provisioning Formats", *Parameter
//! Properties*; `specs.md` §6.1 rule 7), written the obvious way: every setting is materialised with its default
//! first and every report entry is an owned copy. The optimised `apply` must give the same state and report.

use std::collections::HashMap;

use proptest::prelude::*;
use provisor_profile::{
    ApplyOptions, Parameter, PhoneState, Position, Profile, UnknownParameters, UserAccess, Value, dictionary,
};

#[derive(Clone, Debug, PartialEq)]
struct ModelSetting {
    value: String,
    ua: UserAccess,
    user_modified: bool,
}

type Changes = Vec<(String, String, String)>;

#[derive(Default)]
struct Model(HashMap<String, ModelSetting>);

impl Model {
    fn factory(name: &str) -> ModelSetting {
        match dictionary::lookup(name) {
            Some(d) => ModelSetting { value: d.default.clone(), ua: d.ua, user_modified: false },
            None => ModelSetting { value: String::new(), ua: UserAccess::Rw, user_modified: false },
        }
    }

    fn user_set(&mut self, name: &str, value: &str) -> bool {
        let mut s = self.0.get(name).cloned().unwrap_or_else(|| Model::factory(name));
        if s.ua != UserAccess::Rw {
            return false;
        }
        s.value = value.into();
        s.user_modified = true;
        self.0.insert(name.into(), s);
        true
    }

    fn apply(&mut self, profile: &Profile, unknown: UnknownParameters) -> (Changes, Vec<String>, Vec<String>) {
        let (mut changed, mut kept, mut ignored) = (Vec::new(), Vec::new(), Vec::new());
        for p in &profile.parameters {
            let definition = dictionary::lookup(&p.name);
            if definition.is_none() && unknown == UnknownParameters::Ignore {
                if !ignored.iter().any(|n: &String| *n == p.name) {
                    ignored.push(p.name.to_string());
                }
                continue;
            }
            let default = definition.map_or(String::new(), |d| d.default.clone());
            let s = self.0.entry(p.name.to_string()).or_insert_with(|| Model::factory(&p.name));
            if let Some(ua) = p.ua {
                s.ua = ua;
            }
            let preserve = p.preserve_value && s.value != default;
            if p.preserve_value {
                s.ua = UserAccess::Rw;
            }
            let keep_user = p.user_pref == Some(true) && s.user_modified;
            let new = match &p.value {
                Value::Text(t) => Some(t.to_string()),
                Value::Default => Some(default.clone()),
                Value::Unchanged => None,
            };
            match new {
                Some(_) if preserve || keep_user => kept.push(p.name.to_string()),
                Some(v) => {
                    if s.value != v {
                        changed.push((p.name.to_string(), std::mem::replace(&mut s.value, v.clone()), v));
                    }
                    s.user_modified = false;
                }
                None if p.user_pref == Some(false) => s.user_modified = false,
                None => {}
            }
        }
        (changed, kept, ignored)
    }
}

/// Documented names with a non-empty default, a documented name with an empty one, an indexed one, an unknown one.
const NAMES: [&str; 5] = ["Resync_Periodic", "Station_Name", "Dial_Plan_2_", "No_Such_Parameter", "Resync_On_Reset"];

fn parameter() -> impl Strategy<Value = Parameter> {
    let value = prop_oneof![
        Just(Value::Default),
        Just(Value::Unchanged),
        prop_oneof![Just(String::new()), Just("Yes".to_string()), Just("3600".to_string()), "[a-c]{1,2}"]
            .prop_map(|t| Value::Text(t.into())),
    ];
    let ua =
        prop_oneof![Just(None), Just(Some(UserAccess::Na)), Just(Some(UserAccess::Ro)), Just(Some(UserAccess::Rw))];
    (0..NAMES.len(), value, ua, any::<bool>(), prop_oneof![Just(None), Just(Some(true)), Just(Some(false))]).prop_map(
        |(n, value, ua, preserve_value, user_pref)| Parameter {
            name: NAMES[n].into(),
            value,
            ua,
            preserve_value,
            user_pref,
            position: Position::default(),
        },
    )
}

#[derive(Clone, Debug)]
enum Step {
    Apply(Vec<Parameter>, bool),
    UserSet(usize, String),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (prop::collection::vec(parameter(), 0..8), any::<bool>()).prop_map(|(p, ignore)| Step::Apply(p, ignore)),
        (0..NAMES.len(), "[a-c]{0,2}").prop_map(|(n, v)| Step::UserSet(n, v)),
    ]
}

proptest! {
    #[test]
    fn apply_matches_the_model(steps in prop::collection::vec(step(), 1..12)) {
        let (mut state, mut model) = (PhoneState::new(), Model::default());
        for step in steps {
            match step {
                Step::Apply(parameters, ignore) => {
                    let unknown = if ignore { UnknownParameters::Ignore } else { UnknownParameters::Accept };
                    let profile = Profile { parameters };
                    let report = state.apply(&profile, &ApplyOptions { unknown });
                    let (changed, kept, ignored) = model.apply(&profile, unknown);
                    let got: Changes =
                        report.changed.iter().map(|(n, o, v)| (n.to_string(), o.to_string(), v.to_string())).collect();
                    prop_assert_eq!(got, changed);
                    prop_assert_eq!(report.kept.iter().map(|n| n.to_string()).collect::<Vec<_>>(), kept);
                    prop_assert_eq!(report.ignored.iter().map(|n| n.to_string()).collect::<Vec<_>>(), ignored);
                }
                Step::UserSet(n, v) => prop_assert_eq!(state.user_set(NAMES[n], &v), model.user_set(NAMES[n], &v)),
            }
            for name in NAMES {
                let got = state.get(name).map(|s| ModelSetting { value: s.value.into_string(), ua: s.ua, user_modified: s.user_modified });
                let want = model.0.get(name).cloned().or_else(|| dictionary::lookup(name).map(|_| Model::factory(name)));
                prop_assert_eq!(got, want, "{}", name);
            }
        }
    }
}
