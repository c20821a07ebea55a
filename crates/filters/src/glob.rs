//! Glob patterns with the syntax and meaning of `github.com/gobwas/glob` v0.2.3, which Velero
//! compiles (without separators) for every namespace and resource include/exclude entry.
//!
//! Why not `globset`: its syntax differs exactly where users write character classes. gobwas
//! accepts one range *or* one list per class (`[a-z]`, `[abc]`, but `[a-z0-9]` is a compile
//! error), negates only with `!` (`[^a]` is the list `^`,`a`), has no leading-`]` rule, accepts
//! an unclosed `{` and drops a trailing `\`. A pattern must compile, or fail, exactly where it
//! does in Velero, so the gobwas grammar is parsed here and only matching is left to `regex`
//! (which keeps matching linear, unlike backtracking).

use std::collections::VecDeque;

use regex::Regex;

/// A pattern gobwas/glob refuses; the message is gobwas's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GlobError(String);

/// A compiled gobwas glob: `*` and `**` match any run of characters (unless separators are
/// given, see [`Glob::with_separators`]), `?` one character, `[abc]`/`[a-z]`/`[!…]` one character
/// of a class, `{a,b}` alternatives, `\c` the character `c`. The whole string must match.
#[derive(Debug, Clone)]
pub struct Glob {
    regex: Regex,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        Self::with_separators(pattern, &[])
    }

    /// gobwas's `glob.Compile(pattern, separators...)`: `*` and `?` no longer match a separator,
    /// `**` still matches anything, and character classes ignore separators (`[!a]` matches `.`).
    /// Velero's restore resource modifiers compile `groupResource` this way with `.`, so `*`
    /// matches `pods` but not `deployments.apps`.
    pub fn with_separators(pattern: &str, separators: &[char]) -> Result<Self, GlobError> {
        let nodes = Parser::new(pattern).parse()?;
        let mut re = String::from("^(?s:");
        render(&nodes, &separator_class(separators), &mut re);
        re.push_str(")$");
        let regex = Regex::new(&re).map_err(|e| GlobError(e.to_string()))?;
        Ok(Glob { regex })
    }

    pub fn is_match(&self, candidate: &str) -> bool {
        self.regex.is_match(candidate)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    /// `*`: any run of non-separator characters.
    Any,
    /// `**`: any run of characters, separators included.
    Super,
    Single,
    Range {
        lo: char,
        hi: char,
        not: bool,
    },
    List {
        chars: Vec<char>,
        not: bool,
    },
    AnyOf(Vec<Vec<Node>>),
}

/// The regex class of one non-separator character: `.` when there are no separators.
fn separator_class(separators: &[char]) -> String {
    use std::fmt::Write as _;
    if separators.is_empty() {
        return ".".to_string();
    }
    let mut class = String::from("[^");
    for c in separators {
        let _ = write!(class, "\\x{{{:x}}}", *c as u32);
    }
    class.push(']');
    class
}

fn render(nodes: &[Node], non_separator: &str, out: &mut String) {
    use std::fmt::Write as _;
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(&regex::escape(text)),
            Node::Any => {
                out.push_str(non_separator);
                out.push('*');
            }
            Node::Super => out.push_str(".*"),
            Node::Single => out.push_str(non_separator),
            Node::Range { lo, hi, not } => {
                let neg = if *not { "^" } else { "" };
                let _ = write!(
                    out,
                    "[{neg}\\x{{{:x}}}-\\x{{{:x}}}]",
                    *lo as u32, *hi as u32
                );
            }
            Node::List { chars, not } => {
                out.push('[');
                if *not {
                    out.push('^');
                }
                for c in chars {
                    let _ = write!(out, "\\x{{{:x}}}", *c as u32);
                }
                out.push(']');
            }
            Node::AnyOf(alternatives) => {
                out.push_str("(?:");
                for (i, alt) in alternatives.iter().enumerate() {
                    if i > 0 {
                        out.push('|');
                    }
                    render(alt, non_separator, out);
                }
                out.push(')');
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Eof,
    Text(String),
    Any,
    Super,
    Single,
    RangeOpen,
    RangeClose,
    Not,
    RangeLo(char),
    RangeBetween,
    RangeHi(char),
    TermsOpen,
    TermsClose,
    Separator,
}

/// End of input as gobwas sees it: the Go lexer uses rune 0 for "no more input", so a NUL in the
/// pattern ends it too.
const EOF: char = '\0';

/// gobwas lexes lazily: a range is lexed as a whole when reached, and an error stops everything
/// after it, including tokens already queued. Parse errors in earlier parts of a pattern therefore
/// win over lexing errors in later parts, and this lexer keeps that order.
struct Lexer {
    chars: Vec<char>,
    pos: usize,
    last_width: usize,
    err: Option<String>,
    queue: VecDeque<Token>,
    terms_level: usize,
}

impl Lexer {
    fn new(pattern: &str) -> Self {
        Lexer {
            chars: pattern.chars().collect(),
            pos: 0,
            last_width: 0,
            err: None,
            queue: VecDeque::new(),
            terms_level: 0,
        }
    }

    fn next(&mut self) -> Result<Token, GlobError> {
        loop {
            if let Some(err) = &self.err {
                return Err(GlobError(err.clone()));
            }
            if let Some(token) = self.queue.pop_front() {
                return Ok(token);
            }
            self.fetch_item();
        }
    }

    fn peek(&mut self) -> (char, usize) {
        match self.chars.get(self.pos) {
            None => (EOF, 0),
            // Go decodes U+FFFD as utf8.RuneError and gives up on the pattern.
            Some('\u{FFFD}') => {
                self.err = Some("could not read rune".into());
                (EOF, 0)
            }
            Some(&c) => (c, 1),
        }
    }

    fn read(&mut self) -> char {
        let (c, width) = self.peek();
        self.pos += width;
        self.last_width = width;
        c
    }

    fn unread(&mut self) {
        self.pos -= self.last_width;
        self.last_width = 0;
    }

    fn fetch_item(&mut self) {
        let in_terms = self.terms_level > 0;
        match self.read() {
            EOF => self.queue.push_back(Token::Eof),
            '{' => {
                self.terms_level += 1;
                self.queue.push_back(Token::TermsOpen);
            }
            ',' if in_terms => self.queue.push_back(Token::Separator),
            '}' if in_terms => {
                self.queue.push_back(Token::TermsClose);
                self.terms_level -= 1;
            }
            '[' => {
                self.queue.push_back(Token::RangeOpen);
                self.fetch_range();
            }
            '?' => self.queue.push_back(Token::Single),
            '*' => {
                if self.read() == '*' {
                    self.queue.push_back(Token::Super);
                } else {
                    self.unread();
                    self.queue.push_back(Token::Any);
                }
            }
            _ => {
                self.unread();
                let breakers: &[char] = if in_terms {
                    &['?', '*', '[', '{', '}', ',']
                } else {
                    &['?', '*', '[', '{']
                };
                self.fetch_text(breakers);
            }
        }
    }

    fn fetch_range(&mut self) {
        let (mut want_hi, mut want_close, mut seen_not) = (false, false, false);
        loop {
            let c = self.read();
            if c == EOF {
                self.err = Some("unexpected end of input".into());
                return;
            }
            if want_close {
                if c == ']' {
                    self.queue.push_back(Token::RangeClose);
                } else {
                    self.err = Some("expected close range character".into());
                }
                return;
            }
            if want_hi {
                self.queue.push_back(Token::RangeHi(c));
                want_close = true;
                continue;
            }
            if !seen_not && c == '!' {
                self.queue.push_back(Token::Not);
                seen_not = true;
                continue;
            }
            let (next, width) = self.peek();
            if next == '-' {
                self.pos += width;
                self.queue.push_back(Token::RangeLo(c));
                self.queue.push_back(Token::RangeBetween);
                want_hi = true;
                continue;
            }
            self.unread();
            self.fetch_text(&[']']);
            want_close = true;
        }
    }

    fn fetch_text(&mut self, breakers: &[char]) {
        let mut data = String::new();
        let mut escaped = false;
        loop {
            let c = self.read();
            if c == EOF {
                break;
            }
            if !escaped {
                if c == '\\' {
                    escaped = true;
                    continue;
                }
                if breakers.contains(&c) {
                    self.unread();
                    break;
                }
            }
            escaped = false;
            data.push(c);
        }
        if !data.is_empty() {
            self.queue.push_back(Token::Text(data));
        }
    }
}

struct Parser {
    lexer: Lexer,
}

impl Parser {
    fn new(pattern: &str) -> Self {
        Parser {
            lexer: Lexer::new(pattern),
        }
    }

    /// Returns the top-level sequence. An unclosed `{` is not an error in gobwas: the
    /// alternatives seen so far stand, as if closed at the end.
    fn parse(mut self) -> Result<Vec<Node>, GlobError> {
        // Each frame is an open `{`: the finished alternatives and the one being read.
        let mut stack: Vec<Frame> = vec![(Vec::new(), Vec::new())];
        loop {
            let token = self.lexer.next()?;
            match token {
                Token::Eof => break,
                Token::Text(text) => top(&mut stack)?.1.push(Node::Text(text)),
                Token::Any => top(&mut stack)?.1.push(Node::Any),
                Token::Super => top(&mut stack)?.1.push(Node::Super),
                Token::Single => top(&mut stack)?.1.push(Node::Single),
                Token::RangeOpen => {
                    let node = self.parse_range()?;
                    top(&mut stack)?.1.push(node);
                }
                Token::TermsOpen => stack.push((Vec::new(), Vec::new())),
                Token::Separator => {
                    let frame = top(&mut stack)?;
                    let done = std::mem::take(&mut frame.1);
                    frame.0.push(done);
                }
                Token::TermsClose => close_terms(&mut stack)?,
                other => return Err(GlobError(format!("unexpected token: {other:?}"))),
            }
        }
        while stack.len() > 1 {
            close_terms(&mut stack)?;
        }
        Ok(stack.pop().map(|root| root.1).unwrap_or_default())
    }

    fn parse_range(&mut self) -> Result<Node, GlobError> {
        let (mut not, mut lo, mut hi, mut chars) = (false, EOF, EOF, String::new());
        loop {
            match self.lexer.next()? {
                Token::Eof => return Err(GlobError("unexpected end".into())),
                Token::Not => not = true,
                Token::RangeLo(c) => lo = c,
                Token::RangeBetween => {}
                Token::RangeHi(c) => {
                    hi = c;
                    if hi < lo {
                        return Err(GlobError(format!(
                            "hi character '{hi}' should be greater than lo '{lo}'"
                        )));
                    }
                }
                Token::Text(text) => chars = text,
                Token::RangeClose => {
                    let is_range = lo != EOF && hi != EOF;
                    let is_chars = !chars.is_empty();
                    if is_range == is_chars {
                        return Err(GlobError("could not parse range".into()));
                    }
                    return Ok(if is_range {
                        Node::Range { lo, hi, not }
                    } else {
                        Node::List {
                            chars: chars.chars().collect(),
                            not,
                        }
                    });
                }
                _ => {}
            }
        }
    }
}

/// An open `{` (or the root): the finished alternatives and the one being read.
type Frame = (Vec<Vec<Node>>, Vec<Node>);

/// The innermost open frame. The lexer closes no more `{` than it opened, so the root is always
/// there; an error, not a panic, if that ever changed.
fn top(stack: &mut [Frame]) -> Result<&mut Frame, GlobError> {
    stack
        .last_mut()
        .ok_or_else(|| GlobError("unbalanced '}'".into()))
}

fn close_terms(stack: &mut Vec<Frame>) -> Result<(), GlobError> {
    if stack.len() < 2 {
        return Err(GlobError("unbalanced '}'".into()));
    }
    let (mut alternatives, last) = stack.pop().unwrap_or_default();
    alternatives.push(last);
    top(stack)?.1.push(Node::AnyOf(alternatives));
    Ok(())
}

/// A namespace wildcard Velero refuses before trying to expand it. The texts are Velero's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("wildcard pattern contains unsupported characters: |, (, ), !, {{, }}, ,")]
    UnsupportedCharacters,
    #[error("wildcard pattern contains consecutive asterisks (only single * allowed)")]
    ConsecutiveAsterisks,
    #[error("wildcard pattern contains empty bracket pattern '[]'")]
    EmptyBrackets,
    #[error("wildcard pattern contains unclosed bracket '['")]
    UnclosedBracket,
    #[error("wildcard pattern contains unmatched closing bracket ']'")]
    UnmatchedClosingBracket,
}

/// Velero's `wildcard.ValidateNamespaceName`: the subset of glob syntax Velero allows in namespace
/// lists (`*`, `?`, `[...]`; no alternatives, negation or `**`).
///
/// Brackets do not nest here: `[[a]` is the class `[a`. A pattern can pass this check and still
/// not compile as a glob (`[a-z0-9]`, `[z-a]`); Velero then fails the backup when it expands it.
pub fn validate_namespace_pattern(pattern: &str) -> Result<(), PatternError> {
    if pattern.contains(['|', '(', ')', '!', '{', '}', ',']) {
        return Err(PatternError::UnsupportedCharacters);
    }
    if pattern.contains("**") {
        return Err(PatternError::ConsecutiveAsterisks);
    }
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' => match bytes[i + 1..].iter().position(|&b| b == b']') {
                None => return Err(PatternError::UnclosedBracket),
                Some(0) => return Err(PatternError::EmptyBrackets),
                Some(offset) => i += offset + 1,
            },
            b']' => return Err(PatternError::UnmatchedClosingBracket),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(pattern: &str, candidate: &str) -> bool {
        Glob::new(pattern).unwrap().is_match(candidate)
    }

    fn error(pattern: &str) -> String {
        Glob::new(pattern).unwrap_err().to_string()
    }

    #[test]
    fn star_crosses_dots_and_slashes_because_velero_uses_no_separators() {
        assert!(matches("*", ""));
        assert!(matches("*", "deployments.apps"));
        assert!(matches("*.apps", "deployments.apps"));
        assert!(matches("a*b", "a/x.y/b"));
        assert!(matches("**", "any/thing"));
        assert!(!matches("*.apps", "deployments.apps.k8s.io.x"));
        assert!(matches("*.apps*", "deployments.apps.k8s.io.x"));
    }

    #[test]
    fn separators_stop_star_and_question_mark_but_not_double_star() {
        let matches = |pattern: &str, candidate: &str| {
            Glob::with_separators(pattern, &['.'])
                .unwrap()
                .is_match(candidate)
        };
        assert!(matches("*", "pods"));
        assert!(!matches("*", "deployments.apps"));
        assert!(matches("*.apps", "deployments.apps"));
        assert!(!matches("*.apps", "ingresses.networking.k8s.io"));
        assert!(matches("**", "ingresses.networking.k8s.io"));
        assert!(matches("*.**", "ingresses.networking.k8s.io"));
        assert!(matches("pod?", "pods"));
        assert!(!matches("a?b", "a.b"));
        assert!(matches("a[!x]b", "a.b"));
        assert!(matches("{pods,*.apps}", "statefulsets.apps"));
        assert!(!matches("{pods,*.apps}", "jobs.batch"));
    }

    #[test]
    fn question_mark_is_exactly_one_character() {
        assert!(matches("ns-?", "ns-a"));
        assert!(matches("ns-?", "ns-é"));
        assert!(!matches("ns-?", "ns-"));
        assert!(!matches("ns-?", "ns-ab"));
    }

    #[test]
    fn whole_string_must_match() {
        assert!(!matches("prod", "prod-1"));
        assert!(!matches("prod", "my-prod"));
        assert!(matches("prod", "prod"));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
    }

    #[test]
    fn character_classes_follow_gobwas() {
        assert!(matches("ns-[abc]", "ns-b"));
        assert!(!matches("ns-[abc]", "ns-d"));
        assert!(matches("ns-[!abc]", "ns-d"));
        assert!(!matches("ns-[!abc]", "ns-a"));
        assert!(matches("ns-[0-9]", "ns-7"));
        assert!(!matches("ns-[0-9]", "ns-x"));
        assert!(matches("ns-[!0-9]", "ns-x"));
        // `^` is not negation in gobwas, just a character of the list.
        assert!(matches("[^a]", "^"));
        assert!(matches("[^a]", "a"));
        assert!(!matches("[^a]", "b"));
        // A `-` not between two characters is literal.
        assert!(matches("[-a]", "-"));
        assert!(matches("[ab-]x", "-x"));
        assert!(!matches("[ab-]x", "cx"));
        // Escapes.
        assert!(matches("[\\]]", "]"));
        assert!(matches("a\\*", "a*"));
        assert!(!matches("a\\*", "ab"));
    }

    #[test]
    fn alternatives() {
        assert!(matches("{dev,prod}-*", "prod-1"));
        assert!(matches("{dev,prod}-*", "dev-"));
        assert!(!matches("{dev,prod}-*", "qa-1"));
        assert!(matches("x{a,}", "x"));
        assert!(matches("{a,{b,c}d}", "cd"));
        // An unclosed `{` is accepted and behaves as if closed at the end.
        assert!(matches("{a,b", "b"));
        assert!(!matches("{a,b", "ab"));
        // Outside `{}` a `,` and `}` are ordinary characters, so is `]`.
        assert!(matches("a,b}]", "a,b}]"));
    }

    #[test]
    fn trailing_backslash_is_dropped() {
        assert!(matches("ab\\", "ab"));
    }

    #[test]
    fn errors_are_gobwas_messages() {
        assert_eq!(error("[a-z0-9]"), "expected close range character");
        assert_eq!(error("["), "unexpected end of input");
        assert_eq!(error("[abc"), "unexpected end of input");
        assert_eq!(error("[a-]"), "unexpected end of input");
        assert_eq!(error("[]"), "could not parse range");
        assert_eq!(error("[!]"), "could not parse range");
        assert_eq!(
            error("[z-a]"),
            "hi character 'a' should be greater than lo 'z'"
        );
        assert_eq!(error("a\u{FFFD}"), "could not read rune");
    }

    #[test]
    fn earlier_parse_error_wins_over_later_lexing_error() {
        assert_eq!(error("[][a-z0]"), "could not parse range");
    }

    proptest! {
        #[test]
        fn text_without_special_characters_matches_only_itself(
            pattern in "[a-z0-9.\\-]{0,12}",
            other in "[a-z0-9.\\-]{0,12}",
        ) {
            let glob = Glob::new(&pattern).unwrap();
            prop_assert!(glob.is_match(&pattern));
            prop_assert_eq!(glob.is_match(&other), pattern == other);
        }

        #[test]
        fn prefix_star_matches_every_extension(prefix in "[a-z0-9-]{0,8}", rest in "\\PC{0,8}") {
            let glob = Glob::new(&format!("{prefix}*")).unwrap();
            let candidate = format!("{prefix}{rest}");
            prop_assert!(glob.is_match(&candidate));
        }

        #[test]
        fn any_pattern_compiles_or_fails_with_a_gobwas_message(
            pattern in "[a-c*?\\[\\]{},!\\\\-]{0,10}",
            candidate in "[a-c,!\\-]{0,6}",
        ) {
            match Glob::new(&pattern) {
                Ok(glob) => {
                    // A pattern without any special character is plain text.
                    if !pattern.contains(['*', '?', '[', '{', '\\']) {
                        prop_assert_eq!(glob.is_match(&candidate), pattern == candidate);
                    }
                }
                Err(err) => {
                    let known = [
                        "unexpected end of input",
                        "expected close range character",
                        "could not parse range",
                    ];
                    let message = err.to_string();
                    prop_assert!(
                        known.contains(&message.as_str()) || message.starts_with("hi character"),
                        "unexpected message {}", message
                    );
                }
            }
        }
    }
}
