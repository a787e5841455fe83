//! The fast path for the plain subset of XML that profile generators write.
//!
//! A flat-profile from a generator is a declaration, comments, elements with simple attributes, and text with the
//! five predefined entities. This tokenizer reads exactly that, by hand, and feeds the same [`Builder`] as the XML
//! reader. It is conservative: at the first thing outside the subset (a carriage return, CDATA, a DOCTYPE, a
//! processing instruction other than the leading declaration, a numeric or unknown reference, an attribute value
//! with a reference or a line break, a duplicate attribute) or anything malformed, it gives up with `None` and
//! [`Profile::parse_xml`] reads the document from the start, with its precise errors. Whenever it answers, the
//! answer equals `parse_xml`'s: a property test (`tests/plain_subset.rs`) and the `profile_parse` fuzz target
//! check exactly that.

use memchr::{memchr, memmem};

use super::{Attributes, Builder, ParseError, attribute};
use crate::{ParseOptions, Position, Profile};

/// Attributes per element the fast path takes (`ua`, `preserve-value`, `user-pref`, `group`); more: give up.
const MAX_ATTRIBUTES: usize = 6;

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// The bytes that may follow a name's first: ASCII letters, digits, `_`, `-` and `.` (one table lookup per byte).
const NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
        b += 1;
    }
    t
};

fn name_len(b: &[u8]) -> usize {
    b.iter().position(|&c| !NAME[usize::from(c)]).unwrap_or(b.len())
}

/// `memchr` for a byte that is usually a few bytes away (an attribute's closing quote): a plain loop over the first
/// 16 bytes costs less than `memchr`'s set-up.
fn find_short(needle: u8, b: &[u8]) -> Option<usize> {
    let head = &b[..b.len().min(16)];
    match head.iter().position(|&c| c == needle) {
        Some(i) => Some(i),
        None => memchr(needle, &b[head.len()..]).map(|i| head.len() + i),
    }
}

fn whitespace_len(b: &[u8]) -> usize {
    b.iter().take_while(|&&c| matches!(c, b' ' | b'\t' | b'\n')).count()
}

/// Reads `text` when it is in the plain subset; `None` when it is not (or is not well formed).
pub(super) fn parse(text: &str, options: &ParseOptions) -> Option<Profile> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let bom = text.len() - body.len();
    let b = body.as_bytes();
    if memchr(b'\r', b).is_some() {
        return None;
    }
    let mut builder = Builder::new(text, options);
    let mut open: Vec<&str> = Vec::with_capacity(8);
    let mut i = 0;
    while i < b.len() {
        // Most runs between tags are one line end: look at the next two bytes before calling `memchr`.
        let lt = match b.get(i..i + 2) {
            Some([b'<', _]) => i,
            Some([_, b'<']) => i + 1,
            _ => memchr(b'<', &b[i..]).map_or(b.len(), |k| i + k),
        };
        if lt > i {
            text_run(&body[i..lt], &mut builder)?;
        }
        if lt == b.len() {
            break;
        }
        let at = lt + bom;
        match *b.get(lt + 1)? {
            // The XML declaration, first in the document, with nothing odd inside.
            b'?' if lt == 0 && b.starts_with(b"<?xml ") => {
                let end = memmem::find(b, b"?>")?;
                if b[2..end].iter().any(|&c| matches!(c, b'<' | b'&')) {
                    return None;
                }
                i = end + 2;
            }
            b'!' if b[lt..].starts_with(b"<!--")
                && !b[lt + 4..].starts_with(b">")
                && !b[lt + 4..].starts_with(b"->") =>
            {
                i = lt + 4 + memmem::find(&b[lt + 4..], b"-->")? + 3;
            }
            b'/' => {
                // `</` must be followed by the open element's name and `>`: compared, not scanned.
                let name = open.pop()?;
                let name_end = lt + 2 + name.len();
                if b.get(lt + 2..name_end) != Some(name.as_bytes()) || b.get(name_end) != Some(&b'>') {
                    return None;
                }
                builder.end().ok()?;
                i = name_end + 1;
            }
            c if is_name_start(c) => {
                let name_end = lt + 1 + name_len(&b[lt + 1..]);
                let name = &body[lt + 1..name_end];
                let mut found: [(&str, &str); MAX_ATTRIBUTES] = [("", ""); MAX_ATTRIBUTES];
                let mut count = 0;
                let mut j = name_end;
                let self_closing = loop {
                    let ws = whitespace_len(&b[j..]);
                    j += ws;
                    match *b.get(j)? {
                        b'>' => {
                            j += 1;
                            break false;
                        }
                        b'/' if b.get(j + 1) == Some(&b'>') => {
                            j += 2;
                            break true;
                        }
                        c if ws > 0 && is_name_start(c) && count < MAX_ATTRIBUTES => {
                            let key_end = j + name_len(&b[j..]);
                            let quote = *b.get(key_end + 1)?;
                            if b[key_end] != b'=' || !matches!(quote, b'"' | b'\'') {
                                return None;
                            }
                            let value_start = key_end + 2;
                            let value_end = value_start + find_short(quote, &b[value_start..])?;
                            if b[value_start..value_end].iter().any(|&c| matches!(c, b'<' | b'&' | b'\t' | b'\n')) {
                                return None;
                            }
                            let key = &body[j..key_end];
                            if found[..count].iter().any(|(k, _)| *k == key) {
                                return None;
                            }
                            found[count] = (key, &body[value_start..value_end]);
                            count += 1;
                            j = value_end + 1;
                        }
                        _ => return None,
                    }
                };
                let interpret = |parameter: &str, position: Position| -> Result<Attributes, ParseError> {
                    let mut meaning = (None, false, None);
                    for (key, value) in &found[..count] {
                        attribute(&mut meaning, key, value, parameter).map_err(|kind| ParseError { position, kind })?;
                    }
                    Ok(meaning)
                };
                if self_closing {
                    builder.empty(name, at, interpret).ok()?;
                } else {
                    builder.start(name, at, j + bom, interpret).ok()?;
                    open.push(name);
                }
                i = j;
            }
            _ => return None,
        }
    }
    if !open.is_empty() {
        return None;
    }
    builder.finish(text.len()).ok()
}

/// Character data between tags, with the five predefined entities; any other reference: give up.
fn text_run(mut run: &str, builder: &mut Builder<'_>) -> Option<()> {
    if run.len() < 16 && !run.as_bytes().contains(&b'&') {
        builder.text(run, false);
        return Some(());
    }
    while let Some(amp) = memchr(b'&', run.as_bytes()) {
        if amp > 0 {
            builder.text(&run[..amp], false);
        }
        let semi = amp + 1 + memchr(b';', &run.as_bytes()[amp + 1..])?;
        let resolved = match &run[amp + 1..semi] {
            "amp" => "&",
            "lt" => "<",
            "gt" => ">",
            "apos" => "'",
            "quot" => "\"",
            _ => return None,
        };
        builder.text(resolved, true);
        run = &run[semi + 1..];
    }
    if !run.is_empty() {
        builder.text(run, false);
    }
    Some(())
}
