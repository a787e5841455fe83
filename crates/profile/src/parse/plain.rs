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
use crate::name::{matches, same, word};
use crate::position::Lines;
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
/// 24 bytes costs less than `memchr`'s set-up.
fn find_short(needle: u8, b: &[u8]) -> Option<usize> {
    let head = &b[..b.len().min(24)];
    match head.iter().position(|&c| c == needle) {
        Some(i) => Some(i),
        None => memchr(needle, &b[head.len()..]).map(|i| head.len() + i),
    }
}

/// A run of text up to the next `<`: where that is, and whether a `&` or a line end comes before it.
struct Run {
    lt: Option<usize>,
    amp: bool,
    newline: bool,
}

/// Finds the end of a run of text in one pass, eight bytes at a time (a value is scanned once, not once per
/// question). A run longer than [`Run::SHORT`] bytes goes to `memchr`.
fn scan_run(b: &[u8]) -> Run {
    let mut run = Run { lt: None, amp: false, newline: false };
    let mut k = 0;
    while k + 8 <= b.len().min(Run::SHORT) {
        let w = word(b, k);
        let lt = matches(w, b'<');
        let mut amp = matches(w, b'&');
        let mut newline = matches(w, b'\n');
        if lt != 0 {
            let at = lt.trailing_zeros();
            let below = (1u64 << at) - 1;
            amp &= below;
            newline &= below;
            run.lt = Some(k + at as usize / 8);
        }
        run.amp |= amp != 0;
        run.newline |= newline != 0;
        if run.lt.is_some() {
            return run;
        }
        k += 8;
    }
    let rest = &b[k..];
    let end = if k < Run::SHORT { rest.iter().position(|&c| c == b'<') } else { memchr(b'<', rest) };
    let text = &rest[..end.unwrap_or(rest.len())];
    run.lt = end.map(|e| k + e);
    run.amp |= memchr(b'&', text).is_some();
    run.newline |= memchr(b'\n', text).is_some();
    run
}

impl Run {
    /// Runs are scanned eight bytes at a time up to here, then by `memchr`.
    const SHORT: usize = 64;
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
    // Every byte is passed once: text runs, the declaration, comments and the white space inside start tags can
    // hold line ends; names, end tags and attribute values (checked) cannot.
    let mut lines = Lines::new();
    let mut open: Vec<&str> = Vec::with_capacity(8);
    let mut i = 0;
    while i < b.len() {
        // Most runs between tags are one line end: look at the next two bytes before scanning.
        let lt = match b.get(i..i + 2) {
            Some([b'<', _]) => i,
            Some([c, b'<']) => {
                match *c {
                    b'\n' => lines.line_end(i + bom),
                    // A lone `&` is never a reference.
                    b'&' => return None,
                    _ => {}
                }
                if builder.wants_text() {
                    builder.text(&body[i..i + 1], false);
                }
                i + 1
            }
            _ => {
                let run = scan_run(&b[i..]);
                let lt = run.lt.map_or(b.len(), |k| i + k);
                if run.newline {
                    lines.pass(&b[i..lt], i + bom);
                }
                // Text outside a parameter is ignored, but its references must still be well formed.
                if run.amp || builder.wants_text() {
                    text_run(&body[i..lt], run.amp, &mut builder)?;
                }
                lt
            }
        };
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
                lines.pass(&b[..end], bom);
                i = end + 2;
            }
            b'!' if b[lt..].starts_with(b"<!--")
                && !b[lt + 4..].starts_with(b">")
                && !b[lt + 4..].starts_with(b"->") =>
            {
                let end = lt + 4 + memmem::find(&b[lt + 4..], b"-->")?;
                lines.pass(&b[lt + 4..end], lt + 4 + bom);
                i = end + 3;
            }
            b'/' => {
                // `</` must be followed by the open element's name and `>`: compared, not scanned.
                let name = open.pop()?;
                let name_end = lt + 2 + name.len();
                if b.get(name_end) != Some(&b'>') || !same(&b[lt + 2..name_end], name.as_bytes()) {
                    return None;
                }
                builder.end().ok()?;
                i = name_end + 1;
            }
            c if is_name_start(c) => {
                let name_end = lt + 1 + name_len(&b[lt + 1..]);
                let name = &body[lt + 1..name_end];
                let position = lines.at(text, at);
                let mut found: [(&str, &str); MAX_ATTRIBUTES] = [("", ""); MAX_ATTRIBUTES];
                let mut count = 0;
                let mut j = name_end;
                let self_closing = loop {
                    let ws = whitespace_len(&b[j..]);
                    if ws > 1 || (ws == 1 && b[j] != b' ') {
                        lines.pass(&b[j..j + ws], j + bom);
                    }
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
                    builder.empty(name, position, interpret).ok()?;
                } else {
                    builder.start(name, at, position, j + bom, interpret).ok()?;
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

/// Character data between tags (`amp`: it holds a `&`), with the five predefined entities; any other reference:
/// give up.
fn text_run(mut run: &str, amp: bool, builder: &mut Builder<'_>) -> Option<()> {
    if run.is_empty() {
        return Some(());
    }
    if !amp {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `scan_run` answers as three plain searches do, for every length around its word and `memchr` boundaries and
    /// every placement of the bytes it looks for.
    #[test]
    fn scan_run_agrees_with_plain_searches() {
        let alphabet = [b'a', b'<', b'&', b'\n', 0x80, b'<' ^ 0x80, b'&' + 1];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut checked = 0;
        for len in 0..150 {
            for _ in 0..200 {
                let b: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Mostly plain bytes, so a `<` often comes late or not at all.
                        let pick = (seed % 40) as usize;
                        alphabet[if pick < alphabet.len() { pick } else { 0 }]
                    })
                    .collect();
                let run = scan_run(&b);
                let lt = b.iter().position(|&c| c == b'<');
                let text = &b[..lt.unwrap_or(b.len())];
                assert_eq!(run.lt, lt, "{b:?}");
                assert_eq!(run.amp, text.contains(&b'&'), "{b:?}");
                assert_eq!(run.newline, text.contains(&b'\n'), "{b:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 150 * 200);
    }
}
