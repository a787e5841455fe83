//! Rendering per-device profiles from templates that administrators edit (minijinja, Jinja2 syntax).
//!
//! Auto-escaping is off (XML auto-escaping would write `/` as `&#x2f;` in every URL, `crates.md`); templates use the
//! `xml` filter, which escapes exactly `& < > " '`. Every rendered MPP profile is parsed with the phone's rules and
//! linted before it can be served: a template that produces something a phone would misread is an error naming the
//! template, the line and the device, never half a profile. Template run time is bounded (minijinja fuel).

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{AutoEscape, Environment};
use provisor_envelope::gzip;
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
    /// Whether `mpp.xml` is still the built-in [`MPP_TEMPLATE`] (then [`Templates::splice`] renders it).
    builtin_mpp: bool,
}

/// One parameter as the built-in MPP template writes it, and as a phone reads it back.
pub struct Line {
    name: String,
    /// `\n  <Name ua="na">value</Name>`, the value escaped by the `xml` filter.
    text: String,
    /// `"Name":"value"` (the value as parsed), for the served parameters; `None` for an element that sets no text.
    json: Option<String>,
}

/// What devices of one group and model inherit, rendered by the built-in MPP template and checked the way a phone
/// parses it, once per inventory revision; [`Templates::splice`] adds each device's own lines.
pub struct Inherited {
    /// Sorted by name, like the template's `params|items`.
    lines: Vec<Line>,
    /// The bytes of their JSON.
    json_len: usize,
    /// As the journal stores it: (id, JSON), made once ([`Inherited::stored`]).
    stored: std::sync::OnceLock<(String, String)>,
    /// Runs of lines compressed once: (first line, past the last line, gzip level) → the piece.
    pieces: std::sync::Mutex<std::collections::HashMap<(usize, usize, u32), std::sync::Arc<gzip::Piece>>>,
    /// Whether every line passed the check (if not, rendering goes through the template engine, which names the
    /// line that fails).
    checked: bool,
}

impl Inherited {
    /// Renders and checks `params`.
    pub fn new(params: &BTreeMap<String, String>) -> Inherited {
        match checked_lines(params) {
            Some(lines) => {
                let json_len = lines.iter().map(|l| l.json.as_ref().map_or(0, |j| j.len() + 1)).sum();
                Inherited { lines, json_len, checked: true, stored: Default::default(), pieces: Default::default() }
            }
            None => Inherited {
                lines: Vec::new(),
                json_len: 0,
                checked: false,
                stored: Default::default(),
                pieces: Default::default(),
            },
        }
    }

    /// Its parameters as the journal stores them, once: `store` turns the JSON object into the stored text (passwords
    /// fingerprinted); the id is the SHA-256 (32 hex digits) of that text.
    pub fn stored(&self, store: impl FnOnce(&str) -> String) -> (&str, &str) {
        let (id, json) = self.stored.get_or_init(|| {
            let json = json_object(self.lines.iter().filter_map(|l| l.json.as_deref()), self.json_len);
            let stored = store(&json);
            use sha2::Digest as _;
            let id = sha2::Sha256::digest(stored.as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect();
            (id, stored)
        });
        (id, json)
    }

    /// Lines `lines` (whose text is `text`) compressed at `level`, once.
    fn piece(&self, lines: (usize, usize), level: u32, text: &[u8]) -> std::sync::Arc<gzip::Piece> {
        /// Enough for every run devices of one group and model split the layer into; past it, runs are compressed
        /// each time (devices whose own parameters all differ in name).
        const MAX_PIECES: usize = 1024;
        let key = (lines.0, lines.1, level);
        if let Some(p) = self.pieces.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return p.clone();
        }
        let piece = std::sync::Arc::new(gzip::Piece::new(text, level));
        let mut pieces = self.pieces.lock().unwrap_or_else(|p| p.into_inner());
        if pieces.len() < MAX_PIECES {
            pieces.insert(key, piece.clone());
        }
        piece
    }

    /// Whether a parameter of that name is inherited.
    pub fn contains(&self, name: &str) -> bool {
        self.lines.binary_search_by(|l| l.name.as_str().cmp(name)).is_ok()
    }
}

/// The parameters a profile served (what drift compares a report with). A spliced rendering keeps them as what the
/// device inherits (shared by every device of its group and model) and its own few lines, so a cached profile costs
/// its own lines, not a copy of the whole; the JSON is written out only when the journal stores it.
pub enum ServedParams {
    /// A JSON object, `{"Name":"value",...}`, as [`crate::provision::parameters::params_json`] writes it.
    Json(std::sync::Arc<str>),
    /// What the device inherits and its own lines (see [`Templates::splice`]).
    Spliced {
        /// The shared layer.
        inherited: std::sync::Arc<Inherited>,
        /// The device's own lines, which replace inherited ones of the same name.
        own: Vec<Line>,
    },
}

impl std::fmt::Debug for ServedParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServedParams(..)")
    }
}

impl ServedParams {
    /// About how many bytes this holds of its own (the shared layer is counted once, by the cache of layers).
    pub fn weight(&self) -> usize {
        match self {
            ServedParams::Json(j) => j.len(),
            ServedParams::Spliced { own, .. } => own
                .iter()
                .map(|l| {
                    std::mem::size_of::<Line>() + l.name.len() + l.text.len() + l.json.as_ref().map_or(0, String::len)
                })
                .sum(),
        }
    }

    /// What the journal stores: the shared layer (if any) and the JSON object of the rest: the device's own lines
    /// (`null` for one that sets no text, which hides the inherited value), or everything. [`merge_served`] puts them
    /// back together.
    pub fn parts(&self) -> (Option<&Inherited>, std::borrow::Cow<'_, str>) {
        match self {
            ServedParams::Json(j) => (None, std::borrow::Cow::Borrowed(j)),
            ServedParams::Spliced { inherited, own } => {
                let members = own.iter().map(|l| match &l.json {
                    Some(j) => std::borrow::Cow::Borrowed(j.as_str()),
                    None => format!("{}:null", serde_json::to_string(&l.name).unwrap_or_default()).into(),
                });
                (Some(inherited), std::borrow::Cow::Owned(json_object(members, 64 * own.len())))
            }
        }
    }

    /// The JSON object.
    pub fn json(&self) -> std::borrow::Cow<'_, str> {
        match self {
            ServedParams::Json(j) => std::borrow::Cow::Borrowed(j),
            ServedParams::Spliced { inherited, own } => {
                let mut members = Vec::with_capacity(inherited.lines.len() + own.len());
                merged(&inherited.lines, own, |l, _| members.extend(l.json.as_deref()));
                std::borrow::Cow::Owned(json_object(members, inherited.json_len + 64 * own.len()))
            }
        }
    }
}

/// A JSON object of `"Name":value` members, in order.
fn json_object(members: impl IntoIterator<Item = impl AsRef<str>>, capacity: usize) -> String {
    let mut json = String::with_capacity(capacity + 2);
    json.push('{');
    for m in members {
        if json.len() > 1 {
            json.push(',');
        }
        json.push_str(m.as_ref());
    }
    json.push('}');
    json
}

/// The served parameters (a JSON object of text values) from what the journal stored: a shared layer's object, if
/// any, and the rest, whose `null` values remove inherited ones ([`ServedParams::parts`]).
pub fn merge_served(layer: Option<&str>, rest: Option<&str>) -> Option<String> {
    let rest = rest?;
    let Some(layer) = layer else { return Some(rest.to_string()) };
    let mut map: BTreeMap<String, String> = serde_json::from_str(layer).ok()?;
    let own: BTreeMap<String, Option<String>> = serde_json::from_str(rest).ok()?;
    for (name, value) in own {
        match value {
            Some(v) => map.insert(name, v),
            None => map.remove(&name),
        };
    }
    serde_json::to_string(&map).ok()
}

/// Calls `each` on the lines of `inherited` and `own` in name order, an `own` line replacing the inherited one of
/// the same name (both are sorted by name), with the index of an inherited line.
fn merged<'a>(inherited: &'a [Line], own: &'a [Line], mut each: impl FnMut(&'a Line, Option<usize>)) {
    let (mut a, mut b) = (inherited.iter().enumerate().peekable(), own.iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some((_, x)), Some(y)) => match x.name.cmp(&y.name) {
                std::cmp::Ordering::Less => a.next().map(|(i, l)| (l, Some(i))),
                std::cmp::Ordering::Equal => {
                    a.next();
                    b.next().map(|l| (l, None))
                }
                std::cmp::Ordering::Greater => b.next().map(|l| (l, None)),
            },
            (Some(_), None) => a.next().map(|(i, l)| (l, Some(i))),
            (None, _) => b.next().map(|l| (l, None)),
        };
        match next {
            Some((l, i)) => each(l, i),
            None => break,
        }
    }
}

/// `params` as lines of the built-in MPP template, if a phone reads each back as one parameter with no error.
/// The check of a parameter depends only on its name and value ([`lint::first_error`]), so lines checked apart are
/// checked together.
fn checked_lines(params: &BTreeMap<String, String>) -> Option<Vec<Line>> {
    let mut lines: Vec<Line> = params
        .iter()
        .map(|(name, value)| {
            let mut text = String::with_capacity(2 * name.len() + value.len() + 20);
            text.push_str("\n  <");
            text.push_str(name);
            text.push_str(" ua=\"na\">");
            text.push_str(&xml(value.clone()));
            text.push_str("</");
            text.push_str(name);
            text.push('>');
            Line { name: name.clone(), text, json: None }
        })
        .collect();
    let mut whole = String::with_capacity(lines.iter().map(|l| l.text.len()).sum::<usize>() + 32);
    whole.push_str("<flat-profile>");
    for l in &lines {
        whole.push_str(&l.text);
    }
    whole.push_str("\n</flat-profile>");
    let profile = Profile::parse_str(&whole, &ParseOptions::default()).ok()?;
    if profile.parameters.len() != lines.len() || lint::first_error(&profile).is_some() {
        return None;
    }
    for (line, p) in lines.iter_mut().zip(&profile.parameters) {
        if p.name != line.name {
            return None;
        }
        if let provisor_profile::Value::Text(t) = &p.value {
            let json = serde_json::to_string(&(p.name.as_str(), t.as_str())).ok()?;
            // `["Name","value"]` → `"Name":"value"`
            let inner = &json[1..json.len() - 1];
            let comma = serde_json::to_string(p.name.as_str()).ok()?.len();
            line.json = Some(format!("{}:{}", &inner[..comma], &inner[comma + 1..]));
        }
    }
    Some(lines)
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
        Templates { env, builtin_mpp: true }
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
            t.builtin_mpp &= name != MPP;
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

impl Templates {
    /// Whether `template` is the built-in MPP template, which [`Templates::splice`] renders.
    pub fn splices(&self, template: &str) -> bool {
        template == MPP && self.builtin_mpp
    }

    /// The built-in MPP template for `device`: what it inherits, rendered and checked once, spliced with `own` (its
    /// own parameters and the server's, which replace inherited ones of the same name), each of which is checked
    /// here. Byte for byte what [`Templates::render_checked`] renders from the same parameters. Returns the text and
    /// the served parameters, or `None` when something fails its check: [`Templates::render_checked`] then says
    /// where.
    pub fn splice(
        &self,
        device: &Device,
        inherited: &std::sync::Arc<Inherited>,
        own: &BTreeMap<String, String>,
    ) -> Option<(SplicedProfile, ServedParams)> {
        if !self.builtin_mpp || !inherited.checked {
            return None;
        }
        let model = if device.model.is_empty() { String::new() } else { format!(" ({})", device.model) };
        let head = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- Rendered by Provisor for {}{model} -->\n<flat-profile>",
            device.mac.as_str()
        );
        const TAIL: &str = "\n</flat-profile>";
        let empty = Profile::parse_str(&format!("{head}{TAIL}"), &ParseOptions::default()).ok()?;
        if !empty.parameters.is_empty() {
            return None;
        }
        let own = checked_lines(own)?;
        let size = inherited.lines.iter().chain(&own).map(|l| l.text.len()).sum::<usize>();
        let mut text = String::with_capacity(head.len() + size + TAIL.len());
        text.push_str(&head);
        let mut runs = vec![Run { end: text.len(), shared: None }];
        merged(&inherited.lines, &own, |l, index| {
            text.push_str(&l.text);
            let end = text.len();
            match (index, runs.last_mut()) {
                (Some(i), Some(Run { shared: Some((_, past)), end: e })) if *past == i => (*past, *e) = (i + 1, end),
                (None, Some(Run { shared: None, end: e })) => *e = end,
                (Some(i), _) => runs.push(Run { end, shared: Some((i, i + 1)) }),
                (None, _) => runs.push(Run { end, shared: None }),
            }
        });
        text.push_str(TAIL);
        runs.push(Run { end: text.len(), shared: None });
        let profile = SplicedProfile { text, layout: Layout { runs, inherited: inherited.clone() } };
        Some((profile, ServedParams::Spliced { inherited: inherited.clone(), own }))
    }
}

/// A run of a spliced profile's text, up to byte `end`: inherited lines (first, past the last), or the device's own.
struct Run {
    end: usize,
    shared: Option<(usize, usize)>,
}

/// A profile [`Templates::splice`] made: its text, and its [`Layout`].
pub struct SplicedProfile {
    /// The profile.
    pub text: String,
    /// Which runs of the text are inherited lines.
    pub layout: Layout,
}

/// Which runs of a spliced profile's text are inherited lines, so its gzip reuses their compression
/// ([`Layout::gzip`]).
pub struct Layout {
    runs: Vec<Run>,
    inherited: std::sync::Arc<Inherited>,
}

impl Layout {
    /// `text` (the spliced profile's) gzipped at `level`: runs of inherited lines of at least 2 KB are compressed
    /// once per layer and shared by every device that splits the layer the same way; the rest (the device's own
    /// lines, the head, short runs) is compressed now. One gzip member that any reader expands to `text`
    /// ([`gzip::join`]).
    pub fn gzip(&self, text: &[u8], level: u32) -> Vec<u8> {
        if self.runs.last().is_none_or(|r| r.end != text.len()) {
            return gzip::compress_at(text, level);
        }
        const SHARED_MIN: usize = 2048;
        let mut pieces: Vec<std::sync::Arc<gzip::Piece>> = Vec::with_capacity(self.runs.len());
        let (mut start, mut own_from) = (0, None::<usize>);
        for run in &self.runs {
            match run.shared {
                Some(lines) if run.end - start >= SHARED_MIN => {
                    if let Some(from) = own_from.take() {
                        pieces.push(std::sync::Arc::new(gzip::Piece::new(&text[from..start], level)));
                    }
                    pieces.push(self.inherited.piece(lines, level, &text[start..run.end]));
                }
                _ => {
                    own_from.get_or_insert(start);
                }
            }
            start = run.end;
        }
        if let Some(from) = own_from {
            pieces.push(std::sync::Arc::new(gzip::Piece::new(&text[from..], level)));
        }
        gzip::join(pieces.iter().map(|p| &**p))
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

    /// Names and values that exercise escaping, trimming, empty elements, type checks and non-ASCII text.
    fn tricky_params() -> impl proptest::strategy::Strategy<Value = BTreeMap<String, String>> {
        use proptest::prelude::*;
        let name = prop::sample::select(vec![
            "Resync_Periodic",
            "Profile_Rule",
            "Profile_Rule_B",
            "GPP_A",
            "GPP_SA",
            "Display_Name_1_",
            "Password_1_",
            "Dial_Plan_1_",
            "Bench_Param_0001",
            "Line_Enable_1_",
            "Zz_Unknown",
            "a",
        ]);
        let value = prop_oneof![
            Just(String::new()),
            Just("  padded  ".to_string()),
            Just("two\nlines".to_string()),
            Just("<&>\"'".to_string()),
            Just("7200".to_string()),
            Just("1h".to_string()),
            Just("Yes".to_string()),
            Just("caf\u{e9}".to_string()),
            "[ -~]{0,12}",
        ];
        prop::collection::btree_map(name.prop_map(str::to_string), value, 0..8)
    }

    proptest::proptest! {
        /// The spliced rendering is the template engine's, byte for byte, with the same served parameters; and it
        /// gives up exactly when the template engine's check refuses the profile.
        #[test]
        fn splice_is_the_template_byte_for_byte(
            inherited in tricky_params(),
            own in tricky_params(),
            model in proptest::prop_oneof![
                proptest::strategy::Just(String::new()),
                proptest::strategy::Just("CP-8841-3PCC".to_string()),
                proptest::strategy::Just("a -- b".to_string()),
            ],
        ) {
            let t = Templates::builtin();
            let mut d = device();
            d.model = model;
            let mut merged = inherited.clone();
            merged.extend(own.clone());
            let slow = t.render_checked(MPP, &d, &merged, &BTreeMap::new());
            let fast = t.splice(&d, &std::sync::Arc::new(Inherited::new(&inherited)), &own);
            match (slow, fast) {
                (Ok((text, profile)), Some((spliced, json))) => {
                    proptest::prop_assert_eq!(&spliced.text, &text);
                    for level in [0, 3] {
                        let zipped = spliced.layout.gzip(spliced.text.as_bytes(), level);
                        proptest::prop_assert_eq!(gzip::decompress(&zipped, 1 << 24).unwrap(), text.as_bytes());
                    }
                    let expected = crate::provision::parameters::params_json(&profile.unwrap());
                    proptest::prop_assert_eq!(&*json.json(), &*expected);
                    // What the journal stores, put back together, is the same set.
                    let (layer, rest) = json.parts();
                    let layer = layer.map(|l| l.stored(str::to_string).1.to_string());
                    let merged = merge_served(layer.as_deref(), Some(&rest)).unwrap();
                    let as_map = |j: &str| serde_json::from_str::<BTreeMap<String, String>>(j).unwrap();
                    proptest::prop_assert_eq!(as_map(&merged), as_map(&expected));
                }
                (Err(_), None) => {}
                (Err(e), Some(_)) => proptest::prop_assert!(false, "spliced what the engine refuses: {e}"),
                (Ok((text, _)), None) => {
                    // A failing inherited line gives up even when the device's own line replaces it: allowed, the
                    // template engine renders it then.
                    let inherited_ok = Inherited::new(&inherited).checked;
                    proptest::prop_assert!(!inherited_ok, "gave up on a good profile: {text}");
                }
            }
        }
    }

    #[test]
    fn a_large_layer_is_compressed_once_and_every_device_reads_its_own_text() {
        let shared: BTreeMap<String, String> =
            (0..560).map(|i| (format!("Bench_Param_{i:04}"), format!("sip proxy line {i} call park"))).collect();
        let inherited = std::sync::Arc::new(Inherited::new(&shared));
        let t = Templates::builtin();
        let mut sizes = Vec::new();
        for n in 0..20 {
            let mut d = device();
            d.mac = format!("000e08aabb{n:02x}").parse().unwrap();
            // Own names that fall between inherited ones (Bench_Param_0100a) and after them (User_ID_1_).
            let own = params(&[("Bench_Param_0100a", &format!("x{n}")), ("User_ID_1_", &format!("{n}"))]);
            let (profile, _) = t.splice(&d, &inherited, &own).unwrap();
            let zipped = profile.layout.gzip(profile.text.as_bytes(), 3);
            assert_eq!(gzip::decompress(&zipped, 1 << 24).unwrap(), profile.text.as_bytes(), "device {n}");
            sizes.push((zipped.len(), gzip::compress_at(profile.text.as_bytes(), 3).len()));
        }
        let cached = inherited.pieces.lock().unwrap().len();
        assert_eq!(cached, 2, "two shared runs (before and after Bench_Param_0100a), compressed once for all 20");
        for (spliced, whole) in sizes {
            assert!(spliced < whole * 11 / 10, "{spliced} vs {whole} bytes");
        }
    }

    #[test]
    fn an_administrators_mpp_template_is_not_spliced() {
        let t = Templates::from_sources([(MPP.to_string(), "<flat-profile/>".to_string())]).unwrap();
        assert!(!t.splices(MPP));
        let none = std::sync::Arc::new(Inherited::new(&BTreeMap::new()));
        assert!(t.splice(&device(), &none, &BTreeMap::new()).is_none());
        assert!(Templates::builtin().splices(MPP));
        assert!(!Templates::builtin().splices(BOOTSTRAP));
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
