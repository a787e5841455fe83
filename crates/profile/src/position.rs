//! Line and column positions for messages a person can act on.

/// A 1-based line and column (the column counts characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1, in characters.
    pub column: u32,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Turns byte offsets into positions, cheaply when the offsets grow (as they do while parsing).
pub(crate) struct Locator<'a> {
    text: &'a str,
    offset: usize,
    line: u32,
    column: u32,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Locator { text, offset: 0, line: 1, column: 1 }
    }

    /// The position of byte `offset` (clamped to the text and to a character boundary).
    pub(crate) fn at(&mut self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        if offset < self.offset {
            self.offset = 0;
            self.line = 1;
            self.column = 1;
        }
        // Two simple passes that the compiler vectorises: count line ends, then count the characters after the last
        // one (a character starts at every byte that is not a UTF-8 continuation byte, 0b10xx_xxxx).
        let segment = &self.text.as_bytes()[self.offset..offset];
        let chars = |bytes: &[u8]| count(bytes, |b| b & 0xC0 != 0x80);
        match segment.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                self.line += count(&segment[..last + 1], |b| b == b'\n');
                self.column = 1 + chars(&segment[last + 1..]);
            }
            None => self.column += chars(segment),
        }
        self.offset = offset;
        Position { line: self.line, column: self.column }
    }
}

/// The line a tokenizer is on, kept as it goes. A tokenizer that passes every line end to it once (and no byte
/// twice) knows each element's position at no cost: the column counts the characters from the line's start to
/// the element, which is usually none.
pub(crate) struct Lines {
    line: u32,
    /// The byte where the current line starts.
    line_start: usize,
}

impl Lines {
    pub(crate) fn new() -> Self {
        Lines { line: 1, line_start: 0 }
    }

    /// Passes over `bytes`, which start at byte `from` of the text.
    pub(crate) fn pass(&mut self, bytes: &[u8], from: usize) {
        if let Some(last) = memchr::memrchr(b'\n', bytes) {
            self.line += count(&bytes[..=last], |b| b == b'\n');
            self.line_start = from + last + 1;
        }
    }

    /// Passes over one line end, at byte `at`.
    pub(crate) fn line_end(&mut self, at: usize) {
        self.line += 1;
        self.line_start = at + 1;
    }

    /// The position of byte `at` of `text`: on the current line, and on a character boundary.
    pub(crate) fn at(&self, text: &str, at: usize) -> Position {
        let before = &text.as_bytes()[self.line_start..at];
        Position { line: self.line, column: 1 + count(before, |b| b & 0xC0 != 0x80) }
    }
}

/// How many bytes of `bytes` match: counted in byte-wide lanes, 255 bytes at a time, which the compiler turns into
/// vector compares and subtractions (a `usize` count per byte is several times slower on baseline x86-64).
fn count(bytes: &[u8], matches: impl Fn(u8) -> bool) -> u32 {
    bytes.chunks(255).map(|chunk| u32::from(chunk.iter().fold(0u8, |n, &b| n.wrapping_add(u8::from(matches(b)))))).sum()
}

/// The position of byte `offset` in raw bytes that may not be valid UTF-8 (used for encoding errors).
pub(crate) fn position_in_bytes(bytes: &[u8], offset: usize) -> Position {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() as u32 + 1;
    Position { line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let text = "ab\ncé\nx";
        let mut l = Locator::new(text);
        assert_eq!(l.at(0), Position { line: 1, column: 1 });
        assert_eq!(l.at(3), Position { line: 2, column: 1 });
        assert_eq!(l.at(6), Position { line: 2, column: 3 });
        assert_eq!(l.at(7), Position { line: 3, column: 1 });
        assert_eq!(l.at(1), Position { line: 1, column: 2 });
        assert_eq!(l.at(5), Position { line: 2, column: 2 }, "inside é clamps to its start");
        assert_eq!(position_in_bytes(b"a\nb\xffc", 3), Position { line: 2, column: 2 });
    }
}
