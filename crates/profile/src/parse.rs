//! Reading a flat-profile the way the phone does.
//!
//! Cisco "Provisioning Formats", *Configuration File Components*, *Element Tag Properties*, *Parameter
//! Properties* and *String Formats*; the open questions and the chosen resolutions are in `specs.md` §6.1.

use quick_xml::errors::Error as XmlError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::name::{matches, word};
use crate::position::{Locator, position_in_bytes};

mod plain;
use crate::{CompactString, Parameter, Position, Profile, UserAccess, Value};

/// What an element with no content (`<X></X>`, `<X>  </X>`, or `<X/>` without attributes) does.
///
/// The guide says both "Use an empty value to set the corresponding parameter to an empty string" (with the
/// example `<GPP_A>\n</GPP_A>`) and, in its *Data Types* notes, "A parameter specification with an empty parameter
/// value forces the parameter back to its default value. To specify an empty string instead, use the empty string
/// `""`". The literal `""` always means the empty string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyValue {
    /// Default: the empty element sets the empty string (the guide's *Element Tag Properties* examples).
    #[default]
    EmptyString,
    /// The empty element resets the parameter to its default (the guide's *Data Types* note).
    Default,
}

/// What a self-closing element with attributes (`<Speed_Dial_2_Name ua="rw"/>`) does.
///
/// The guide says "Empty element tags are allowed and will be interpreted as configuring the value to be empty"
/// (`<Profile_Rule_B />`) and, in the next bullet, "An empty element tag can be used to prevent the overwriting of
/// any user-supplied values during a resync" (`<Speed_Dial_2_Name ua="rw"/>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyTag {
    /// Default: with attributes, only the attributes change and the value is kept; without attributes, the element
    /// behaves as an empty value (see [`EmptyValue`]). This reconciles both bullets (`specs.md` §6.1 rule 5).
    #[default]
    AttributesOnly,
    /// Every `<X/>` is an empty value, attributes or not (the first bullet taken literally).
    EmptyValue,
}

/// Switches for the points where the guides contradict themselves or phones may differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Meaning of an element with no content.
    pub empty_value: EmptyValue,
    /// Meaning of a self-closing element with attributes.
    pub empty_tag: EmptyTag,
    /// Reject values with non-ASCII characters ("The phone firmware only supports ASCII characters"). Lint turns
    /// this off and reports every such value itself.
    pub ascii_only: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { empty_value: EmptyValue::default(), empty_tag: EmptyTag::default(), ascii_only: true }
    }
}

/// A profile that cannot be read, with the place and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {kind}")]
pub struct ParseError {
    /// Where the problem is.
    pub position: Position,
    /// What the problem is.
    pub kind: ParseErrorKind,
}

/// The kinds of [`ParseError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The bytes are not UTF-8 ("Only the UTF-8 charset is supported").
    #[error("invalid UTF-8: the profile must be UTF-8 (and its values ASCII)")]
    InvalidUtf8,
    /// The XML is not well formed.
    #[error("malformed XML: {0}")]
    Xml(String),
    /// The document has no `<flat-profile>` element.
    #[error("no <flat-profile> element found: the phone reads parameters only inside <flat-profile>")]
    NoFlatProfile,
    /// A parameter element contains another element.
    #[error("parameter <{parameter}> contains element <{child}>; expected text only")]
    NestedElement {
        /// The parameter.
        parameter: String,
        /// The child element found.
        child: String,
    },
    /// A `ua` value other than `na`, `ro` or `rw`.
    #[error("parameter <{parameter}> has ua=\"{value}\"; expected \"na\", \"ro\" or \"rw\"")]
    UserAccess {
        /// The parameter.
        parameter: String,
        /// The value found.
        value: String,
    },
    /// A `preserve-value` or `user-pref` value other than `y` or `n`.
    #[error("parameter <{parameter}> has {attribute}=\"{value}\"; expected \"y\" or \"n\"")]
    YesNoAttribute {
        /// The parameter.
        parameter: String,
        /// The attribute.
        attribute: &'static str,
        /// The value found.
        value: String,
    },
    /// An entity reference that is not one of the five XML escapes or a numeric character reference.
    #[error(
        "unknown entity &{0};: only &amp; &lt; &gt; &apos; &quot; and numeric references like &#40; or &#x2e; are translated"
    )]
    UnknownEntity(String),
    /// The document ends while an element is open.
    #[error("the document ends before <{element}> (opened at {opened}) is closed")]
    Unclosed {
        /// The element left open.
        element: String,
        /// Where it was opened.
        opened: Position,
    },
    /// A value with characters outside ASCII.
    #[error("parameter <{parameter}> has non-ASCII character {character:?}; the phone firmware supports ASCII only")]
    NonAscii {
        /// The parameter.
        parameter: String,
        /// The first offending character.
        character: char,
    },
}

struct Open {
    name: CompactString,
    position: Position,
    ua: Option<UserAccess>,
    preserve_value: bool,
    user_pref: Option<bool>,
    text: CompactString,
    text_start: usize,
    /// Whether any of the text came from a reference or CDATA (so a `""` in it is not the empty-string marker).
    escaped: bool,
}

/// The phone's reading of a flat-profile, fed one XML construct at a time by either tokenizer (quick-xml's, or
/// [`plain`]'s for the plain subset), so the rules live in one place. Offsets are bytes into the whole text.
struct Builder<'t> {
    options: ParseOptions,
    locator: Locator<'t>,
    parameters: Vec<Parameter>,
    found: bool,
    /// Depth of open elements.
    depth: usize,
    /// The outer (non-parameter) elements that are open, for the message when the document is cut short.
    outer: Vec<(String, usize)>,
    /// How deep each open `<flat-profile>` is.
    profile_depths: Vec<usize>,
    open: Option<Open>,
}

impl<'t> Builder<'t> {
    fn new(text: &'t str, options: &ParseOptions) -> Self {
        Builder {
            options: *options,
            locator: Locator::new(text),
            // Parameters in real profiles take 40 to 80 bytes each.
            parameters: Vec::with_capacity(text.len() / 48),
            found: false,
            depth: 0,
            outer: Vec::new(),
            profile_depths: Vec::new(),
            open: None,
        }
    }

    fn nested(&mut self, position: Position, child: &str) -> Result<(), ParseError> {
        match &self.open {
            Some(param) => Err(ParseError {
                position,
                kind: ParseErrorKind::NestedElement { parameter: param.name.to_string(), child: child.to_string() },
            }),
            None => Ok(()),
        }
    }

    /// `<name ...>` at byte `start` (`position`), its content starting at `content`.
    fn start(
        &mut self,
        name: &str,
        start: usize,
        position: Position,
        content: usize,
        attributes: impl FnOnce(&str, Position) -> Result<Attributes, ParseError>,
    ) -> Result<(), ParseError> {
        self.nested(position, name)?;
        self.depth += 1;
        if self.profile_depths.last() == Some(&(self.depth - 1)) {
            let (ua, preserve_value, user_pref) = attributes(name, position)?;
            self.open = Some(Open {
                name: name.into(),
                position,
                ua,
                preserve_value,
                user_pref,
                text: CompactString::default(),
                text_start: content,
                escaped: false,
            });
        } else {
            if name == "flat-profile" {
                self.found = true;
                self.profile_depths.push(self.depth);
            }
            self.outer.push((name.to_string(), start));
        }
        Ok(())
    }

    /// `<name .../>` at `position`.
    fn empty(
        &mut self,
        name: &str,
        position: Position,
        attributes: impl FnOnce(&str, Position) -> Result<Attributes, ParseError>,
    ) -> Result<(), ParseError> {
        self.nested(position, name)?;
        if self.profile_depths.last() == Some(&self.depth) {
            let (ua, preserve_value, user_pref) = attributes(name, position)?;
            let has_attributes = ua.is_some() || preserve_value || user_pref.is_some();
            let value = match (self.options.empty_tag, has_attributes) {
                (EmptyTag::AttributesOnly, true) => Value::Unchanged,
                _ => empty_value(&self.options),
            };
            self.parameters.push(Parameter { name: name.into(), value, ua, preserve_value, user_pref, position });
        } else if name == "flat-profile" {
            self.found = true;
        }
        Ok(())
    }

    /// `</name>` (the tokenizer has checked that it closes the open element).
    fn end(&mut self) -> Result<(), ParseError> {
        if let Some(param) = self.open.take() {
            let value = finish_value(param.text, param.escaped, &self.options);
            if self.options.ascii_only
                && let Value::Text(t) = &value
                && !t.is_ascii()
                && let Some(character) = t.chars().find(|c| !c.is_ascii())
            {
                return Err(ParseError {
                    position: self.locator.at(param.text_start),
                    kind: ParseErrorKind::NonAscii { parameter: param.name.into_string(), character },
                });
            }
            self.parameters.push(Parameter {
                name: param.name,
                value,
                ua: param.ua,
                preserve_value: param.preserve_value,
                user_pref: param.user_pref,
                position: param.position,
            });
        } else {
            if self.profile_depths.last() == Some(&self.depth) {
                self.profile_depths.pop();
            }
            self.outer.pop();
        }
        self.depth = self.depth.saturating_sub(1);
        Ok(())
    }

    /// Whether text now goes into a parameter's value (elsewhere it is ignored).
    fn wants_text(&self) -> bool {
        self.open.is_some()
    }

    /// Character data; `escaped` when it came from a reference or CDATA.
    fn text(&mut self, text: &str, escaped: bool) {
        if let Some(param) = &mut self.open {
            param.escaped |= escaped;
            if param.text.is_empty() {
                param.text = text.into();
            } else {
                param.text.push_str(text);
            }
        }
    }

    fn finish(mut self, len: usize) -> Result<Profile, ParseError> {
        let unclosed = self
            .open
            .take()
            .map(|p| (p.name.into_string(), p.position))
            .or_else(|| self.outer.pop().map(|(name, at)| (name, self.locator.at(at))));
        if let Some((element, opened)) = unclosed {
            return Err(ParseError {
                position: self.locator.at(len),
                kind: ParseErrorKind::Unclosed { element, opened },
            });
        }
        if !self.found {
            return Err(ParseError { position: self.locator.at(0), kind: ParseErrorKind::NoFlatProfile });
        }
        Ok(Profile { parameters: self.parameters })
    }
}

impl Profile {
    /// Parses a profile from bytes (which must be UTF-8) with the phone's rules.
    ///
    /// Every `<flat-profile>` element found, at any depth, contributes its child elements as parameters, in
    /// document order. Elements outside `<flat-profile>` are transparent; text outside is ignored.
    pub fn parse(bytes: &[u8], options: &ParseOptions) -> Result<Profile, ParseError> {
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                return Err(ParseError {
                    position: position_in_bytes(bytes, e.valid_up_to()),
                    kind: ParseErrorKind::InvalidUtf8,
                });
            }
        };
        Profile::parse_str(text, options)
    }

    /// Parses a profile from text with the phone's rules; see [`Profile::parse`].
    ///
    /// Profiles in the plain subset that generators write (see [`plain`]) take a fast path; anything else, and
    /// every error, goes through the XML reader, which names the place and the problem.
    pub fn parse_str(text: &str, options: &ParseOptions) -> Result<Profile, ParseError> {
        match plain::parse(text, options) {
            Some(profile) => Ok(profile),
            None => Profile::parse_xml(text, options),
        }
    }

    /// The fast path alone: `Some` only when it is sure of the answer, which then equals [`Profile::parse_xml`]'s.
    /// For the differential tests and the fuzz target.
    #[doc(hidden)]
    pub fn parse_plain(text: &str, options: &ParseOptions) -> Option<Profile> {
        plain::parse(text, options)
    }

    /// The XML reader's path alone (what [`Profile::parse_str`] does outside the plain subset).
    #[doc(hidden)]
    pub fn parse_xml(text: &str, options: &ParseOptions) -> Result<Profile, ParseError> {
        let text_no_bom = text.strip_prefix('\u{feff}').unwrap_or(text);
        let bom = text.len() - text_no_bom.len();
        let mut reader = Reader::from_str(text_no_bom);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        // Cisco's own sample profile (002 appendix) has `--uid` inside a comment, which strict XML forbids.
        config.check_comments = false;

        let mut b = Builder::new(text, options);
        loop {
            let start = reader.buffer_position() as usize + bom;
            // Errors point at the start of the construct that failed (e.g. the `</B>` that does not close `<A>`).
            let event = reader.read_event().map_err(|e| xml_error(e, b.locator.at(start)))?;
            match event {
                Event::Start(tag) => {
                    let content = reader.buffer_position() as usize + bom;
                    let position = b.locator.at(start);
                    b.start(tag.name().as_ref(), start, position, content, |name, at| attributes(&tag, name, at))?;
                }
                Event::Empty(tag) => {
                    let position = b.locator.at(start);
                    b.empty(tag.name().as_ref(), position, |name, at| attributes(&tag, name, at))?;
                }
                Event::End(_) => b.end()?,
                Event::Text(t) => b.text(&t.xml_content(XmlVersion::Implicit1_0), false),
                Event::CData(t) => b.text(&t.xml_content(XmlVersion::Implicit1_0), true),
                Event::GeneralRef(r) => {
                    let resolved = resolve_reference(&r).ok_or_else(|| ParseError {
                        position: b.locator.at(start),
                        kind: ParseErrorKind::UnknownEntity(r.xml_content(XmlVersion::Implicit1_0).into_owned()),
                    })?;
                    b.text(&resolved, true);
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
                Event::Eof => break,
            }
        }
        b.finish(text.len())
    }
}

fn empty_value(options: &ParseOptions) -> Value {
    match options.empty_value {
        EmptyValue::EmptyString => Value::Text(CompactString::default()),
        EmptyValue::Default => Value::Default,
    }
}

/// "Leading and trailing white space [...] is removed from the parameter value. New lines within a value are
/// converted to spaces." Line ends were already normalised to `\n` by the XML reader.
fn finish_value(text: CompactString, escaped: bool, options: &ParseOptions) -> Value {
    let trimmed = text.trim_ascii();
    if trimmed.is_empty() {
        return empty_value(options);
    }
    if trimmed == "\"\"" && !escaped {
        return Value::Text(CompactString::default());
    }
    let newline = has_newline(text.as_bytes());
    if trimmed.len() == text.len() && !newline {
        return Value::Text(text);
    }
    Value::Text(trimmed.replace('\n', " ").into())
}

/// Whether `b` holds a line end: eight bytes at a time, in line (values are short; `memchr`'s set-up costs more).
fn has_newline(b: &[u8]) -> bool {
    let n = b.len();
    if n < 8 {
        return b.contains(&b'\n');
    }
    let mut at = 0;
    while at + 8 < n {
        if matches(word(b, at), b'\n') != 0 {
            return true;
        }
        at += 8;
    }
    matches(word(b, n - 8), b'\n') != 0
}

fn resolve_reference(r: &quick_xml::events::BytesRef<'_>) -> Option<String> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Some(c.to_string());
    }
    let name = r.xml_content(XmlVersion::Implicit1_0);
    if name.starts_with('#') {
        return None;
    }
    quick_xml::escape::resolve_predefined_entity(&name).map(str::to_string)
}

type Attributes = (Option<UserAccess>, bool, Option<bool>);

fn attributes(tag: &BytesStart<'_>, parameter: &str, position: Position) -> Result<Attributes, ParseError> {
    let mut found = (None, false, None);
    let err = |kind| ParseError { position, kind };
    for attr in tag.attributes() {
        let attr = attr.map_err(|e| err(ParseErrorKind::Xml(format!("in the attributes of <{parameter}>: {e}"))))?;
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| err(ParseErrorKind::Xml(format!("in the attributes of <{parameter}>: {e}"))))?;
        attribute(&mut found, attr.key.as_ref(), &value, parameter).map_err(err)?;
    }
    Ok(found)
}

/// What one attribute of a parameter element means (`ua`, `preserve-value`, `user-pref`; others are ignored).
fn attribute(found: &mut Attributes, key: &str, value: &str, parameter: &str) -> Result<(), ParseErrorKind> {
    match key {
        "ua" => {
            found.0 = Some(UserAccess::from_attribute(value).ok_or_else(|| ParseErrorKind::UserAccess {
                parameter: parameter.to_string(),
                value: value.to_string(),
            })?);
        }
        "preserve-value" | "user-pref" => {
            let yes = match value {
                "y" | "Y" => true,
                "n" | "N" => false,
                _ => {
                    return Err(ParseErrorKind::YesNoAttribute {
                        parameter: parameter.to_string(),
                        attribute: if key == "user-pref" { "user-pref" } else { "preserve-value" },
                        value: value.to_string(),
                    });
                }
            };
            if key == "user-pref" {
                found.2 = Some(yes);
            } else {
                found.1 = yes;
            }
        }
        // `group` (web-UI page grouping in exported SPA configs), `um` (output only) and anything else: ignored,
        // as the phone ignores what it does not recognise.
        _ => {}
    }
    Ok(())
}

fn xml_error(e: XmlError, position: Position) -> ParseError {
    ParseError { position, kind: ParseErrorKind::Xml(e.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_newline_finds_every_line_end() {
        for n in 0..40 {
            let plain = vec![b'a'; n];
            assert!(!has_newline(&plain), "{n}");
            for at in 0..n {
                let mut b = plain.clone();
                b[at] = b'\n';
                assert!(has_newline(&b), "{n} {at}");
                b[at] = b'\n' ^ 0x80;
                assert!(!has_newline(&b), "{n} {at}");
            }
        }
    }
}
