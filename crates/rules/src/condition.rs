//! Conditional expressions: comparisons joined by `and`.
//!
//! Cisco "Provisioning Formats", *Conditional Expressions*: operands are integers, version numbers or double-quoted
//! strings; operators `=` `!=` `<` `<=` `>` `>=` or `eq` `ne` `lt` `le` `gt` `ge`; strings compare only for
//! (in)equality. The text is macro-expanded first ("It is important to enclose macro variables in double quotes where
//! a string literal is expected"). Comparing an integer with a version, a string with a number, or ordering strings is
//! an error at the column of the comparison, not a silent `false`; so is a malformed version.
//!
//! Not supported: the pre-2.0.6 SPA forms (a bare `!` for `!=` *is* accepted; a comparison with no left operand
//! meaning `$SWVER` is not).

use std::cmp::Ordering;

use crate::SyntaxError;
use crate::macros::{Context, Expansion, Variables, expand_mapped};
use crate::version::Version;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `=`, `eq`
    Eq,
    /// `!=`, `ne`
    Ne,
    /// `<`, `lt`
    Lt,
    /// `<=`, `le`
    Le,
    /// `>`, `gt`
    Gt,
    /// `>=`, `ge`
    Ge,
}

impl Operator {
    fn from_word(w: &str) -> Option<Operator> {
        Some(match w.to_ascii_lowercase().as_str() {
            "eq" => Operator::Eq,
            "ne" => Operator::Ne,
            "lt" => Operator::Lt,
            "le" => Operator::Le,
            "gt" => Operator::Gt,
            "ge" => Operator::Ge,
            _ => return None,
        })
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            Operator::Eq => o == Ordering::Equal,
            Operator::Ne => o != Ordering::Equal,
            Operator::Lt => o == Ordering::Less,
            Operator::Le => o != Ordering::Greater,
            Operator::Gt => o == Ordering::Greater,
            Operator::Ge => o != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Str(String),
    Word(String),
    Op(Operator),
    And,
}

/// An operand after classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// A decimal integer.
    Integer(i64),
    /// A version number.
    Version(Version),
    /// A double-quoted string.
    Str(String),
}

impl Operand {
    fn kind(&self) -> &'static str {
        match self {
            Operand::Integer(_) => "an integer",
            Operand::Version(_) => "a version number",
            Operand::Str(_) => "a string",
        }
    }
}

struct Lexed {
    token: Token,
    /// Byte offset in the expanded text.
    at: usize,
}

fn lex(text: &str) -> Result<Vec<Lexed>, (usize, String)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let at = i;
        if b == b'"' {
            let end = bytes[i + 1..]
                .iter()
                .position(|&c| c == b'"')
                .ok_or((at, "this double-quoted string is not closed".to_string()))?;
            out.push(Lexed { token: Token::Str(text[i + 1..i + 1 + end].to_string()), at });
            i += end + 2;
            continue;
        }
        if matches!(b, b'=' | b'!' | b'<' | b'>') {
            let two = bytes.get(i + 1) == Some(&b'=');
            let op = match (b, two) {
                (b'=', _) => Operator::Eq,
                (b'!', _) => Operator::Ne,
                (b'<', false) => Operator::Lt,
                (b'<', true) => Operator::Le,
                (b'>', false) => Operator::Gt,
                (b'>', true) => Operator::Ge,
                _ => unreachable!(),
            };
            // `=` and `!` take an optional `=`: `==` and `!=`, `!` alone is the legacy "not equal".
            i += if two { 2 } else { 1 };
            out.push(Lexed { token: Token::Op(op), at });
            continue;
        }
        let len = bytes[i..]
            .iter()
            .take_while(|&&c| !c.is_ascii_whitespace() && !matches!(c, b'"' | b'=' | b'!' | b'<' | b'>'))
            .count();
        let word = &text[i..i + len];
        let token = if word.eq_ignore_ascii_case("and") {
            Token::And
        } else if let Some(op) = Operator::from_word(word) {
            Token::Op(op)
        } else {
            Token::Word(word.to_string())
        };
        out.push(Lexed { token, at });
        i += len;
    }
    Ok(out)
}

fn classify(token: &Token) -> Result<Operand, String> {
    match token {
        Token::Str(s) => Ok(Operand::Str(s.clone())),
        Token::Word(w) => {
            let digits = w.strip_prefix(['-', '+']).unwrap_or(w);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return w.parse().map(Operand::Integer).map_err(|_| format!("integer {w} is out of range"));
            }
            Version::parse(w).map(Operand::Version).map_err(|_| {
                if w.starts_with('$') {
                    format!("{w} is not a known macro, a number or a version (put strings in double quotes)")
                } else {
                    format!("{w:?} is not an integer or a version number (put strings in double quotes)")
                }
            })
        }
        Token::Op(_) | Token::And => Err("expected an operand".into()),
    }
}

fn compare(a: &Operand, op: Operator, b: &Operand) -> Result<bool, String> {
    match (a, b) {
        (Operand::Integer(x), Operand::Integer(y)) => Ok(op.holds(x.cmp(y))),
        (Operand::Version(x), Operand::Version(y)) => x.compare(y).map(|o| op.holds(o)).map_err(|e| e.to_string()),
        (Operand::Str(x), Operand::Str(y)) => match op {
            Operator::Eq => Ok(x == y),
            Operator::Ne => Ok(x != y),
            _ => Err("strings can only be compared with = (eq) or != (ne)".into()),
        },
        _ => Err(format!("cannot compare {} with {}", a.kind(), b.kind())),
    }
}

/// One comparison as evaluated, for explanations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// The comparison text after macro expansion.
    pub text: String,
    /// Its result.
    pub holds: bool,
}

/// The result of evaluating a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The condition after macro expansion.
    pub expanded: String,
    /// Every comparison and its result.
    pub comparisons: Vec<Comparison>,
    /// Whether all comparisons hold.
    pub holds: bool,
}

fn column(original: &str, expansion: &Expansion, at: usize) -> usize {
    let byte = expansion.origin_of(at, original.len()).min(original.len());
    let mut b = byte;
    while !original.is_char_boundary(b) {
        b -= 1;
    }
    original[..b].chars().count() + 1
}

/// Expands and evaluates a condition. Every comparison is checked, so a type error is reported even after a false
/// comparison. Columns in errors are those of `text` as written.
pub fn evaluate(text: &str, vars: &Variables) -> Result<Evaluation, SyntaxError> {
    let expansion = expand_mapped(text, vars, Context::General);
    let expanded = &expansion.text;
    let err = |at: usize, message: String| SyntaxError::new(column(text, &expansion, at), message);
    let tokens = lex(expanded).map_err(|(at, m)| err(at, m))?;
    if tokens.is_empty() {
        return Err(err(0, "empty condition: expected a comparison such as $PRVTMR ge 600".into()));
    }
    let mut comparisons = Vec::new();
    let mut i = 0;
    loop {
        let start = tokens.get(i).map_or(expanded.len(), |t| t.at);
        let (Some(l), Some(o), Some(r)) = (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)) else {
            let at = tokens.get(i + 1).map_or(expanded.len(), |t| t.at);
            return Err(err(at, "incomplete comparison: expected operand, operator, operand".into()));
        };
        let Token::Op(op) = o.token else {
            return Err(err(o.at, "expected a comparison operator (= != < <= > >= or eq ne lt le gt ge)".into()));
        };
        let a = classify(&l.token).map_err(|m| err(l.at, m))?;
        let b = classify(&r.token).map_err(|m| err(r.at, m))?;
        let holds = compare(&a, op, &b).map_err(|m| err(start, m))?;
        let end = tokens.get(i + 3).map_or(expanded.len(), |t| t.at);
        comparisons.push(Comparison { text: expanded[start..end].trim().to_string(), holds });
        i += 3;
        match tokens.get(i) {
            None => break,
            Some(Lexed { token: Token::And, .. }) => i += 1,
            Some(t) => return Err(err(t.at, "expected \"and\" between comparisons (\"or\" is not supported)".into())),
        }
    }
    let holds = comparisons.iter().all(|c| c.holds);
    Ok(Evaluation { expanded: expanded.clone(), comparisons, holds })
}

/// Whether a bare word is exactly one known macro (`$NAME`, `$(NAME)` or `$(NAME:p:q)`), whose value is only known
/// on the phone.
fn is_macro(word: &str) -> bool {
    let Some(rest) = word.strip_prefix('$') else { return false };
    let name = match rest.strip_prefix('(') {
        Some(inner) => match inner.strip_suffix(')') {
            Some(inner) => inner.split(':').next().unwrap_or(""),
            None => return false,
        },
        None => rest,
    };
    crate::macros::is_known(name) && !crate::macros::is_secret(name)
}

/// Checks a condition's syntax without values, as a linter must: structure, operators, literal types, and that
/// every bare `$NAME` is a known macro. Comparisons whose operands are macros are checked for shape only (a quoted
/// operand against an unquoted one is still an error, since quoting decides the type).
pub fn check(text: &str) -> Result<(), SyntaxError> {
    let col = |at: usize| text[..at.min(text.len())].chars().count() + 1;
    let tokens = lex(text).map_err(|(at, m)| SyntaxError::new(col(at), m))?;
    if tokens.is_empty() {
        return Err(SyntaxError::new(1, "empty condition: expected a comparison such as $PRVTMR ge 600"));
    }
    let mut i = 0;
    loop {
        let (Some(l), Some(o), Some(r)) = (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)) else {
            let at = tokens.get(i + 1).map_or(text.len(), |t| t.at);
            return Err(SyntaxError::new(col(at), "incomplete comparison: expected operand, operator, operand"));
        };
        let Token::Op(op) = o.token else {
            return Err(SyntaxError::new(
                col(o.at),
                "expected a comparison operator (= != < <= > >= or eq ne lt le gt ge)",
            ));
        };
        // Unquoted macros stand for numbers or versions; quoted text is a string whatever it contains.
        let operand = |t: &Lexed| -> Result<Option<Operand>, SyntaxError> {
            match &t.token {
                Token::Word(w) if is_macro(w) => Ok(None),
                other => classify(other).map(Some).map_err(|m| SyntaxError::new(col(t.at), m)),
            }
        };
        let (a, b) = (operand(l)?, operand(r)?);
        let start = col(l.at);
        match (&a, &b) {
            (Some(a), Some(b)) => {
                compare(a, op, b).map_err(|m| SyntaxError::new(start, m))?;
            }
            (Some(Operand::Str(_)), None) | (None, Some(Operand::Str(_))) => {
                return Err(SyntaxError::new(
                    start,
                    "cannot compare a quoted string with an unquoted macro: quote both (\"$A\" eq \"x\") or neither",
                ));
            }
            _ => {}
        }
        i += 3;
        match tokens.get(i) {
            None => return Ok(()),
            Some(Lexed { token: Token::And, .. }) => i += 1,
            Some(t) => {
                return Err(SyntaxError::new(
                    col(t.at),
                    "expected \"and\" between comparisons (\"or\" is not supported)",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str, vars: &Variables) -> bool {
        evaluate(text, vars).unwrap_or_else(|e| panic!("{}", e.render(text))).holds
    }

    fn vars() -> Variables {
        let mut v = Variables::new();
        v.set("SWVER", "sip88xx.11-0-1MPP-312").set("UPGTMR", "400").set("PRVTMR", "600").set("CCERT", "Installed");
        v.set("A", "Provisioned").set("F", "beta-customer");
        v
    }

    /// 003 *Triggers*: `$UPGTMR gt 300 and $PRVTMR ge 600` (the guide misspells them UPGTMTR/PRVTMTR).
    #[test]
    fn triggers_example() {
        assert!(eval("$UPGTMR gt 300 and $PRVTMR ge 600", &vars()));
        let mut v = vars();
        v.set("PRVTMR", "599");
        assert!(!eval("$UPGTMR gt 300 and $PRVTMR ge 600", &v));
        assert!(eval("$UPGTMR GT 300 AND $PRVTMR >= 600", &vars()));
    }

    /// 003 *Conditional Expressions*: the upgrade-rule conditions on `$SWVER`.
    #[test]
    fn conditional_expressions_swver_examples() {
        let v = vars();
        assert!(eval("$SWVER ne sip88xx.11-0-0MPP-256", &v));
        assert!(!eval("$SWVER ne sip88xx.11-0-1MPP-312", &v));
        assert!(eval("$SWVER gt sip88xx.11-0-0MPP-256", &v));
        let err = evaluate("$SWVER ne sip88xx.11-3-2MPP0001-609", &v).unwrap_err();
        assert!(err.message.contains("different formats"), "{err}");
        assert_eq!(err.column, 1);
    }

    /// 003 *Profile Rules* examples 2–4 and *Upgrade Rule*: the conditions alone.
    #[test]
    fn profile_rule_example_conditions() {
        let v = vars();
        assert!(eval("$PRVTMR ge 600", &v));
        assert!(eval("\"$CCERT\" eq \"Installed\"", &v));
        assert!(!eval("\"$A\" ne \"Provisioned\"", &v));
        assert!(!eval("\"$F\" ne \"beta-customer\"", &v));
    }

    #[test]
    fn type_errors_have_columns() {
        let v = vars();
        let cases = [
            ("$PRVTMR eq \"600\"", 1, "cannot compare an integer with a string"),
            ("\"a\" lt \"b\"", 1, "strings can only be compared"),
            ("1 eq 1 and $SWVER gt 5", 12, "cannot compare a version number with an integer"),
            ("1 eq 1 and 2 eq banana", 17, "not an integer or a version"),
            ("1 eq", 3, "incomplete comparison"),
            ("1 eq 1 or 2 eq 2", 8, "expected \"and\""),
            ("\"abc eq 1", 1, "not closed"),
            ("1 2 3", 3, "expected a comparison operator"),
            ("", 1, "empty condition"),
            ("$NOPE eq 1", 1, "not a known macro"),
        ];
        for (text, col, msg) in cases {
            let e = evaluate(text, &v).unwrap_err();
            assert_eq!((e.column, e.message.contains(msg)), (col, true), "{text:?}: {e}");
        }
        // A column after a macro is the column in the text as written.
        let e = evaluate("$SWVER eq 1 and 1 eq x", &v).unwrap_err();
        assert_eq!(e.column, 1, "{e}");
        let e = evaluate("$A eq 1", &v).unwrap_err();
        assert_eq!(e.column, 1, "{e}");
    }

    #[test]
    fn syntax_check_without_values() {
        for ok in [
            "$UPGTMR gt 300 and $PRVTMR ge 600",
            "\"$CCERT\" eq \"Installed\"",
            "$SWVER ne sip88xx.11-0-0MPP-256",
            "$(MAU:4) eq 08012345",
            "1 lt 2",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for (bad, col) in [
            ("$UPGTMR gt", 9),
            ("$NOPE eq 1", 1),
            ("\"$A\" eq $B", 1),
            ("\"a\" lt \"b\"", 1),
            ("1 eq 1 or 2 eq 2", 8),
            ("$SA eq 1", 1),
            ("sip88xx.11-0-1MPP-312 eq sip88xx.11-3-2MPP0001-609", 1),
        ] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.column, col, "{bad}: {e}");
        }
    }

    #[test]
    fn symbols_and_legacy_bang() {
        let v = vars();
        assert!(eval("1 != 2", &v));
        assert!(eval("1 ! 2", &v));
        assert!(eval("2<=2 and 3>2 and 1<2 and 2=2 and 2==2", &v));
        assert!(eval("-5 lt 3", &v));
    }

    #[test]
    fn evaluation_explains_each_comparison() {
        let e = evaluate("$UPGTMR gt 300 and $PRVTMR ge 601", &vars()).unwrap();
        assert_eq!(e.expanded, "400 gt 300 and 600 ge 601");
        assert_eq!(e.comparisons.len(), 2);
        assert_eq!(e.comparisons[0], Comparison { text: "400 gt 300".into(), holds: true });
        assert_eq!(e.comparisons[1], Comparison { text: "600 ge 601".into(), holds: false });
        assert!(!e.holds);
    }
}
