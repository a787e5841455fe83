//! Rendering per-device profiles from templates that administrators edit (minijinja, Jinja2 syntax).
//!
//! Auto-escaping is off (XML auto-escaping would write `/` as `&#x2f;` in every URL, `crates.md`); templates use the
//! `xml` filter, which escapes exactly `& < > " '`. Every rendered MPP profile is parsed with the phone's rules and
//! linted before it can be served: a template that produces something a phone would misread is an error naming the
//! template, the line and the device, never half a profile. Template run time is bounded (minijinja fuel).

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{AutoEscape, Environment};
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

/// The built-in bootstrap profile: no secrets; it sends the phone to HTTPS, where its client certificate proves who
/// it is and it gets its key and random path (SEC-PRV-1).
pub const BOOTSTRAP_TEMPLATE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Provisor bootstrap profile: no secrets. The phone fetches its own profile over HTTPS next. -->
<flat-profile>
{%- for name, value in params|items %}
  <{{ name }} ua="na">{{ value|xml }}</{{ name }}>
{%- endfor %}
</flat-profile>
"#;

/// Name of the built-in bootstrap template.
pub const BOOTSTRAP: &str = "bootstrap.xml";

/// The built-in enterprise `SEP<MAC>.cnf.xml` (USECALLMANAGER `sepmac-cnf-xml`, Wazo `base.tpl`), filled from the
/// same MPP parameter names the inventory uses (`Proxy_1_`, `User_ID_1_`, `Password_1_`, `Display_Name_1_`).
pub const SEP_TEMPLATE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<device>
  <fullConfig>true</fullConfig>
  <deviceProtocol>SIP</deviceProtocol>
  <devicePool>
    <callManagerGroup>
      <members>
        <member priority="0">
          <callManager>
            <ports><sipPort>{{ params.SIP_Port_1_|default("5060")|xml }}</sipPort></ports>
            <processNodeName>{{ params.Proxy_1_|default("")|xml }}</processNodeName>
          </callManager>
        </member>
      </members>
    </callManagerGroup>
  </devicePool>
  <sipProfile>
    <phoneLabel>{{ params.Station_Name|default(device.mac_upper)|xml }}</phoneLabel>
    <sipLines>
{%- for n in range(1, 11) %}{% set user = params["User_ID_" ~ n ~ "_"] %}{% if user %}
      <line button="{{ n }}" lineIndex="{{ n }}">
        <featureID>9</featureID>
        <featureLabel>{{ params["Display_Name_" ~ n ~ "_"]|default(user)|xml }}</featureLabel>
        <proxy>USECALLMANAGER</proxy>
        <port>{{ params["SIP_Port_" ~ n ~ "_"]|default("5060")|xml }}</port>
        <name>{{ user|xml }}</name>
        <displayName>{{ params["Display_Name_" ~ n ~ "_"]|default(user)|xml }}</displayName>
        <authName>{{ params["Auth_ID_" ~ n ~ "_"]|default(user)|xml }}</authName>
        <authPassword>{{ params["Password_" ~ n ~ "_"]|default("")|xml }}</authPassword>
        <contact>{{ user|xml }}</contact>
      </line>
{%- endif %}{% endfor %}
    </sipLines>
  </sipProfile>
{%- if server.load %}
  <loadInformation>{{ server.load|xml }}</loadInformation>
{%- endif %}
  <versionStamp>{{ server.version_stamp|xml }}</versionStamp>
  <deviceSecurityMode>1</deviceSecurityMode>
  <transportLayerProtocol>2</transportLayerProtocol>
</device>
"#;

/// Name of the built-in enterprise device template.
pub const SEP: &str = "SEP.cnf.xml";

/// The built-in `XMLDefault.cnf.xml`: the call-control servers, nothing device-specific (specs.md §5.2). They come from
/// the `defaults` group (`Proxy_1_`, and `Proxy_2_` as the backup), never from the provisioning host: a phone that
/// registers with the TFTP server registers nowhere.
pub const XMLDEFAULT_TEMPLATE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Default>
  <callManagerGroup>
    <members>
{%- for n in [1, 2] %}{% set proxy = params["Proxy_" ~ n ~ "_"] %}{% if proxy %}
      <member priority="{{ n - 1 }}">
        <callManager>
          <ports><ethernetPhonePort>2000</ethernetPhonePort><sipPort>{{ params["SIP_Port_" ~ n ~ "_"]|default("5060")|xml }}</sipPort></ports>
          <processNodeName>{{ proxy|xml }}</processNodeName>
        </callManager>
      </member>
{%- endif %}{% endfor %}
    </members>
  </callManagerGroup>
{%- if server.load_information %}
  {{ server.load_information }}
{%- endif %}
  <authenticationURL/><directoryURL/><idleURL/><informationURL/><messagesURL/><servicesURL/>
</Default>
"#;

/// Name of the built-in enterprise default template.
pub const XMLDEFAULT: &str = "XMLDefault.cnf.xml";

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
        // The built-in templates are constants that unit tests render, so they always compile.
        for (name, source) in [
            (MPP, MPP_TEMPLATE),
            (BOOTSTRAP, BOOTSTRAP_TEMPLATE),
            (SEP, SEP_TEMPLATE),
            (XMLDEFAULT, XMLDEFAULT_TEMPLATE),
        ] {
            env.add_template_owned(name, source).expect("the built-in templates compile");
        }
        Templates { env }
    }

    /// Whether a template of that name exists.
    pub fn has(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// The built-in templates plus every `*.xml` file in `dir` (a file named `mpp.xml` replaces the built-in one).
    pub fn from_dir(dir: &Path) -> Result<Templates, RenderError> {
        let io = |path: &Path, e: std::io::Error| RenderError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(|e| io(dir, e))?.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        let mut sources = Vec::new();
        for entry in entries {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "xml") {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            sources.push((name, std::fs::read_to_string(&path).map_err(|e| io(&path, e))?));
        }
        Templates::from_sources(sources)
    }

    /// The built-in templates plus `(name, source)` pairs (a source named `mpp.xml` replaces the built-in one).
    pub fn from_sources(sources: impl IntoIterator<Item = (String, String)>) -> Result<Templates, RenderError> {
        let mut t = Templates::builtin();
        for (name, source) in sources {
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
        self.render_checked(template, device, params, &BTreeMap::new()).map(|(text, _)| text)
    }

    /// Like [`Templates::render`], with `server` facts for templates (`server.host`, ports, the firmware load), and
    /// also returns the parsed profile (MPP templates; enterprise `*.cnf.xml` files are only checked to be
    /// well-formed XML).
    pub fn render_checked(
        &self,
        template: &str,
        device: &Device,
        params: &BTreeMap<String, String>,
        server: &BTreeMap<String, String>,
    ) -> Result<(String, Option<Profile>), RenderError> {
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
            server => minijinja::value::Serde(server),
        };
        let text = tmpl.render(context).map_err(fail)?;
        let invalid = |position: String, message: String| RenderError::InvalidProfile {
            template: template.to_string(),
            device: device.mac.to_string(),
            position,
            message,
        };
        if template.ends_with(".cnf.xml") {
            well_formed(&text).map_err(|(p, m)| invalid(p, m))?;
            return Ok((text, None));
        }
        let profile = Profile::parse_str(&text, &ParseOptions::default())
            .map_err(|e| invalid(e.position.to_string(), e.kind.to_string()))?;
        if let Some(d) = lint::first_error(&profile) {
            return Err(invalid(d.position.to_string(), d.message));
        }
        Ok((text, Some(profile)))
    }
}

/// Checks that `text` is one well-formed XML element tree; the error is (line:column, message).
fn well_formed(text: &str) -> Result<(), (String, String)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut roots = 0usize;
    let at = |offset: u64| {
        let before = &text[..(offset as usize).min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("{line}:{col}")
    };
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => {
                roots += usize::from(depth == 0);
                depth += 1;
            }
            Ok(Event::Empty(_)) => roots += usize::from(depth == 0),
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err((at(reader.error_position()), e.to_string())),
        }
    }
    match (depth, roots) {
        (0, 1) => Ok(()),
        (0, n) => Err((at(text.len() as u64), format!("{n} root elements (expected one)"))),
        _ => Err((at(text.len() as u64), "unclosed element at the end".into())),
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
