//! Record framing: where one record ends and the next begins, in a stream of bytes.
//!
//! The Firehose transform (one Firehose record's data), the S3-ingest Lambda (an object of any
//! size) and the local CLI (files, stdin) all cut their input into records here, so a record is
//! the same record whichever way it arrived, and gets the same `eventid`.
//!
//! # Rules
//! - gzip is detected by its magic bytes (`1f 8b`), never by a file name; concatenated gzip
//!   members are read as one stream. Positions are counted in the decompressed stream.
//! - A line whose first non-blank byte is `{` starts a JSON value; the value may span lines (a
//!   pretty-printed file), several values may follow each other (NDJSON, concatenated
//!   pretty-printed objects). A JSON object is one record.
//! - A top-level JSON array is streamed: each element is one record. So is the array of
//!   CloudTrail's `{"Records": [...]}` (when `Records` is the object's first key). Elements that
//!   are not objects are still framed; the pipeline fails them with a reason.
//! - A line starting with `[` is an array only when the next non-blank byte can start an
//!   element (`{`, `[`, `"`, `]`, or the line ends); `[INFO] …` or `[2024-05-01 …] …` are raw
//!   lines.
//! - Any other non-blank line is one raw text record ([`RecordKind::Line`]). Blank lines are
//!   skipped; CRLF line ends are handled; a UTF-8 byte-order mark at the start is skipped.
//! - A JSON value that is not well formed (a truncated line, a missing comma) becomes a
//!   [`FramingError`] with its position and reason, and framing resumes: at the line where the
//!   next record visibly starts (pretty printers indent everything inside a value except its
//!   last bracket, so a line starting at column 0 inside a value, or a token out of place at
//!   the start of a line, begins the next record), otherwise at the line after the fault. The
//!   rest still flows. (A file printed with no indentation at all, e.g. `indent=0`, therefore
//!   frames only when each nested value opens on its key's line.)
//! - A record that is not valid UTF-8 becomes a [`FramingError`]; the rest still flows.
//! - A record longer than the framing limit ([`DEFAULT_MAX_RECORD_BYTES`]) is skipped without
//!   being held in memory and reported as a [`FramingError`].
//! - A read error (a truncated or corrupt gzip stream) ends framing with one last
//!   [`FramingError`] after every record that came before it.
//!
//! # Why a byte-level scanner
//! Record boundaries are found by tracking strings, escapes and bracket depth byte by byte
//! (with `memchr` to jump through strings and lines), checking the JSON structure but not the
//! scalars. An object alone on its line, as NDJSON has them, is checked against the same
//! grammar in one pass over the line (`object_end`), and anything else is left to the
//! scanner. Each record's text is parsed once, by the pipeline. Memory holds one record (at most
//! the limit) plus a 64 KiB read buffer, whatever the size of the input: a 1 GB object or a
//! CloudTrail file with one huge `Records` array is framed in flat memory.
//!
//! # Accounting
//! Every byte of the input is in a record's text, in a [`FramingError`]'s span, or is
//! whitespace and container syntax between records (`[`, `,`, `]`, `{"Records":`, `}`); the
//! property tests below check it on arbitrary bytes.

use std::fmt;
use std::io::{self, Read};

use flate2::read::MultiGzDecoder;

use crate::pipeline::Record;
use crate::shell::{Origin, RecordKind};

/// Records longer than this are skipped (and reported), so memory stays bounded. Far above
/// Firehose's 1,000 KiB record limit and the Lambda's 6 MB payload.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
/// Characters of a failed record kept in [`FramingError::excerpt`].
pub const EXCERPT_CHARS: usize = 200;
const READ_CHUNK: usize = 64 * 1024;
/// How far past a `[` we look for the first element before deciding it is an array anyway.
const ARRAY_LOOKAHEAD: u64 = 4096;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// One record, as framing found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedRecord {
    /// The record's text, unchanged (a raw line without its `\r\n`/`\n`).
    pub text: String,
    pub kind: RecordKind,
    /// 1-based line where the record starts.
    pub line: u64,
    /// Byte offset of the record's first byte in the (decompressed) stream.
    pub offset: u64,
    /// 0-based number of this item among everything the framer yielded (records and errors),
    /// so positions reported in logs are contiguous.
    pub index: u64,
}

impl FramedRecord {
    /// The record as the pipeline takes it, from `container` (`s3://bucket/key#version`, a
    /// file path, a Firehose record id).
    ///
    /// The position in the [`Origin`] (which feeds the deterministic `eventid`) is the byte
    /// [`offset`](Self::offset): unlike the line, it is distinct for every record even when a
    /// whole CloudTrail file or array sits on one line; unlike the index, it does not depend on
    /// how earlier records were framed, only on the bytes.
    pub fn record<'a>(&'a self, container: &'a str) -> Record<'a> {
        Record {
            text: &self.text,
            kind: self.kind,
            origin: Origin {
                container,
                position: self.offset,
            },
        }
    }
}

/// A span of the input that could not be framed into a record, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError {
    /// 1-based line where the span starts.
    pub line: u64,
    /// Byte offset where the span starts (in the decompressed stream).
    pub offset: u64,
    /// Length of the span in bytes (0 for a fault at one point, like an unclosed array at the
    /// end of the input).
    pub len: u64,
    /// 0-based item number, shared with [`FramedRecord::index`].
    pub index: u64,
    /// What went wrong, in words a user can act on.
    pub reason: String,
    /// The first [`EXCERPT_CHARS`] characters of the span (invalid UTF-8 replaced).
    pub excerpt: String,
    /// The span's bytes, so the error location can keep the record for a replay. Empty when
    /// the span was longer than the framing limit (it was not held in memory).
    pub raw: Vec<u8>,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} (byte {}): {}",
            self.line, self.offset, self.reason
        )?;
        if !self.excerpt.is_empty() {
            let cut = (self.excerpt.len() as u64) < self.len;
            write!(
                f,
                "; the record was {:?}{}",
                self.excerpt,
                if cut { "…" } else { "" }
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for FramingError {}

/// Frames a stream: gzip or plain (by magic bytes), read in chunks as records are taken.
///
/// A read error while looking for the magic bytes is reported by the first item.
pub fn frame_reader<'a, R: Read + Send + 'a>(reader: R) -> Framer<'a> {
    let mut reader = reader;
    let mut prefix = [0u8; 2];
    let mut have = 0;
    let mut failure = None;
    while have < prefix.len() {
        match reader.read(&mut prefix[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let gzip = have == 2 && prefix == GZIP_MAGIC;
    let head = io::Cursor::new(prefix[..have].to_vec()).chain(reader);
    let input: Box<dyn Read + Send + 'a> = if gzip {
        Box::new(MultiGzDecoder::new(head))
    } else {
        Box::new(head)
    };
    let mut framer = Framer::new(input, gzip);
    framer.failure = failure;
    framer
}

/// Frames data already in memory (a Firehose record's data): same rules as [`frame_reader`].
pub fn frame_bytes(data: &[u8]) -> Framer<'_> {
    frame_reader(data)
}

/// The next item of a [`Framer`].
pub type Framed = Result<FramedRecord, FramingError>;

/// An iterator over the records (and framing errors) of one stream. See the module docs.
pub struct Framer<'a> {
    input: Box<dyn Read + Send + 'a>,
    gzip: bool,
    max_record: u64,
    /// A read error not yet reported.
    failure: Option<io::Error>,
    eof: bool,
    done: bool,

    /// Bytes from absolute offset `base` on; everything before `committed` is dropped freely.
    buf: Vec<u8>,
    base: u64,
    /// Scan position (absolute).
    pos: u64,
    committed: u64,
    /// Line number at `committed`.
    committed_line: u64,
    next_index: u64,

    mode: Mode,
    /// Where the current line began, while between records at the top level.
    line_start: u64,
    /// A top-level JSON value ended on this line (text after it on the same line is an error).
    after_value: bool,
    started: bool,

    /// The record (or error span) in progress.
    in_record: bool,
    rec_start: u64,
    rec_line: u64,
    /// Set when the record in progress outgrew the limit: its excerpt, kept instead of bytes.
    oversize: Option<String>,

    json: JsonState,
    /// Whether an object alone on its line is framed in one pass ([`object_end`]); off only in
    /// tests, to compare with the scanner.
    fast_lines: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// Between records at the top level.
    Top,
    /// In a raw text line.
    Line,
    /// In a JSON value (a record, or an array/`Records` wrapper whose elements are records).
    Json,
    /// In a span that is an error up to the end of its line.
    Junk(String),
}

/// The JSON scanner's state, kept between reads.
#[derive(Debug, Default)]
struct JsonState {
    /// Open containers: `{` or `[`.
    stack: Vec<u8>,
    expect: Expect,
    lex: Lex,
    /// 0: the top-level value is the record. Otherwise values at this stack depth are records
    /// (1 for a top-level array, 2 for `{"Records": [...]}`).
    stream_depth: usize,
    /// Line of the array (or `Records` object) whose elements are streamed.
    container_line: u64,
    records_key: RecordsKey,
    key_start: u64,
    /// Text after the `Records` array inside its object: reported as an error span.
    wrapper_extra: bool,
    /// The last byte consumed was a newline (so the next one is at column 0).
    at_line_start: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Expect {
    #[default]
    Value,
    ValueOrClose,
    Key,
    KeyOrClose,
    Colon,
    CommaOrClose,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Lex {
    #[default]
    Between,
    String {
        escaped: bool,
    },
    Scalar,
}

/// Progress towards recognising `{"Records": [` as CloudTrail's wrapper.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum RecordsKey {
    #[default]
    No,
    FirstKey,
    SawKey,
    Colon,
}

/// What one step of scanning produced.
enum Step {
    Item(Framed),
    More,
    End,
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0c)
}

fn is_scalar_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// Where the JSON object at the start of `line` ends (just past its `}`), if the scanner
/// ([`Framer::json`]) would frame it, token by token, as one whole record ending there: the
/// same grammar (strings with their escapes, scalars as runs of [`is_scalar_byte`], keys,
/// colons, commas, matching brackets, blanks between tokens), all on this line. Anything else
/// (an object that goes on past the line, a fault, more than 64 levels, CloudTrail's
/// `{"Records": [` wrapper) is `None`, and left to the scanner.
fn object_end(line: &[u8]) -> Option<usize> {
    let mut at = 0;
    // One bit per open container, innermost lowest: set for an object, clear for an array.
    let (mut objects, mut depth) = (0u64, 0u32);
    let mut expect = Expect::Value;
    loop {
        let b = *line.get(at)?;
        if is_blank(b) {
            at += 1;
            continue;
        }
        let in_object = objects & 1 == 1;
        let mut value_done = false;
        match expect {
            Expect::Value | Expect::ValueOrClose => match b {
                b'{' | b'[' => {
                    if depth == 64 {
                        return None;
                    }
                    objects = objects << 1 | u64::from(b == b'{');
                    depth += 1;
                    expect = if b == b'{' {
                        Expect::KeyOrClose
                    } else {
                        Expect::ValueOrClose
                    };
                    at += 1;
                }
                b'"' => {
                    at = string_end(line, at + 1)?;
                    value_done = true;
                }
                b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                    at += 1;
                    while line.get(at).is_some_and(|&b| is_scalar_byte(b)) {
                        at += 1;
                    }
                    value_done = true;
                }
                b']' if expect == Expect::ValueOrClose => {
                    (objects, depth, at) = (objects >> 1, depth - 1, at + 1);
                    value_done = true;
                }
                _ => return None,
            },
            Expect::Key | Expect::KeyOrClose => match b {
                b'"' => {
                    let end = string_end(line, at + 1)?;
                    if depth == 1
                        && expect == Expect::KeyOrClose
                        && &line[at..end] == b"\"Records\""
                    {
                        return None;
                    }
                    (at, expect) = (end, Expect::Colon);
                }
                b'}' if expect == Expect::KeyOrClose => {
                    (objects, depth, at) = (objects >> 1, depth - 1, at + 1);
                    value_done = true;
                }
                _ => return None,
            },
            Expect::Colon if b == b':' => (at, expect) = (at + 1, Expect::Value),
            Expect::Colon => return None,
            Expect::CommaOrClose => match b {
                b',' => {
                    at += 1;
                    expect = if in_object {
                        Expect::Key
                    } else {
                        Expect::Value
                    };
                }
                b'}' if in_object => {
                    (objects, depth, at) = (objects >> 1, depth - 1, at + 1);
                    value_done = true;
                }
                b']' if !in_object => {
                    (objects, depth, at) = (objects >> 1, depth - 1, at + 1);
                    value_done = true;
                }
                _ => return None,
            },
        }
        if value_done {
            if depth == 0 {
                return Some(at);
            }
            expect = Expect::CommaOrClose;
        }
    }
}

/// Just past the closing quote of the string whose text starts at `from`, if on this line.
fn string_end(line: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        at += crate::bytewise::find_quote_or_backslash(&line[at..])?;
        if line[at] == b'"' {
            return Some(at + 1);
        }
        // An escape: the next byte is taken whatever it is.
        at += 2;
        if at > line.len() {
            return None;
        }
    }
}

fn describe(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

fn container_name(open: Option<&u8>) -> &'static str {
    match open {
        Some(b'[') => "array",
        _ => "object",
    }
}

impl<'a> Framer<'a> {
    fn new(input: Box<dyn Read + Send + 'a>, gzip: bool) -> Self {
        Framer {
            input,
            gzip,
            max_record: DEFAULT_MAX_RECORD_BYTES as u64,
            failure: None,
            eof: false,
            done: false,
            buf: Vec::with_capacity(READ_CHUNK),
            base: 0,
            pos: 0,
            committed: 0,
            committed_line: 1,
            next_index: 0,
            mode: Mode::Top,
            line_start: 0,
            after_value: false,
            started: false,
            in_record: false,
            rec_start: 0,
            rec_line: 1,
            oversize: None,
            json: JsonState::default(),
            fast_lines: true,
        }
    }

    /// Sets the longest record kept in memory; longer ones are skipped and reported.
    pub fn max_record_bytes(mut self, limit: usize) -> Self {
        self.max_record = limit.max(1) as u64;
        self
    }

    /// Frames every record with the token-by-token scanner, for tests that compare it with
    /// the one-pass framing of objects alone on their line.
    #[cfg(test)]
    fn scanner_only(mut self) -> Self {
        self.fast_lines = false;
        self
    }

    /// Whether the input was gzip.
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Decompressed bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.end()
    }

    /// The offset just past the buffered bytes.
    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    fn slice(&self, from: u64, to: u64) -> &[u8] {
        &self.buf[(from - self.base) as usize..(to - self.base) as usize]
    }

    /// The byte at absolute offset `at`, reading more input when needed; `Ok(None)` at the end.
    fn byte(&mut self, at: u64) -> io::Result<Option<u8>> {
        while at >= self.end() {
            if !self.fill()? {
                return Ok(None);
            }
        }
        Ok(Some(self.buf[(at - self.base) as usize]))
    }

    fn count_lines(&self, from: u64, to: u64) -> u64 {
        memchr::memchr_iter(b'\n', self.slice(from, to)).count() as u64
    }

    /// Line number of an offset at or after `committed`.
    fn line_of(&self, at: u64) -> u64 {
        self.committed_line + self.count_lines(self.committed, at)
    }

    fn commit(&mut self, to: u64) {
        if to > self.committed {
            self.committed_line += self.count_lines(self.committed, to);
            self.committed = to;
        }
    }

    /// Reads more input. Drops bytes no longer needed first, and switches a record that
    /// outgrew the limit to skipping, so the buffer stays bounded.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if let Some(error) = self.failure.take() {
            return Err(error);
        }
        if self.in_record {
            if self.oversize.is_none() && self.end() - self.rec_start > self.max_record {
                self.oversize = Some(excerpt(self.slice(self.rec_start, self.end())));
            }
            if self.oversize.is_some() {
                self.commit(self.pos.min(self.end()));
            }
        } else if self.mode == Mode::Top {
            self.commit(self.pos.min(self.line_start.max(self.committed)));
        } else {
            self.commit(self.pos.min(self.end()));
        }
        let drop = (self.committed - self.base) as usize;
        if drop > 0 && drop >= self.buf.len() / 2 {
            self.buf.drain(..drop);
            self.base = self.committed;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let read = loop {
            match self.input.read(&mut self.buf[len..]) {
                Ok(n) => break Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match read {
            Ok(0) => {
                self.buf.truncate(len);
                self.eof = true;
                Ok(false)
            }
            Ok(n) => {
                self.buf.truncate(len + n);
                Ok(true)
            }
            Err(e) => {
                self.buf.truncate(len);
                Err(e)
            }
        }
    }

    fn take_index(&mut self) -> u64 {
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    fn start_record(&mut self, at: u64) {
        self.commit(at);
        self.in_record = true;
        self.rec_start = at;
        self.rec_line = self.committed_line;
        self.oversize = None;
    }

    /// Ends the record in progress at `end` (its text) and commits up to `resume`.
    fn finish_record(&mut self, end: u64, kind: RecordKind, resume: u64) -> Framed {
        self.in_record = false;
        let index = self.take_index();
        let (line, offset) = (self.rec_line, self.rec_start);
        if self.oversize.is_none() && end - offset > self.max_record {
            self.oversize = Some(excerpt(self.slice(offset, end)));
        }
        let result = if let Some(excerpt) = self.oversize.take() {
            Err(FramingError {
                line,
                offset,
                len: end - offset,
                index,
                reason: format!(
                    "record is {} bytes, more than the framing limit of {} bytes; it was skipped",
                    end - offset,
                    self.max_record
                ),
                excerpt,
                raw: Vec::new(),
            })
        } else {
            let bytes = self.slice(offset, end);
            match std::str::from_utf8(bytes) {
                Ok(text) => Ok(FramedRecord {
                    text: text.to_string(),
                    kind,
                    line,
                    offset,
                    index,
                }),
                Err(error) => Err(FramingError {
                    line,
                    offset,
                    len: end - offset,
                    index,
                    reason: format!(
                        "invalid UTF-8 at byte {} of the record; records must be UTF-8 text",
                        error.valid_up_to()
                    ),
                    excerpt: excerpt(bytes),
                    raw: bytes.to_vec(),
                }),
            }
        };
        self.commit(resume);
        result
    }

    /// Ends the span in progress as an error.
    fn finish_error(&mut self, end: u64, reason: String, resume: u64) -> Framed {
        self.in_record = false;
        let index = self.take_index();
        let (line, offset) = (self.rec_line, self.rec_start);
        let (excerpt_text, raw) = match self.oversize.take() {
            Some(excerpt) => (excerpt, Vec::new()),
            None => {
                let bytes = self.slice(offset, end);
                (excerpt(bytes), bytes.to_vec())
            }
        };
        self.commit(resume);
        Err(FramingError {
            line,
            offset,
            len: end - offset,
            index,
            reason,
            excerpt: excerpt_text,
            raw,
        })
    }

    /// Reports a read error (a corrupt gzip stream): whatever was in progress is lost with it.
    fn read_failed(&mut self, error: io::Error) -> Framed {
        self.done = true;
        if !self.in_record {
            self.start_record(self.pos.min(self.end()).max(self.committed));
        }
        let end = self.end();
        let reason = if self.gzip {
            format!(
                "the gzip data is truncated or corrupt ({error}); nothing after this point could be read"
            )
        } else {
            format!("could not read the input ({error}); nothing after this point could be read")
        };
        self.finish_error(end, reason, end)
    }

    fn step(&mut self) -> io::Result<Step> {
        match self.mode.clone() {
            Mode::Top => self.top(),
            Mode::Line => self.line(None),
            Mode::Junk(reason) => self.line(Some(reason)),
            Mode::Json => self.json(),
        }
    }

    /// Between records: skips blank lines and decides what the next record is.
    fn top(&mut self) -> io::Result<Step> {
        if !self.started {
            self.started = true;
            if self.byte(0)? == Some(0xef)
                && self.byte(1)? == Some(0xbb)
                && self.byte(2)? == Some(0xbf)
            {
                self.pos = 3;
                self.line_start = 3;
            }
        }
        loop {
            let Some(b) = self.byte(self.pos)? else {
                return Ok(Step::End);
            };
            match b {
                b'\n' => {
                    self.pos += 1;
                    self.line_start = self.pos;
                    self.after_value = false;
                }
                b' ' | b'\t' | b'\r' | 0x0c => self.pos += 1,
                b'{' => {
                    if let Some(end) = self.object_on_its_line() {
                        // What `json` would find, token by token, for this line's object.
                        self.start_record(self.pos);
                        self.pos = end;
                        self.after_value = true;
                        return Ok(Step::Item(self.finish_record(end, RecordKind::Json, end)));
                    }
                    self.begin_json(false);
                    return Ok(Step::More);
                }
                b'[' if self.array_follows()? => {
                    self.begin_json(true);
                    return Ok(Step::More);
                }
                _ if self.after_value => {
                    self.start_record(self.pos);
                    self.mode = Mode::Junk(
                        "unexpected text after the JSON value that ends on this line".to_string(),
                    );
                    return Ok(Step::More);
                }
                _ => {
                    self.start_record(self.line_start);
                    self.mode = Mode::Line;
                    return Ok(Step::More);
                }
            }
        }
    }

    /// Whether the `[` at `pos` opens a JSON array rather than a raw line like `[INFO] …` or
    /// dmesg's `[    0.000000] Linux …`. An array whose first element is a number or literal
    /// must be valid JSON to the end of its line.
    fn array_follows(&mut self) -> io::Result<bool> {
        let mut at = self.pos + 1;
        let first = loop {
            match self.byte(at)? {
                None | Some(b'\n') => return Ok(true),
                Some(b) if is_blank(b) && at - self.pos < ARRAY_LOOKAHEAD => at += 1,
                Some(b) => break b,
            }
        };
        match first {
            b'{' | b'[' | b'"' | b']' => Ok(true),
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                let mut end = at;
                loop {
                    match self.byte(end)? {
                        None | Some(b'\n') => break,
                        Some(_) if end - self.pos >= ARRAY_LOOKAHEAD => return Ok(false),
                        Some(_) => end += 1,
                    }
                }
                let line = self.slice(self.pos, end);
                Ok(serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok())
            }
            _ => Ok(false),
        }
    }

    /// Where the JSON object starting at `pos` ends, when the whole of it is on this line (in
    /// the buffer) and [`object_end`] finds it well formed: NDJSON, the usual case, framed in
    /// one tight pass over the line instead of one scanner step per token.
    fn object_on_its_line(&self) -> Option<u64> {
        if !self.fast_lines {
            return None;
        }
        let rest = &self.buf[(self.pos - self.base) as usize..];
        let line = match memchr::memchr(b'\n', rest) {
            Some(newline) => &rest[..newline],
            None if self.eof => rest,
            None => return None,
        };
        object_end(line).map(|end| self.pos + end as u64)
    }

    fn begin_json(&mut self, array: bool) {
        let at = self.pos;
        self.mode = Mode::Json;
        self.json = JsonState::default();
        if array {
            self.commit(at);
            self.json.stream_depth = 1;
            self.json.container_line = self.committed_line;
        } else {
            self.start_record(at);
        }
    }

    /// A raw line (or an error span) up to the end of its line.
    fn line(&mut self, error: Option<String>) -> io::Result<Step> {
        loop {
            let from = (self.pos - self.base) as usize;
            if let Some(found) = memchr::memchr(b'\n', &self.buf[from..]) {
                let newline = self.pos + found as u64;
                self.pos = newline + 1;
                return Ok(Step::Item(self.end_line(newline, self.pos, error)));
            }
            self.pos = self.end();
            if !self.fill()? {
                let end = self.end();
                return Ok(Step::Item(self.end_line(end, end, error)));
            }
        }
    }

    fn end_line(&mut self, end: u64, resume: u64, error: Option<String>) -> Framed {
        self.mode = Mode::Top;
        self.line_start = resume;
        self.after_value = false;
        match error {
            Some(reason) => self.finish_error(resume, reason, resume),
            None => {
                let mut text_end = end;
                if text_end > self.rec_start.max(self.base)
                    && self.buf[(text_end - 1 - self.base) as usize] == b'\r'
                {
                    text_end -= 1;
                }
                self.finish_record(text_end, RecordKind::Line, resume)
            }
        }
    }

    /// The JSON scanner: finds where values (and streamed elements) end.
    fn json(&mut self) -> io::Result<Step> {
        loop {
            if !matches!(self.mode, Mode::Json) {
                return Ok(Step::More);
            }
            match self.json.lex {
                Lex::String { escaped } => {
                    if let Some(step) = self.scan_string(escaped)? {
                        return Ok(step);
                    }
                    continue;
                }
                Lex::Scalar => {
                    match self.byte(self.pos)? {
                        Some(b) if is_scalar_byte(b) => {
                            self.pos += 1;
                            continue;
                        }
                        Some(_) => {}
                        None => return Ok(self.json_eof()),
                    }
                    self.json.lex = Lex::Between;
                    if let Some(item) = self.value_done() {
                        return Ok(Step::Item(item));
                    }
                    continue;
                }
                Lex::Between => {}
            }
            let Some(b) = self.byte(self.pos)? else {
                return Ok(self.json_eof());
            };
            if is_blank(b) {
                self.json.at_line_start = b == b'\n';
                self.pos += 1;
                continue;
            }
            if std::mem::take(&mut self.json.at_line_start) && !self.column_zero_allowed(b) {
                // Pretty printers indent everything inside a value but its last bracket: a
                // line starting at column 0 inside a value is a new record (or raw line), so
                // the one in progress was cut short.
                return Ok(self.violation(b, "an indented line"));
            }
            let result = match self.json.expect {
                Expect::Value | Expect::ValueOrClose => self.value_start(b),
                Expect::Key | Expect::KeyOrClose => self.key_start(b),
                Expect::Colon => {
                    if b == b':' {
                        self.pos += 1;
                        self.json.expect = Expect::Value;
                        if self.json.records_key == RecordsKey::SawKey {
                            self.json.records_key = RecordsKey::Colon;
                        }
                        Ok(None)
                    } else {
                        Err("':' after a key")
                    }
                }
                Expect::CommaOrClose => self.after_value_token(b),
            };
            match result {
                Ok(None) => {}
                Ok(Some(item)) => return Ok(Step::Item(item)),
                Err(expected) => return Ok(self.violation(b, expected)),
            }
        }
    }

    /// Whether `b`, first on its line, fits a value in progress: the value's last closing
    /// bracket, or (in a streamed array) an element, a comma or the array's end.
    fn column_zero_allowed(&self, b: u8) -> bool {
        let json = &self.json;
        let depth = json.stack.len();
        (matches!(b, b'}' | b']') && depth == 1)
            || (json.stream_depth > 0 && depth == json.stream_depth && !self.in_record)
    }

    fn value_start(&mut self, b: u8) -> Result<Option<Framed>, &'static str> {
        let json = &self.json;
        let at_stream_depth = json.stream_depth > 0 && json.stack.len() == json.stream_depth;
        let records = std::mem::take(&mut self.json.records_key) == RecordsKey::Colon;
        let starts_element = at_stream_depth && !self.in_record && !self.json.wrapper_extra;
        match b {
            b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {}
            b']' if self.json.expect == Expect::ValueOrClose => return Ok(self.close()),
            _ if self.json.expect == Expect::ValueOrClose => return Err("a value or ']'"),
            _ => return Err("a value"),
        }
        if starts_element {
            self.start_record(self.pos);
        }
        self.pos += 1;
        match b {
            b'{' => {
                self.json.stack.push(b'{');
                self.json.expect = Expect::KeyOrClose;
                if self.json.stack.len() == 1 && self.json.stream_depth == 0 {
                    self.json.records_key = RecordsKey::FirstKey;
                }
            }
            b'[' => {
                self.json.stack.push(b'[');
                self.json.expect = Expect::ValueOrClose;
                if records && self.json.stack.len() == 2 && self.json.stream_depth == 0 {
                    // `{"Records": [` : the wrapper is not a record, its elements are.
                    self.json.stream_depth = 2;
                    self.json.container_line = self.rec_line;
                    self.in_record = false;
                }
            }
            b'"' => self.json.lex = Lex::String { escaped: false },
            _ => self.json.lex = Lex::Scalar,
        }
        Ok(None)
    }

    fn key_start(&mut self, b: u8) -> Result<Option<Framed>, &'static str> {
        match b {
            b'"' => {
                self.json.key_start = self.pos;
                self.pos += 1;
                self.json.lex = Lex::String { escaped: false };
                Ok(None)
            }
            b'}' if self.json.expect == Expect::KeyOrClose => Ok(self.close()),
            _ if self.json.expect == Expect::KeyOrClose => Err("a key string or '}'"),
            _ => Err("a key string"),
        }
    }

    fn after_value_token(&mut self, b: u8) -> Result<Option<Framed>, &'static str> {
        let top = self.json.stack.last().copied();
        match (b, top) {
            (b',', Some(open)) => {
                if self.json.stream_depth == 2 && self.json.stack.len() == 1 && !self.in_record {
                    // More keys after the `Records` array: reported, not silently dropped.
                    self.start_record(self.pos);
                    self.json.wrapper_extra = true;
                }
                self.pos += 1;
                self.json.expect = if open == b'{' {
                    Expect::Key
                } else {
                    Expect::Value
                };
                Ok(None)
            }
            (b']', Some(b'[')) | (b'}', Some(b'{')) => Ok(self.close()),
            (_, Some(b'{')) => Err("',' or '}'"),
            _ => Err("',' or ']'"),
        }
    }

    fn close(&mut self) -> Option<Framed> {
        self.json.stack.pop();
        self.pos += 1;
        self.value_done()
    }

    /// Scans a string to its closing quote. Returns a step when the scan ended the record.
    fn scan_string(&mut self, escaped: bool) -> io::Result<Option<Step>> {
        let mut escaped = escaped;
        loop {
            if self.pos >= self.end() && !self.fill()? {
                return Ok(Some(self.json_eof()));
            }
            let from = (self.pos - self.base) as usize;
            if escaped {
                if self.buf[from] == b'\n' {
                    return Ok(Some(self.newline_in_string()));
                }
                escaped = false;
                self.pos += 1;
                continue;
            }
            match memchr::memchr3(b'"', b'\\', b'\n', &self.buf[from..]) {
                None => {
                    self.pos = self.end();
                    self.json.lex = Lex::String { escaped: false };
                }
                Some(found) => {
                    self.pos += found as u64;
                    match self.buf[from + found] {
                        b'\\' => {
                            escaped = true;
                            self.pos += 1;
                            self.json.lex = Lex::String { escaped: true };
                        }
                        b'\n' => return Ok(Some(self.newline_in_string())),
                        _ => {
                            self.pos += 1;
                            self.json.lex = Lex::Between;
                            return Ok(self.string_done().map(Step::Item));
                        }
                    }
                }
            }
        }
    }

    fn string_done(&mut self) -> Option<Framed> {
        if matches!(self.json.expect, Expect::Key | Expect::KeyOrClose) {
            self.json.expect = Expect::Colon;
            if self.json.records_key == RecordsKey::FirstKey {
                let is_records = self.json.key_start >= self.base
                    && self.slice(self.json.key_start, self.pos) == b"\"Records\"";
                self.json.records_key = if is_records {
                    RecordsKey::SawKey
                } else {
                    RecordsKey::No
                };
            }
            return None;
        }
        self.value_done()
    }

    /// A value (scalar, string or container) just ended at `pos`.
    fn value_done(&mut self) -> Option<Framed> {
        if self.json.stack.is_empty() {
            let was_record = self.in_record;
            let extra = self.json.wrapper_extra;
            self.mode = Mode::Top;
            self.after_value = true;
            self.json = JsonState::default();
            if !was_record {
                self.commit(self.pos);
                return None;
            }
            let end = self.pos;
            return Some(if extra {
                self.finish_error(
                    end,
                    "the CloudTrail-style {\"Records\": [...]} object has keys after the Records \
                     array; they were not ingested"
                        .to_string(),
                    end,
                )
            } else {
                self.finish_record(end, RecordKind::Json, end)
            });
        }
        self.json.expect = Expect::CommaOrClose;
        let json = &self.json;
        if json.stream_depth > 0
            && json.stack.len() == json.stream_depth
            && self.in_record
            && !json.wrapper_extra
        {
            let end = self.pos;
            return Some(self.finish_record(end, RecordKind::Json, end));
        }
        None
    }

    fn reset_to_top(&mut self, at: u64) {
        self.json = JsonState::default();
        self.mode = Mode::Top;
        self.pos = at;
        self.line_start = at;
        self.after_value = false;
    }

    /// A raw line break inside a string: JSON forbids it, so the record was cut at that line.
    fn newline_in_string(&mut self) -> Step {
        let newline = self.pos;
        if !self.in_record {
            self.start_record(newline);
        }
        let reason = format!(
            "truncated JSON: line {} ends inside a string",
            self.line_of(newline.max(self.committed))
        );
        self.reset_to_top(newline + 1);
        Step::Item(self.finish_error(newline + 1, reason, newline + 1))
    }

    /// The byte at `pos` breaks the JSON structure.
    fn violation(&mut self, b: u8, expected: &str) -> Step {
        let at = self.pos;
        if !self.in_record {
            self.start_record(at);
        }
        let fault_line = self.line_of(at);
        // Is the fault the first non-blank byte of a later line? Then that line likely starts
        // the next record, and the one in progress ends before it.
        let mut line_start = None;
        let mut back = at;
        while back > self.rec_start.max(self.base).max(self.committed) {
            match self.buf[(back - 1 - self.base) as usize] {
                b'\n' => {
                    line_start = Some(back);
                    break;
                }
                b' ' | b'\t' | b'\r' => back -= 1,
                _ => break,
            }
        }
        let what = container_name(self.json.stack.get(self.json.stream_depth));
        match line_start {
            Some(start) => {
                let reason = format!(
                    "truncated JSON: the {what} that starts on line {} is not closed before line \
                     {fault_line}, which begins with {}",
                    self.rec_line,
                    describe(b)
                );
                self.reset_to_top(start);
                Step::Item(self.finish_error(start, reason, start))
            }
            None => {
                let reason = format!(
                    "invalid JSON: expected {expected} but found {} on line {fault_line}",
                    describe(b)
                );
                self.json = JsonState::default();
                self.mode = Mode::Junk(reason);
                Step::More
            }
        }
    }

    fn json_eof(&mut self) -> Step {
        let end = self.end();
        self.pos = end;
        let in_string = matches!(self.json.lex, Lex::String { .. });
        let reason = if self.in_record {
            let what = container_name(self.json.stack.get(self.json.stream_depth));
            if in_string {
                format!(
                    "truncated JSON: the input ended inside a string of the {what} that starts on line {}",
                    self.rec_line
                )
            } else {
                format!(
                    "truncated JSON: the input ended inside the {what} that starts on line {}",
                    self.rec_line
                )
            }
        } else {
            self.start_record(end);
            format!(
                "truncated JSON: the input ended before the array that starts on line {} was closed",
                self.json.container_line
            )
        };
        self.reset_to_top(end);
        Step::Item(self.finish_error(end, reason, end))
    }
}

fn excerpt(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(EXCERPT_CHARS * 4)];
    String::from_utf8_lossy(head)
        .chars()
        .take(EXCERPT_CHARS)
        .collect()
}

impl Iterator for Framer<'_> {
    type Item = Framed;

    fn next(&mut self) -> Option<Framed> {
        while !self.done {
            match self.step() {
                Ok(Step::Item(item)) => return Some(item),
                Ok(Step::More) => {}
                Ok(Step::End) => self.done = true,
                Err(error) => return Some(self.read_failed(error)),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;
    use serde_json::Value;
    use std::io::Write;

    fn frame(input: &[u8]) -> Vec<Framed> {
        frame_bytes(input).collect()
    }

    fn texts(items: &[Framed]) -> Vec<&str> {
        items
            .iter()
            .filter_map(|item| item.as_ref().ok())
            .map(|r| r.text.as_str())
            .collect()
    }

    fn errors(items: &[Framed]) -> Vec<&FramingError> {
        items
            .iter()
            .filter_map(|item| item.as_ref().err())
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// A reader that hands out a few bytes at a time, so records straddle every read boundary.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
        turn: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.turn % self.sizes.len()].max(1);
            self.turn += 1;
            let n = size.min(out.len()).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn ndjson_with_blank_lines_and_crlf() {
        let items = frame(b"{\"a\":1}\r\n\r\n  \n{\"b\":2}\n");
        assert_eq!(texts(&items), [r#"{"a":1}"#, r#"{"b":2}"#]);
        let lines: Vec<_> = items.iter().map(|r| r.as_ref().unwrap().line).collect();
        assert_eq!(lines, [1, 4]);
        assert_eq!(items[1].as_ref().unwrap().offset, 14);
        assert_eq!(items[1].as_ref().unwrap().index, 1);
    }

    #[test]
    fn one_object_and_concatenated_pretty_printed_objects() {
        assert_eq!(texts(&frame(b"{\"a\": 1}")), [r#"{"a": 1}"#]);
        let pretty =
            b"{\n  \"a\": {\n    \"b\": [1, 2]\n  }\n}\n{\n  \"c\": \"}\\\"{\"\n}{\"d\":0}\n";
        let items = frame(pretty);
        assert_eq!(
            texts(&items),
            [
                "{\n  \"a\": {\n    \"b\": [1, 2]\n  }\n}",
                "{\n  \"c\": \"}\\\"{\"\n}",
                "{\"d\":0}"
            ]
        );
        let lines: Vec<_> = items.iter().map(|r| r.as_ref().unwrap().line).collect();
        assert_eq!(lines, [1, 6, 8]);
    }

    #[test]
    fn array_elements_are_streamed_as_records() {
        let items = frame(b"[{\"a\":1}, {\"b\":[2,{\"c\":3}]} ,{}]");
        assert_eq!(texts(&items), [r#"{"a":1}"#, r#"{"b":[2,{"c":3}]}"#, "{}"]);
        assert_eq!(items[1].as_ref().unwrap().offset, 10);
        // One element per line at column 0, as many exporters write arrays.
        let items = frame(b"[\n{\"a\":1},\n{\"b\":2}\n]\n");
        assert_eq!(texts(&items), [r#"{"a":1}"#, r#"{"b":2}"#]);
        assert_eq!(items[1].as_ref().unwrap().line, 3);
        assert!(frame(b"[]\n[ ]").is_empty());
    }

    #[test]
    fn cloudtrail_records_wrapper_streams_its_elements() {
        let items = frame(
            b"{\"Records\": [{\"eventName\":\"ConsoleLogin\"},\n  {\"eventName\":\"GetObject\"}]}\n{\"x\":1}",
        );
        assert_eq!(
            texts(&items),
            [
                r#"{"eventName":"ConsoleLogin"}"#,
                r#"{"eventName":"GetObject"}"#,
                r#"{"x":1}"#
            ]
        );
        assert!(errors(&items).is_empty());
    }

    #[test]
    fn records_that_is_not_the_first_key_or_not_an_array_is_an_ordinary_object() {
        let text = r#"{"a":1,"Records":[{"b":2}]}"#;
        assert_eq!(texts(&frame(text.as_bytes())), [text]);
        let text = r#"{"Records":{"b":2}}"#;
        assert_eq!(texts(&frame(text.as_bytes())), [text]);
        let text = r#"{"records":[{"b":2}]}"#;
        assert_eq!(texts(&frame(text.as_bytes())), [text]);
    }

    #[test]
    fn keys_after_the_records_array_are_reported_not_dropped() {
        let items = frame(br#"{"Records":[{"a":1}],"Digest":true}"#);
        assert_eq!(texts(&items), [r#"{"a":1}"#]);
        let error = errors(&items)[0];
        assert!(error.reason.contains("keys after the Records"), "{error}");
        assert_eq!(error.raw, br#","Digest":true}"#);
    }

    #[test]
    fn elements_that_are_not_objects_are_still_framed() {
        let items = frame(br#"[1, "two", null, [3], {"four":4}]"#);
        assert_eq!(
            texts(&items),
            ["1", r#""two""#, "null", "[3]", r#"{"four":4}"#]
        );
        assert!(
            items
                .iter()
                .all(|r| r.as_ref().unwrap().kind == RecordKind::Json)
        );
    }

    #[test]
    fn raw_lines_are_line_records() {
        let input = b"<34>Oct 11 22:14:15 host su: 'su root' failed\r\n\n  indented continuation\n[INFO] started\n[2026-01-02 03:04:05] tick\nlast line without newline";
        let items = frame(input);
        assert_eq!(
            texts(&items),
            [
                "<34>Oct 11 22:14:15 host su: 'su root' failed",
                "  indented continuation",
                "[INFO] started",
                "[2026-01-02 03:04:05] tick",
                "last line without newline"
            ]
        );
        assert!(
            items
                .iter()
                .all(|r| r.as_ref().unwrap().kind == RecordKind::Line)
        );
        assert_eq!(items[1].as_ref().unwrap().line, 3);
    }

    #[test]
    fn mixed_json_and_lines() {
        let items = frame(b"plain\n{\"a\":1}\nplain again\n");
        let kinds: Vec<_> = items.iter().map(|r| r.as_ref().unwrap().kind).collect();
        assert_eq!(
            kinds,
            [RecordKind::Line, RecordKind::Json, RecordKind::Line]
        );
    }

    #[test]
    fn truncated_ndjson_lines_are_errors_and_the_rest_flows() {
        let input = b"{\"a\":1\n{\"b\":2}\n{\"c\": \"unterminated\n{\"d\":4}\n{\"e\":\n{\"f\":6}\n{\"g\":7,\n{\"h\":8}\n";
        let items = frame(input);
        assert_eq!(
            texts(&items),
            [r#"{"b":2}"#, r#"{"d":4}"#, r#"{"f":6}"#, r#"{"h":8}"#]
        );
        let errors = errors(&items);
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 3, 5, 7]);
        assert!(
            errors
                .iter()
                .all(|e| e.reason.starts_with("truncated JSON"))
        );
        assert_eq!(errors[0].raw, b"{\"a\":1\n");
        assert!(
            errors[1].reason.contains("line 3 ends inside a string"),
            "{}",
            errors[1]
        );
        let indexes: Vec<_> = items
            .iter()
            .map(|item| match item {
                Ok(r) => r.index,
                Err(e) => e.index,
            })
            .collect();
        assert_eq!(indexes, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn a_truncated_record_before_a_raw_line_keeps_the_line() {
        let items = frame(b"{\"b\":\ntext line\n{\"c\": [1,\n  2]}\n");
        assert_eq!(texts(&items), ["text line", "{\"c\": [1,\n  2]}"]);
        let error = errors(&items)[0];
        assert_eq!(error.raw, b"{\"b\":\n");
        assert_eq!(
            error.reason,
            "truncated JSON: the object that starts on line 1 is not closed before line 2, \
             which begins with 't'"
        );
    }

    #[test]
    fn invalid_json_mid_line_fails_to_the_end_of_the_line() {
        let items = frame(b"{\"a\":1 \"b\":2} tail\n{\"ok\":true}\n");
        assert_eq!(texts(&items), [r#"{"ok":true}"#]);
        let error = errors(&items)[0];
        assert_eq!(
            error.reason,
            "invalid JSON: expected ',' or '}' but found '\"' on line 1"
        );
        assert_eq!(error.raw, b"{\"a\":1 \"b\":2} tail\n");
    }

    #[test]
    fn text_after_a_value_on_the_same_line_is_an_error() {
        let items = frame(b"{\"a\":1}, junk\n{\"b\":2} {\"c\":3}\n");
        assert_eq!(texts(&items), [r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#]);
        let error = errors(&items)[0];
        assert!(error.reason.contains("after the JSON value"), "{error}");
        assert_eq!(error.raw, b", junk\n");
    }

    #[test]
    fn invalid_utf8_fails_that_record_only() {
        let items = frame(b"{\"a\":\"\xff\"}\nok line\n\xc3\x28 bad line\n");
        assert_eq!(texts(&items), ["ok line"]);
        let errors = errors(&items);
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0].reason.contains("invalid UTF-8 at byte 6"),
            "{}",
            errors[0]
        );
        assert_eq!(errors[1].line, 3);
        assert_eq!(errors[1].excerpt, "\u{fffd}( bad line");
    }

    #[test]
    fn unclosed_array_at_the_end_is_reported_after_its_records() {
        let items = frame(b"[{\"a\":1},{\"b\":2},");
        assert_eq!(texts(&items), [r#"{"a":1}"#, r#"{"b":2}"#]);
        let error = errors(&items)[0];
        assert_eq!(error.len, 0);
        assert!(
            error
                .reason
                .contains("array that starts on line 1 was closed"),
            "{error}"
        );
        let items = frame(b"[{\"a\":1},{\"b\":");
        assert_eq!(errors(&items)[0].raw, b"{\"b\":");
    }

    #[test]
    fn gzip_is_detected_by_magic_bytes_and_members_are_concatenated() {
        let plain = b"{\"a\":1}\nline\n";
        let mut data = gzip(plain);
        data.extend(gzip(b"[{\"b\":2}]"));
        let framer = frame_bytes(&data);
        assert!(framer.is_gzip());
        let items: Vec<_> = framer.collect();
        assert_eq!(texts(&items), [r#"{"a":1}"#, "line", r#"{"b":2}"#]);
        assert_eq!(items[2].as_ref().unwrap().offset, plain.len() as u64 + 1);
        assert!(!frame_bytes(plain).is_gzip());
    }

    #[test]
    fn truncated_gzip_yields_the_records_before_it_then_an_error() {
        let plain: String = (0..2000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        let data = gzip(plain.as_bytes());
        let items = frame(&data[..data.len() / 2]);
        let (records, errors) = (texts(&items), errors(&items));
        assert!(records.len() > 100, "{}", records.len());
        assert_eq!(errors.len(), 1);
        let error = errors[0];
        assert!(matches!(items.last(), Some(Err(_))));
        assert!(
            error.reason.contains("gzip data is truncated or corrupt"),
            "{error}"
        );
        let last = items[items.len() - 2].as_ref().unwrap();
        assert_eq!(error.offset, last.offset + last.text.len() as u64 + 1);
        assert_eq!(error.line, last.line + 1);
    }

    #[test]
    fn oversize_records_are_skipped_and_reported() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(5000));
        let input = format!(
            "{{\"small\":1}}\n{big}\n{}\n{{\"after\":2}}\n",
            "y".repeat(3000)
        );
        let items: Vec<_> = frame_bytes(input.as_bytes())
            .max_record_bytes(1000)
            .collect();
        assert_eq!(texts(&items), [r#"{"small":1}"#, r#"{"after":2}"#]);
        let errors = errors(&items);
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0]
                .reason
                .contains("more than the framing limit of 1000 bytes")
        );
        assert_eq!(errors[0].len, big.len() as u64);
        assert_eq!(errors[0].line, 2);
        assert!(errors[0].raw.is_empty());
        assert!(errors[0].excerpt.starts_with("{\"a\":\"xxx"));
        assert_eq!(errors[1].line, 3);
    }

    #[test]
    fn memory_stays_flat_while_streaming_a_large_array() {
        // About 12 MB in one line: a CloudTrail-style file that would not fit if held whole.
        let element =
            r#"{"eventName":"GetObject","requestParameters":{"bucketName":"b","key":"k"}}"#;
        let mut input = b"{\"Records\":[".to_vec();
        for i in 0..150_000 {
            if i > 0 {
                input.push(b',');
            }
            input.extend_from_slice(element.as_bytes());
        }
        input.extend_from_slice(b"]}");
        let mut framer = frame_bytes(&input);
        let mut count = 0;
        let mut peak = 0;
        while let Some(item) = framer.next() {
            assert_eq!(item.unwrap().text, element);
            count += 1;
            peak = peak.max(framer.buf.capacity());
        }
        assert_eq!(count, 150_000);
        assert!(peak <= 4 * READ_CHUNK, "buffer grew to {peak} bytes");
    }

    #[test]
    fn bom_at_the_start_is_skipped() {
        assert_eq!(texts(&frame(b"\xef\xbb\xbf{\"a\":1}\n")), [r#"{"a":1}"#]);
        assert_eq!(texts(&frame(b"\xef\xbb\xbfline\n")), ["line"]);
    }

    #[test]
    fn error_display_names_line_byte_reason_and_record() {
        let items = frame(b"{\"a\":1}\n\n{\"broken\": tru\n");
        let error = errors(&items)[0];
        assert_eq!(
            error.to_string(),
            "line 3 (byte 9): truncated JSON: the input ended inside the object that starts on line 3; the record was \"{\\\"broken\\\": tru\\n\""
        );
    }

    #[test]
    fn record_position_is_the_byte_offset() {
        let items = frame(b"[{\"a\":1},{\"a\":1}]");
        let (a, b) = (items[0].as_ref().unwrap(), items[1].as_ref().unwrap());
        assert_eq!(a.record("c").origin.position, 1);
        assert_eq!(b.record("c").origin.position, 9);
        assert_eq!(b.record("c").origin.container, "c");
    }

    /// Checks that records and errors cover the input: in order, each exactly the bytes at its
    /// offset, with only whitespace and container syntax between them, lines and indexes right.
    fn assert_accounted(input: &[u8], items: &[Framed]) -> Result<(), TestCaseError> {
        let mut cursor = 0usize;
        for (i, item) in items.iter().enumerate() {
            let (offset, len, bytes, line, index) = match item {
                Ok(r) => (
                    r.offset,
                    r.text.len() as u64,
                    r.text.as_bytes(),
                    r.line,
                    r.index,
                ),
                Err(e) => (e.offset, e.len, e.raw.as_slice(), e.line, e.index),
            };
            let (start, end) = (offset as usize, (offset + len) as usize);
            prop_assert!(
                start >= cursor && end <= input.len(),
                "item {i} at {start}..{end}"
            );
            prop_assert_eq!(&input[start..end], bytes, "item {} text", i);
            prop_assert_eq!(index, i as u64);
            let newlines = input[..start].iter().filter(|&&b| b == b'\n').count() as u64;
            prop_assert_eq!(line, newlines + 1, "item {} line", i);
            assert_syntax_only(&input[cursor..start], cursor == 0)?;
            cursor = end;
        }
        assert_syntax_only(&input[cursor..], cursor == 0)
    }

    fn assert_syntax_only(gap: &[u8], at_start: bool) -> Result<(), TestCaseError> {
        let gap = if at_start {
            gap.strip_prefix(b"\xef\xbb\xbf").unwrap_or(gap)
        } else {
            gap
        };
        let text = String::from_utf8_lossy(gap).replace("\"Records\"", "");
        prop_assert!(
            text.bytes().all(|b| is_blank(b) || b"[]{},:".contains(&b)),
            "unaccounted bytes {:?}",
            text
        );
        Ok(())
    }

    fn jsonish_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            any::<u8>(),
            prop::sample::select(b"{}[]\",:\\\n\r\t 0a".to_vec()),
            prop::sample::select(b"{}[]\",:\\\n\r\t 0a".to_vec()),
        ];
        let piece = prop_oneof![
            prop::collection::vec(byte, 0..8),
            Just(b"{\"Records\":[".to_vec()),
            Just(b"{\"a\":[1,{\"b\":\"c\"}]}\n".to_vec()),
            Just(b"\n{\n  \"k\": \"v\"\n}\n".to_vec()),
            Just(b"<13>Jan  1 00:00:00 host app: hi\n".to_vec()),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    fn object() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,5}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        prop::collection::btree_map("[a-z]{1,6}", value, 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    #[test]
    fn one_line_objects_right_or_wrong_are_framed_as_the_scanner_frames_them() {
        let deep = format!("{}{}", "{\"a\":[".repeat(40), "]}".repeat(40));
        let lines = [
            r#"{"a":1}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1}}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[]}"#,
            r#"{"a":[}"#,
            r#"{"a":tru, "b": nul}"#,
            r#"{"a":-}"#,
            r#"{,}"#,
            r#"{]"#,
            r#"{}"#,
            r#"{ }"#,
            r#"{"a":{"b":{}}}"#,
            r#"{"a":"x\"y","b":"\\"}"#,
            r#"{"a":"unterminated"#,
            r#"{"a":"ends in an escape\"#,
            r#"{"a":1} trailing"#,
            r#"{"a":1}{"b":2}"#,
            r#"{"a":1} "#,
            "{\"a\":1}\r",
            "{\t\"a\"\t:\t1\t}",
            r#"{"Records":[{"a":1},{"b":2}]}"#,
            r#"{ "Records" : [{"a":1}]}"#,
            r#"{"Records":1}"#,
            r#"{"a":1,"Records":[{"b":2}]}"#,
            r#"{"é":"ü","n":[1.5e3,-2,true,false,null]}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":1:2}"#,
            r#"{1:2}"#,
            r#"{"a":{"b":1]}"#,
            r#"{"a":[1}]"#,
            deep.as_str(),
        ];
        for line in lines {
            // After a first record, so that the line is in the buffer when framing reaches it.
            for input in [
                format!("{{\"first\":1}}\n{line}\n{{\"next\":1}}\n"),
                format!("{{\"first\":1}}\n{line}"),
            ] {
                let scanned: Vec<_> = frame_bytes(input.as_bytes()).scanner_only().collect();
                assert_eq!(frame(input.as_bytes()), scanned, "{input:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_every_byte_is_accounted_for(
            input in jsonish_bytes(),
            sizes in prop::collection::vec(1usize..9, 1..5),
        ) {
            prop_assume!(!input.starts_with(&GZIP_MAGIC));
            let items = frame(&input);
            assert_accounted(&input, &items)?;
            let trickled: Vec<_> =
                frame_reader(Trickle { data: input.clone(), at: 0, sizes, turn: 0 }).collect();
            prop_assert_eq!(&trickled, &items);
            let small: Vec<_> = frame_bytes(&input).max_record_bytes(7).collect();
            prop_assert_eq!(small.len(), items.len());
        }

        #[test]
        fn objects_alone_on_their_line_are_framed_as_the_scanner_frames_them(
            input in jsonish_bytes(),
            objects in prop::collection::vec(object(), 0..4),
        ) {
            let mut input = input;
            for object in objects {
                input.extend_from_slice(object.to_string().as_bytes());
                input.push(b'\n');
            }
            let scanned: Vec<_> = frame_bytes(&input).scanner_only().collect();
            prop_assert_eq!(frame(&input), scanned);
        }

        #[test]
        fn gzip_and_plain_give_the_same_records(input in jsonish_bytes()) {
            prop_assume!(!input.starts_with(&GZIP_MAGIC));
            let compressed: Vec<_> = frame(&gzip(&input));
            prop_assert_eq!(compressed, frame(&input));
        }

        #[test]
        fn every_framing_of_the_same_objects_yields_the_same_records(
            objects in prop::collection::vec(object(), 1..6),
        ) {
            let compact: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
            let ndjson: String = compact.iter().map(|o| format!("{o}\n")).collect();
            let array = format!("[{}]", compact.join(","));
            let array_lines = format!("[\n{}\n]\n", compact.join(",\n"));
            let cloudtrail = format!("{{\"Records\": [{}]}}", compact.join(", "));
            for framing in [&ndjson, &array, &array_lines, &cloudtrail] {
                let items = frame(framing.as_bytes());
                prop_assert_eq!(texts(&items), compact.iter().map(String::as_str).collect::<Vec<_>>());
                prop_assert_eq!(frame(&gzip(framing.as_bytes())), items);
            }
            let pretty: Vec<String> =
                objects.iter().map(|o| serde_json::to_string_pretty(o).unwrap()).collect();
            let pretty_array = serde_json::to_string_pretty(&Value::Array(objects.clone())).unwrap();
            for framing in [pretty.join("\n"), pretty.concat(), pretty_array] {
                let items = frame(framing.as_bytes());
                let parsed: Vec<Value> =
                    texts(&items).iter().map(|t| serde_json::from_str(t).unwrap()).collect();
                prop_assert_eq!(&parsed, &objects);
            }
        }
    }
}
