//! Trino's JSONPath subset (the one its `json_extract*` functions take) and a lazy, borrowing
//! walker that finds the value a path points at without building a tree of the document.
//!
//! Why a walker of our own: `details` holds a whole JSON object per event and a query usually
//! wants one field of it. Parsing every row into a `serde_json::Value` allocates a map per
//! object and a string per key; this walker only compares the keys on the way to the target
//! and jumps over sibling subtrees by scanning for their closing bracket.
//!
//! Supported paths (as Trino's `JsonPathTokenizer`):
//! - `$` — the whole document;
//! - `$.key`, `$.a.b` — keys of letters, digits, `_` and `:`;
//! - `$["key with space"]`, `$["key-with-dash"]` — any key without `"` in double quotes;
//! - `$['key']` — single quotes (an extension: Trino accepts only double quotes);
//! - `$.arr[0]`, `$[0]` — array elements, zero-based.
//!
//! As in Trino, every step is a name: on an object it selects the member of that name (the
//! first one if the name repeats), on an array a step that is a non-negative integer selects
//! that element (so `$.arr.0` and `$.arr["0"]` also work), anything else is "missing".
//! Wildcards (`[*]`), filters, slices and recursive descent (`..`) are rejected with an error.
//!
//! Malformed JSON gives "missing" (NULL) when the walk meets the damage. Like Trino, which
//! stops reading once it has the value, text after the target is not checked.

use datafusion::common::{DataFusionError, Result};

/// A compiled path: the steps from the document root.
#[derive(Debug, Clone)]
pub struct JsonPath {
    steps: Vec<Step>,
    /// The first step's name in quotes (`"auth"` for `$.auth.outcome`), when that step can
    /// only select an object member: see [`JsonPath::locate`].
    first_member: Option<memchr::memmem::Finder<'static>>,
}

impl PartialEq for JsonPath {
    fn eq(&self, other: &Self) -> bool {
        // `first_member` follows from the steps.
        self.steps == other.steps
    }
}

impl Eq for JsonPath {}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    name: String,
    /// The array index this step selects when the current value is an array.
    index: Option<usize>,
}

impl JsonPath {
    /// Parses a path literal; an unsupported or malformed path is an error that says why,
    /// where, and what to write instead (never a silent NULL).
    pub fn parse(path: &str) -> Result<Self> {
        let chars: Vec<char> = path.chars().collect();
        let fail = |at: usize, why: &str| -> DataFusionError {
            DataFusionError::Execution(format!(
                "Invalid JSON path: '{path}': {why} at character {}. Supported: $, $.key, \
                 $.a.b, $[\"key with space\"], $['key'], $.arr[0], $[0] (keys with other \
                 characters than letters, digits, '_' and ':' go in brackets: $[\"a-b\"])",
                at + 1
            ))
        };
        if chars.first() != Some(&'$') {
            return Err(fail(0, "a path starts with '$'"));
        }
        let mut steps = Vec::new();
        let mut i = 1;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    let start = i;
                    while i < chars.len() && (is_name_char(chars[i]) || chars[i] == ':') {
                        i += 1;
                    }
                    if i == start {
                        let why = match chars.get(i) {
                            Some('.') => "recursive descent '..' is not supported",
                            Some('*') => "wildcards are not supported",
                            Some(_) => "this character needs a quoted key in brackets",
                            None => "a key is missing after '.'",
                        };
                        return Err(fail(i, why));
                    }
                    steps.push(Step::new(chars[start..i].iter().collect()));
                }
                '[' => {
                    i += 1;
                    let name: String = match chars.get(i) {
                        Some(&q @ ('"' | '\'')) => {
                            let start = i + 1;
                            let Some(len) = chars[start..].iter().position(|&c| c == q) else {
                                return Err(fail(i, "the quoted key is not closed"));
                            };
                            i = start + len + 1;
                            chars[start..start + len].iter().collect()
                        }
                        _ => {
                            let start = i;
                            while i < chars.len() && is_name_char(chars[i]) {
                                i += 1;
                            }
                            if i == start {
                                let why = match chars.get(i) {
                                    Some('*') => "wildcards are not supported",
                                    Some('-') => "negative indexes are not supported",
                                    _ => "expected an index or a quoted key",
                                };
                                return Err(fail(i, why));
                            }
                            chars[start..i].iter().collect()
                        }
                    };
                    if chars.get(i) != Some(&']') {
                        return Err(fail(i, "expected ']'"));
                    }
                    i += 1;
                    steps.push(Step::new(name));
                }
                _ => return Err(fail(i, "expected '.' or '['")),
            }
        }
        let first_member = steps
            .first()
            .filter(|step| step.index.is_none())
            .map(|step| memchr::memmem::Finder::new(&format!("\"{}\"", step.name)).into_owned());
        Ok(Self {
            steps,
            first_member,
        })
    }

    /// The raw text of the value the path points at in `json` (without surrounding
    /// whitespace), or `None` when it is missing or the walk meets malformed JSON.
    ///
    /// Rules ask most events for members they lack (`$.auth.outcome` of a web access line,
    /// `$.channel` of anything but Sysmon), and finding that a member is missing means walking
    /// every key of the object. A member's name can only be written without its quoted text
    /// appearing when it holds an escape, so a document with neither the quoted first name nor
    /// any backslash is answered at once, by two vectorised searches.
    pub fn locate<'a>(&self, json: &'a str) -> Option<&'a str> {
        if let Some(name) = &self.first_member
            && name.find(json.as_bytes()).is_none()
            && memchr::memchr(b'\\', json.as_bytes()).is_none()
        {
            return None;
        }
        let mut s = Scanner::new(json);
        s.ws();
        for step in &self.steps {
            match s.peek()? {
                b'{' => s.find_member(&step.name)?,
                b'[' => s.find_element(step.index?)?,
                _ => return None,
            }
        }
        let start = s.pos;
        s.skip_value()?;
        Some(&json[start..s.pos])
    }
}

impl Step {
    fn new(name: String) -> Self {
        // Trino parses the step with Integer.parseInt: digits only here (no sign).
        let index = if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            name.parse().ok()
        } else {
            None
        };
        Self { name, index }
    }
}

/// Java's `Character.isLetterOrDigit(c) || c == '_'`.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A cursor over JSON text. Methods return `None` on malformed input.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    pub pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            b: text.as_bytes(),
            pos: 0,
        }
    }

    pub fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek()? == c).then(|| self.pos += 1)
    }

    /// At `"`: moves past the closing quote and returns the content between the quotes
    /// (still escaped) and whether it holds a backslash.
    pub fn string(&mut self) -> Option<(&'a str, bool)> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i = self.quote_or_backslash(i)?;
            if self.b[i] == b'"' {
                self.pos = i + 1;
                return Some((&self.text[start..i], escaped));
            }
            escaped = true;
            i += 2; // the backslash and the character it escapes
            if i > self.b.len() {
                return None;
            }
        }
    }

    /// The position of the next quote or backslash from `i`. Most keys and values are short:
    /// the pipeline's word-at-a-time search over the next sixteen bytes finds their end
    /// sooner than memchr's setup (a byte-by-byte loop here was the replay's hottest code);
    /// longer strings continue with memchr.
    fn quote_or_backslash(&self, i: usize) -> Option<usize> {
        let short_end = (i + 16).min(self.b.len());
        if let Some(n) = lakewatch_plugins::find_quote_or_backslash(&self.b[i..short_end]) {
            return Some(i + n);
        }
        memchr::memchr2(b'"', b'\\', &self.b[short_end..]).map(|n| short_end + n)
    }

    /// Moves past one value (after leading whitespace). Containers are skipped by bracket
    /// depth; scalars must be a string, a number, `true`, `false` or `null`.
    pub fn skip_value(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => self.skip_container(),
            _ => self.scalar_token().map(|_| ()),
        }
    }

    /// A number or literal: the bytes up to the next delimiter, checked for shape.
    pub fn scalar_token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if matches!(c, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.pos += 1;
        }
        let token = &self.text[start..self.pos];
        (matches!(token, "true" | "false" | "null") || is_json_number(token)).then_some(token)
    }

    fn skip_container(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            let i = self.pos
                + self.b[self.pos..]
                    .iter()
                    .position(|c| matches!(c, b'"' | b'[' | b']' | b'{' | b'}'))?;
            self.pos = i;
            match self.b[i] {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'[' | b'{' => depth += 1,
                _ => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Some(());
                    }
                }
            }
            self.pos += 1;
        }
    }

    /// At `{`: positions the cursor at the value of the first member named `name`.
    fn find_member(&mut self, name: &str) -> Option<()> {
        self.pos += 1;
        self.ws();
        if self.peek()? == b'}' {
            return None;
        }
        loop {
            self.ws();
            if self.peek()? != b'"' {
                return None;
            }
            let (key, escaped) = self.string()?;
            self.expect(b':')?;
            self.ws();
            let hit = if escaped {
                unescape(key).is_some_and(|k| k == name)
            } else {
                key == name
            };
            if hit {
                return Some(());
            }
            self.skip_value()?;
            self.ws();
            match self.peek()? {
                b',' => self.pos += 1,
                _ => return None, // '}' (not found) or malformed
            }
        }
    }

    /// At `[`: positions the cursor at element `index`.
    fn find_element(&mut self, index: usize) -> Option<()> {
        let mut elements = self.elements()?;
        for _ in 0..index {
            elements.skip_current(self)?;
        }
        elements.at_element(self).then_some(())
    }

    /// At `[`: starts iterating the elements of an array.
    pub fn elements(&mut self) -> Option<Elements> {
        self.pos += 1;
        self.ws();
        Some(Elements {
            ended: self.peek()? == b']',
        })
    }
}

/// Iteration over an array's elements, driven by the scanner: the cursor rests on the
/// current element.
pub(crate) struct Elements {
    ended: bool,
}

impl Elements {
    /// Whether the cursor is on an element (false once the array's `]` was reached).
    pub fn at_element(&self, s: &mut Scanner) -> bool {
        s.ws();
        !self.ended
    }

    /// Moves past the current (unread) element to the next one; `None` if the array is
    /// malformed or already ended.
    pub fn skip_current(&mut self, s: &mut Scanner) -> Option<()> {
        if self.ended {
            return None;
        }
        s.skip_value()?;
        self.next(s)
    }

    /// After the current element was fully read: moves to the next one.
    pub fn next(&mut self, s: &mut Scanner) -> Option<()> {
        s.ws();
        match s.peek()? {
            b',' => {
                s.pos += 1;
                s.ws();
                Some(())
            }
            b']' => {
                s.pos += 1;
                self.ended = true;
                Some(())
            }
            _ => None,
        }
    }
}

/// RFC 8259 number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Decodes the escapes of a JSON string's content (between the quotes).
pub(crate) fn unescape(content: &str) -> Option<String> {
    serde_json::from_str(&format!("\"{content}\"")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_quote_or_backslash_is_found_wherever_it_is() {
        // Neighbours of the two bytes ('!' '#' '[' ']'), a multi-byte character and the two
        // themselves, in every arrangement a small generator makes, searched from every start.
        let alphabet = ["a", "!", "#", "[", "]", "é", "\"", "\\", "\u{7f}"];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..3000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 48) as usize;
            let text: String = (0..len)
                .map(|n| alphabet[((state >> (n % 60)) as usize + n * 7) % alphabet.len()])
                .collect();
            let scanner = Scanner::new(&text);
            for start in 0..=text.len() {
                let expected = text.as_bytes()[start..]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\')
                    .map(|n| start + n);
                assert_eq!(
                    scanner.quote_or_backslash(start),
                    expected,
                    "{text:?} from {start}"
                );
            }
        }
    }

    fn at(json: &str, path: &str) -> Option<String> {
        JsonPath::parse(path)
            .unwrap()
            .locate(json)
            .map(str::to_string)
    }

    #[test]
    fn locates_values_by_path() {
        let doc = r#" {"a": {"b": [10, {"c": "x"}]}, "key with space": 1, "k-d": true,
                       "arr": [[1, 2], "s"], "e\u0073c": null} "#;
        let cases: &[(&str, Option<&str>)] = &[
            ("$", Some(doc.trim())),
            ("$.a.b[0]", Some("10")),
            ("$.a.b[1].c", Some("\"x\"")),
            ("$.a.b.1.c", Some("\"x\"")),
            ("$.a.b[\"1\"]", Some("{\"c\": \"x\"}")),
            ("$[\"key with space\"]", Some("1")),
            ("$['key with space']", Some("1")),
            ("$[\"k-d\"]", Some("true")),
            ("$.arr[0]", Some("[1, 2]")),
            ("$.arr[0][1]", Some("2")),
            ("$.esc", Some("null")),
            ("$.missing", None),
            ("$.a.b[2]", None),
            ("$.a.b.c", None),
            ("$.arr[1].x", None),
        ];
        for (path, want) in cases {
            assert_eq!(at(doc, path).as_deref(), *want, "path {path}");
        }
        assert_eq!(at("[1, [2, 3]]", "$[1][0]").as_deref(), Some("2"));
        assert_eq!(at("\"top\"", "$").as_deref(), Some("\"top\""));
    }

    #[test]
    fn a_member_is_found_however_its_name_is_written_and_missing_only_when_absent() {
        // The quick answer for a document without the quoted first name must agree with the walk.
        let cases: &[(&str, &str, Option<&str>)] = &[
            // Absent, nothing escaped: answered without a walk.
            (r#"{"other": {"auth": 1}, "x": "auth"}"#, "$.auth", None),
            (r#"{"authority": 1, "xauth": 2}"#, "$.auth", None),
            // The quoted name appears elsewhere first: the walk decides.
            (r#"{"a": "\"auth\"", "b": {"auth": 1}}"#, "$.auth", None),
            (
                r#"{"a": ["auth"], "auth": {"user": "u"}}"#,
                "$.auth.user",
                Some("\"u\""),
            ),
            // Written with an escape: only the backslash says it may be there.
            (
                r#"{"a\u0075th": {"user": "v"}}"#,
                "$.auth.user",
                Some("\"v\""),
            ),
            (r#"{"x": "\n", "b": 1}"#, "$.auth", None),
            // An index step on an array, or a name on an array: never a member.
            (r#"[7, 8]"#, "$[1]", Some("8")),
            (r#"[7, 8]"#, "$.auth", None),
            (r#"{"0": "zero"}"#, "$[0]", Some("\"zero\"")),
        ];
        for (doc, path, want) in cases {
            assert_eq!(at(doc, path).as_deref(), *want, "{path} in {doc}");
        }
    }

    #[test]
    fn strings_end_at_the_right_quote_whatever_their_length() {
        // Around the 16-byte switch from the plain loop to memchr, with escapes on both sides.
        let long = "x".repeat(40);
        let doc = format!(
            r#"{{"a_key_longer_than_sixteen": "{long}\"{long}", "short\"q": "v\\", "b": "{long}"}}"#
        );
        assert_eq!(
            at(&doc, "$.b").as_deref(),
            Some(format!("\"{long}\"").as_str())
        );
        assert_eq!(
            at(&doc, "$.a_key_longer_than_sixteen").as_deref(),
            Some(format!(r#""{long}\"{long}""#).as_str())
        );
        for n in 0..40 {
            let s = format!(r#"{{"k": "{}\"", "z": 1}}"#, "y".repeat(n));
            assert_eq!(
                at(&s, "$.z").as_deref(),
                Some("1"),
                "escape after {n} bytes"
            );
        }
    }

    #[test]
    fn first_of_repeated_keys_wins() {
        assert_eq!(at(r#"{"a":1,"a":2}"#, "$.a").as_deref(), Some("1"));
    }

    #[test]
    fn malformed_json_on_the_walk_is_missing() {
        for json in [
            "",
            "not json",
            "{\"a\" 1}",
            "{\"b\": tru, \"a\": 1}",
            "{\"b\": \"unterminated, \"a\": 1",
            "{\"b\": [1, 2, \"a\": 1",
            "{\"b\": 01, \"a\": 1}",
            "{'a': 1}",
        ] {
            assert_eq!(at(json, "$.a"), None, "json {json:?}");
        }
        // As in Trino, text after the value found is not read.
        assert_eq!(at("{\"a\": 1, garbage", "$.a").as_deref(), Some("1"));
    }

    #[test]
    fn invalid_paths_are_errors_that_say_what_to_write() {
        for path in [
            "", "a.b", "$.", "$..a", "$.a-b", "$[*]", "$.*", "$[-1]", "$[\"a\"", "$[0", "$a",
            "$.a b",
        ] {
            let err = JsonPath::parse(path).unwrap_err().to_string();
            assert!(err.contains("Invalid JSON path"), "{path}: {err}");
        }
        let err = JsonPath::parse("$.a-b").unwrap_err().to_string();
        assert!(err.contains("$[\"a-b\"]"), "{err}");
    }

    #[test]
    fn numbers_follow_the_json_grammar() {
        for ok in ["0", "-1", "1.5", "1e10", "-0.5E-3", "123"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e", "+1", "0x1", "NaN"] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }
}
