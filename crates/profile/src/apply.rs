//! Applying a profile to a phone's parameters, as the phone does after each download.
//!
//! Cisco "Provisioning Formats", *Parameter Properties*: "Any parameters that are not specified by a profile are
//! left unchanged in the phone. Unrecognized parameters are ignored. [...] the last such occurrence overrides any
//! earlier ones. [...] The last profile processed takes precedence." Access attributes: `specs.md` §6.1 rule 7.

use std::collections::BTreeMap;

use hashbrown::HashMap;
use hashbrown::hash_map::EntryRef;

use crate::name::{NameKey, same};
use crate::{CompactString, Profile, UserAccess, Value, dictionary};

/// One parameter's state in a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The current value.
    pub value: CompactString,
    /// User access.
    pub ua: UserAccess,
    /// The user changed the value on the phone or its user web page (`um="y"` in `cfg.xml`).
    pub user_modified: bool,
}

/// What to do with parameters the phone does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownParameters {
    /// Ignore them, as a phone does with names outside its dictionary ("Unrecognized parameters are ignored").
    Ignore,
    /// Keep them: for a state that models a phone whose full dictionary is not known (the default, because the
    /// built-in dictionary covers the documented parameters, not every parameter of every model).
    #[default]
    Accept,
}

/// Options for [`PhoneState::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyOptions {
    /// Treatment of unknown names.
    pub unknown: UnknownParameters,
}

/// What an application changed. It borrows the names and new values from the [`Profile`] applied, so applying
/// a profile allocates only what the phone keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport<'a> {
    /// Parameters whose value changed: name, old value, new value.
    pub changed: Vec<(&'a str, CompactString, &'a str)>,
    /// Parameters whose access changed: name, old, new.
    pub access_changed: Vec<(&'a str, UserAccess, UserAccess)>,
    /// Parameters whose user-set value was kept (`user-pref="y"` or `preserve-value="y"`).
    pub kept: Vec<&'a str>,
    /// Unknown parameters that were ignored.
    pub ignored: Vec<&'a str>,
}

/// A phone's parameters: the values and access that profiles and users have set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhoneState {
    settings: HashMap<CompactString, Setting>,
}

fn factory_of(definition: Option<&'static dictionary::Definition>) -> Setting {
    match definition {
        Some(d) => Setting { value: CompactString::const_new(d.default.as_str()), ua: d.ua, user_modified: false },
        None => Setting { value: CompactString::default(), ua: UserAccess::Rw, user_modified: false },
    }
}

fn factory(name: &str) -> Setting {
    factory_of(dictionary::lookup(name))
}

impl PhoneState {
    /// A phone fresh from a factory reset: every parameter at its default.
    pub fn new() -> Self {
        PhoneState::default()
    }

    /// The current setting of `name` (its default if nothing set it and the dictionary knows it).
    pub fn get(&self, name: &str) -> Option<Setting> {
        self.settings.get(name).cloned().or_else(|| dictionary::lookup(name).map(|d| factory_of(Some(d))))
    }

    /// The current value of `name`, or the empty string.
    pub fn value(&self, name: &str) -> String {
        self.value_str(name).to_string()
    }

    /// The current value of `name`, borrowed: what was set, else the dictionary's default, else the empty string.
    pub fn value_str(&self, name: &str) -> &str {
        match self.settings.get(name) {
            Some(s) => &s.value,
            None => dictionary::lookup(name).map_or("", |d| d.default.as_str()),
        }
    }

    /// Parameters set since the factory reset, sorted by name.
    pub fn settings(&self) -> BTreeMap<&str, &Setting> {
        self.settings.iter().map(|(k, v)| (k.as_str(), v)).collect()
    }

    /// A user changes a value on the phone (allowed only for `rw` parameters). Returns whether it was allowed.
    pub fn user_set(&mut self, name: &str, value: &str) -> bool {
        let mut setting = self.get(name).unwrap_or_else(|| factory(name));
        if setting.ua != UserAccess::Rw {
            return false;
        }
        setting.value = value.into();
        setting.user_modified = true;
        self.settings.insert(name.into(), setting);
        true
    }

    /// Applies every parameter element of `profile` in document order, with the phone's rules.
    pub fn apply<'a>(&mut self, profile: &'a Profile, options: &ApplyOptions) -> ApplyReport<'a> {
        let mut report = ApplyReport::default();
        if self.settings.is_empty() {
            // The first profile after a factory reset: one allocation for the table, not one per doubling.
            self.settings.reserve(profile.parameters.len());
            report.changed.reserve(profile.parameters.len());
        }
        for p in &profile.parameters {
            let name = p.name.as_str();
            // The dictionary is consulted only when the answer matters: to ignore unknown names, for a parameter
            // set for the first time (its default and access), and for `preserve-value` and reset-to-default.
            let mut definition = None;
            let mut looked_up = false;
            if options.unknown == UnknownParameters::Ignore {
                (definition, looked_up) = (dictionary::lookup(name), true);
                if definition.is_none() {
                    if !report.ignored.contains(&name) {
                        report.ignored.push(name);
                    }
                    continue;
                }
            }
            // A parameter no profile or user has set yet holds its factory default; its entry is made with an
            // empty value that is filled below (with the new value, or the default), so the default is not
            // copied only to be replaced.
            let (setting, fresh) = match self.settings.entry_ref(&NameKey(name)) {
                EntryRef::Occupied(o) => (o.into_mut(), false),
                EntryRef::Vacant(v) => {
                    if !looked_up {
                        (definition, looked_up) = (dictionary::lookup(name), true);
                    }
                    let ua = definition.map_or(UserAccess::Rw, |d| d.ua);
                    (
                        v.insert_with_key(
                            name.into(),
                            Setting { value: CompactString::default(), ua, user_modified: false },
                        ),
                        true,
                    )
                }
            };
            if !looked_up && (p.preserve_value || p.value == Value::Default) {
                definition = dictionary::lookup(name);
            }
            let default_value: &'static str = definition.map_or("", |d| d.default.as_str());
            let current: &str = if fresh { default_value } else { &setting.value };
            let old_ua = setting.ua;
            if let Some(ua) = p.ua {
                setting.ua = ua;
            }
            // preserve-value="y": "the ua attribute is updated to rw, and the [...] field is preserved" once it
            // holds a value of its own; a parameter still at its default takes the profile's value.
            let preserve = p.preserve_value && !same(current.as_bytes(), default_value.as_bytes());
            if p.preserve_value {
                setting.ua = UserAccess::Rw;
            }
            // user-pref="y": a user's own change survives; "n" or absent: the profile's value wins and clears it.
            let keep_user = p.user_pref == Some(true) && setting.user_modified;
            let new_value = match &p.value {
                Value::Text(t) => Some(t.as_str()),
                Value::Default => Some(default_value),
                Value::Unchanged => None,
            };
            let mut filled = !fresh;
            match new_value {
                Some(_) if preserve || keep_user => report.kept.push(name),
                Some(v) => {
                    if !same(current.as_bytes(), v.as_bytes()) {
                        // The dictionary's defaults are `'static`: reporting one copies nothing.
                        let old = if fresh {
                            CompactString::const_new(default_value)
                        } else {
                            std::mem::take(&mut setting.value)
                        };
                        report.changed.push((name, old, v));
                        setting.value = CompactString::from(v);
                    } else if fresh {
                        setting.value = CompactString::from(v);
                    }
                    filled = true;
                    setting.user_modified = false;
                }
                None if p.user_pref == Some(false) => setting.user_modified = false,
                None => {}
            }
            if !filled {
                setting.value = CompactString::const_new(default_value);
            }
            if setting.ua != old_ua {
                report.access_changed.push((name, old_ua, setting.ua));
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParseOptions;

    fn profile(xml: &str) -> Profile {
        Profile::parse_str(xml, &ParseOptions::default()).unwrap()
    }

    #[test]
    fn unspecified_parameters_are_unchanged_and_later_profiles_win() {
        let mut s = PhoneState::new();
        s.apply(&profile("<flat-profile><GPP_A>1</GPP_A><GPP_B>2</GPP_B></flat-profile>"), &ApplyOptions::default());
        let second = profile("<flat-profile><GPP_B>3</GPP_B></flat-profile>");
        let r = s.apply(&second, &ApplyOptions::default());
        assert_eq!(s.value("GPP_A"), "1");
        assert_eq!(s.value("GPP_B"), "3");
        assert_eq!(r.changed, vec![("GPP_B", "2".into(), "3")]);
    }

    #[test]
    fn last_occurrence_wins() {
        let mut s = PhoneState::new();
        s.apply(&profile("<flat-profile><GPP_A>1</GPP_A><GPP_A>2</GPP_A></flat-profile>"), &ApplyOptions::default());
        assert_eq!(s.value("GPP_A"), "2");
    }

    #[test]
    fn unknown_parameters_are_ignored_when_asked() {
        let mut s = PhoneState::new();
        let o = ApplyOptions { unknown: UnknownParameters::Ignore };
        let unknown = profile("<flat-profile><No_Such_Thing>1</No_Such_Thing></flat-profile>");
        let r = s.apply(&unknown, &o);
        assert_eq!(r.ignored, vec!["No_Such_Thing"]);
        assert!(s.get("No_Such_Thing").is_none());
    }

    #[test]
    fn ua_only_element_keeps_a_user_value() {
        let mut s = PhoneState::new();
        s.apply(
            &profile(r#"<flat-profile><Station_Name ua="rw">Desk</Station_Name></flat-profile>"#),
            &ApplyOptions::default(),
        );
        assert!(s.user_set("Station_Name", "Mine"));
        s.apply(&profile(r#"<flat-profile><Station_Name ua="rw"/></flat-profile>"#), &ApplyOptions::default());
        assert_eq!(s.value("Station_Name"), "Mine");
        s.apply(&profile(r#"<flat-profile><Station_Name ua="na"/></flat-profile>"#), &ApplyOptions::default());
        assert_eq!(s.get("Station_Name").unwrap().ua, UserAccess::Na);
        assert!(!s.user_set("Station_Name", "Again"), "na forbids user changes");
    }

    #[test]
    fn user_pref_keeps_user_changes() {
        let mut s = PhoneState::new();
        s.apply(
            &profile(r#"<flat-profile><Station_Name ua="rw">A</Station_Name></flat-profile>"#),
            &ApplyOptions::default(),
        );
        s.user_set("Station_Name", "Mine");
        let kept = profile(r#"<flat-profile><Station_Name user-pref="y">B</Station_Name></flat-profile>"#);
        let r = s.apply(&kept, &ApplyOptions::default());
        assert_eq!(s.value("Station_Name"), "Mine");
        assert_eq!(r.kept, vec!["Station_Name"]);
        s.apply(
            &profile(r#"<flat-profile><Station_Name user-pref="n">C</Station_Name></flat-profile>"#),
            &ApplyOptions::default(),
        );
        assert_eq!(s.value("Station_Name"), "C");
        assert!(!s.get("Station_Name").unwrap().user_modified);
    }

    #[test]
    fn preserve_value_keeps_an_existing_value_and_grants_rw() {
        let mut s = PhoneState::new();
        let p = profile(
            r#"<flat-profile><Station_Name ua="na" preserve-value="y">Travel Agent 1</Station_Name></flat-profile>"#,
        );
        s.apply(&p, &ApplyOptions::default());
        assert_eq!(s.value("Station_Name"), "Travel Agent 1", "first provisioning fills an empty field");
        assert_eq!(s.get("Station_Name").unwrap().ua, UserAccess::Rw);
        s.user_set("Station_Name", "Front desk");
        s.apply(&p, &ApplyOptions::default());
        assert_eq!(s.value("Station_Name"), "Front desk");
    }

    #[test]
    fn default_value_resets() {
        let mut s = PhoneState::new();
        let o = ParseOptions { empty_value: crate::EmptyValue::Default, ..ParseOptions::default() };
        s.apply(
            &profile("<flat-profile><Resync_Periodic>60</Resync_Periodic></flat-profile>"),
            &ApplyOptions::default(),
        );
        s.apply(
            &Profile::parse_str("<flat-profile><Resync_Periodic></Resync_Periodic></flat-profile>", &o).unwrap(),
            &ApplyOptions::default(),
        );
        assert_eq!(s.value("Resync_Periodic"), dictionary::lookup("Resync_Periodic").unwrap().default);
    }
}
