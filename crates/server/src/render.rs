//! Rendering per-device profiles from templates that administrators edit (minijinja, Jinja2 syntax).
//!
//! Auto-escaping is off (XML auto-escaping would write `/` as `&#x2f;` in every URL, `crates.md`); templates use the
//! `xml` filter, which escapes exactly `& < > " '`. Every rendered MPP profile is parsed with the phone's rules and
//! linted before it can be served: a template that produces something a phone would misread is an error naming the
//! template, the line and the device, never half a profile. Template run time is bounded (minijinja fuel).

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{AutoEscape, Environment};
use provisor_profile::data_type::Severity;
use provisor_profile::{ParseOptions, Profile, lint};
use serde::Serialize;

use crate::inventory::Device;

/// The built-in MPP flat-profile template: every parameter that applies to the device, read-only for users.
pub const MPP_TEMPLATE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Rendered by Provisor for {{ device.mac }}{% if device.model %} ({{ device.model }}){% endif %} -->
<flat-profile>
{%- for name, value in params|items %}
  <{{ name }} ua="na">{{ value|xml }}</{{ name }}>
{%- endfor %}
</flat-profile>
"#;

/// Name of the built-in MPP template.
pub const MPP: &str = "mpp.xml";

/// Instructions a template may execute before it is stopped (a runaway loop in an edited template).
const FUEL: u64 = 5_000_000;

/// Why a profile could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template failed to compile or run.
    #[error("template {template}{}: {message} (device {device})", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Template {
        /// The template.
        template: String,
        /// The line in it, when known.
        line: Option<usize>,
        /// What went wrong.
        message: String,
        /// The device being rendered.
        device: String,
    },
    /// The template rendered something a phone would not read as intended.
    #[error("template {template} rendered an invalid profile for device {device}: {position}: {message}")]
    InvalidProfile {
        /// The template.
        template: String,
        /// The device.
        device: String,
        /// line:column in the rendered profile.
        position: String,
        /// What is wrong.
        message: String,
    },
    /// A template file could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// The `xml` filter: escapes the five characters XML reserves.
fn xml(value: String) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The device as templates see it.
#[derive(Debug, Serialize)]
struct DeviceView<'a> {
    mac: &'a str,
    mac_upper: String,
    model: &'a str,
    serial: &'a str,
    description: &'a str,
    group: Option<&'a str>,
}

/// The template set: the built-in ones, overridden or extended by an administrator's directory.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Only the built-in templates.
    pub fn builtin() -> Templates {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_fuel(Some(FUEL));
        env.add_filter("xml", xml);
        // The built-in template is a constant that a unit test renders, so it always compiles.
        env.add_template_owned(MPP, MPP_TEMPLATE).expect("the built-in template compiles");
        Templates { env }
    }

    /// The built-in templates plus every `*.xml` file in `dir` (a file named `mpp.xml` replaces the built-in one).
    pub fn from_dir(dir: &Path) -> Result<Templates, RenderError> {
        let mut t = Templates::builtin();
        let io = |path: &Path, e: std::io::Error| RenderError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(|e| io(dir, e))?.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "xml") {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let source = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            t.env.add_template_owned(name.clone(), source).map_err(|e| RenderError::Template {
                template: name,
                line: e.line(),
                message: e.detail().unwrap_or(&e.to_string()).to_string(),
                device: "-".into(),
            })?;
        }
        Ok(t)
    }

    /// Renders `template` for `device` with its effective parameters, then checks the result as a phone would read
    /// it (MPP templates: parse with the phone's rules; lint errors refuse the profile).
    pub fn render(
        &self,
        template: &str,
        device: &Device,
        params: &BTreeMap<String, String>,
    ) -> Result<String, RenderError> {
        let fail = |e: minijinja::Error| RenderError::Template {
            template: template.to_string(),
            line: e.line(),
            message: e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string()),
            device: device.mac.to_string(),
        };
        let tmpl = self.env.get_template(template).map_err(fail)?;
        let view = DeviceView {
            mac: device.mac.as_str(),
            mac_upper: device.mac.upper(),
            model: &device.model,
            serial: &device.serial,
            description: &device.description,
            group: device.group.as_deref(),
        };
        let context = minijinja::context! {
            device => minijinja::value::Serde(&view),
            params => minijinja::value::Serde(params),
        };
        let text = tmpl.render(context).map_err(fail)?;
        if !template.ends_with(".cnf.xml") {
            let invalid = |position: String, message: String| RenderError::InvalidProfile {
                template: template.to_string(),
                device: device.mac.to_string(),
                position,
                message,
            };
            Profile::parse_str(&text, &ParseOptions::default())
                .map_err(|e| invalid(e.position.to_string(), e.kind.to_string()))?;
            if let Some(d) = lint::lint(text.as_bytes(), &ParseOptions::default())
                .into_iter()
                .find(|d| d.severity == Severity::Error)
            {
                return Err(invalid(d.position.to_string(), d.message));
            }
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Secrets;

    fn device() -> Device {
        Device {
            mac: "000e08aabbcc".parse().unwrap(),
            model: "CP-8841-3PCC".into(),
            serial: String::new(),
            description: String::new(),
            group: None,
            params: BTreeMap::new(),
            secrets: Secrets::generate().unwrap(),
        }
    }

    fn params(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn builtin_template_renders_and_escapes() {
        let t = Templates::builtin();
        let p = params(&[
            ("Dial_Plan_1_", "(S0 <:18005551212>)"),
            ("Profile_Rule", "[--key $B] http://prov.example.com/cisco/$MA.cfg"),
            ("Password_1_", "a&b\"c'd"),
        ]);
        let text = t.render(MPP, &device(), &p).unwrap();
        assert!(text.contains("<Dial_Plan_1_ ua=\"na\">(S0 &lt;:18005551212&gt;)</Dial_Plan_1_>"), "{text}");
        assert!(text.contains("http://prov.example.com/cisco/$MA.cfg"), "URLs are not HTML-escaped: {text}");
        let parsed = Profile::parse_str(&text, &ParseOptions::default()).unwrap();
        assert_eq!(parsed.get("Password_1_").unwrap().value.text(), Some("a&b\"c'd"));
        assert_eq!(parsed.parameters.len(), 3);
    }

    #[test]
    fn bad_templates_and_bad_output_are_errors_with_places() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("broken.xml"), "<flat-profile>\n{% for x in %}\n</flat-profile>").unwrap();
        let e = Templates::from_dir(dir.path()).err().unwrap();
        assert!(matches!(e, RenderError::Template { line: Some(2), .. }), "{e}");
        std::fs::remove_file(dir.path().join("broken.xml")).unwrap();
        std::fs::write(
            dir.path().join("unescaped.xml"),
            "<flat-profile>\n<GPP_A>{{ params.GPP_A }}</GPP_A>\n</flat-profile>",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("badtype.xml"),
            "<flat-profile><Resync_Periodic>1h</Resync_Periodic></flat-profile>",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("loop.xml"),
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        )
        .unwrap();
        let t = Templates::from_dir(dir.path()).unwrap();
        let e = t.render("unescaped.xml", &device(), &params(&[("GPP_A", "a<b")])).unwrap_err();
        assert!(matches!(e, RenderError::InvalidProfile { ref position, .. } if position.starts_with("2:")), "{e}");
        assert!(e.to_string().contains("000e08aabbcc"), "{e}");
        let e = t.render("badtype.xml", &device(), &params(&[])).unwrap_err();
        assert!(e.to_string().contains("Resync_Periodic"), "{e}");
        let e = t.render("loop.xml", &device(), &params(&[])).unwrap_err();
        assert!(matches!(e, RenderError::Template { .. }), "fuel stops runaway templates: {e}");
        assert!(t.render("missing.xml", &device(), &params(&[])).is_err());
    }
}
