//! The files: opening them (gzip-compressed too), telling their format and layout, and reading
//! their records, each with the line it starts on (and its number inside a JSON document).
//!
//! Layouts: *lines* (NDJSON / JSON Lines: one record per line, read as a stream), a *document* (one
//! JSON value holding the records: an array, CloudTrail's `{"Records": [...]}`, Azure's
//! `{"records": [...]}`, a Kubernetes `EventList`'s or a Google Reports API answer's `items`, or a
//! single record; read whole), and CSV (read by [`crate::csv`] or [`crate::pgaudit`]).
//!
//! Detection (no format asked, `--format auto`): a `.csv` file (also `.csv.gz`) whose first row is
//! a PostgreSQL CSV log line (a `log_time` and at least 23 columns) is a pgaudit log, any other
//! `.csv` is CSV. Otherwise the content decides: a first line that is a whole JSON object makes
//! NDJSON, unless that object holds records (as above); an array, or an object spread over several
//! lines, makes a document. The first record then names the format: a CloudTrail record
//! (`eventVersion` and `eventSource` or `insightDetails`, or a digest file), a Kubernetes audit
//! event (`apiVersion` `audit.k8s.io/*`, `kind` `Event`; or its GKE or AKS wrapper), an Okta System
//! Log event (`uuid`, `published`, `eventType`), an Entra ID sign-in (`createdDateTime` and
//! `userPrincipalName` or `appId`, or a `SignInLogs` diagnostic record), an Azure Activity Log
//! record (`operationName` and `eventTimestamp`, or `time` and `resourceId`), a Google Workspace
//! activity (`kind` `admin#reports#activity`), a GitHub audit log entry (`action`, `actor`,
//! `@timestamp` or `created_at`), or an Evident event (`id` and `source`, `type` or `actor`).
//! Anything else is an error naming the file and what was expected. With a format asked, the first
//! record must look like that format.

use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read, Seek as _, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde_json::Value;

use crate::{Error, Format, Result};

/// Bytes read (after decompression) to tell a file's format.
const PREFIX_BYTES: u64 = 1 << 20;
/// Lines looked at for a first readable record.
const PROBE_LINES: usize = 20;

/// A file to ingest.
pub struct Input {
    pub path: PathBuf,
    /// The path as given, for messages.
    pub name: String,
    pub format: Format,
    layout: Layout,
    /// Bytes on disk (compressed, for a `.gz`), for progress.
    pub size: u64,
}

enum Layout {
    Lines,
    Document(Document),
    Csv,
}

/// A JSON document read whole, and where its records are.
struct Document {
    text: Vec<u8>,
    items: Vec<Range<usize>>,
    /// Where and why reading the records stopped early (a truncated file, text after the end).
    broken: Option<Broken>,
}

/// Where and why the records of a document stop early: the byte offset and the reason.
type Broken = (usize, String);

/// Bytes read from disk so far, shared with the reader that counts them.
pub(crate) type BytesRead = Rc<Cell<u64>>;

/// Where a record came from: the file, the (1-based) line it starts on, and its (1-based) number
/// inside a JSON document.
#[derive(Clone, Debug)]
pub struct Place {
    pub file: Rc<str>,
    pub line: u64,
    pub record: Option<usize>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if let Some(record) = self.record {
            write!(f, " (record {record})")?;
        }
        Ok(())
    }
}

/// One record of a JSON-based file: its JSON, or why it cannot be read.
pub(crate) struct JsonRecord {
    pub place: Place,
    pub value: Result<Value, String>,
}

/// Opens `path` and tells its format and layout (`asked`: the format it must have; `None` to tell
/// it from the file); reads nothing else yet (except a JSON document, which is read whole).
pub fn open(path: &Path, asked: Option<Format>) -> Result<Input> {
    let name = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(Error::io(format!("cannot open {name}")))?;
    if metadata.is_dir() {
        return Err(Error::Input(format!("cannot open {name}: it is a directory")));
    }
    let size = metadata.len();
    let input = |format, layout| Input { path: path.to_owned(), name: name.clone(), format, layout, size };
    let extension = extension(path);
    if asked == Some(Format::Pgaudit) {
        let (reader, _) = open_reader(path, &name)?;
        if !crate::pgaudit::looks_like(reader) {
            let wanted = Format::Pgaudit;
            return Err(Error::Input(format!(
                "{name} does not look like {}: {}",
                wanted.name(),
                expected(asked)
            )));
        }
        return Ok(input(Format::Pgaudit, Layout::Csv));
    }
    if asked == Some(Format::Csv) || (asked.is_none() && extension == "csv") {
        let (reader, _) = open_reader(path, &name)?;
        let format =
            if asked.is_none() && crate::pgaudit::looks_like(reader) { Format::Pgaudit } else { Format::Csv };
        return Ok(input(format, Layout::Csv));
    }

    let (reader, _) = open_reader(path, &name)?;
    let mut reader = reader;
    let mut prefix = Vec::new();
    reader
        .by_ref()
        .take(PREFIX_BYTES)
        .read_to_end(&mut prefix)
        .map_err(Error::io(format!("cannot read {name}")))?;
    let whole = (prefix.len() as u64) < PREFIX_BYTES;
    let start = skip_bom(&prefix);
    let first = skip_ws(&prefix, start);
    let (layout, first_record) = match prefix.get(first) {
        None => (Layout::Lines, None),
        Some(b'[') => {
            let document = read_document(prefix, reader, first, &name)?;
            let record = first_item(&document);
            (Layout::Document(document), record)
        }
        Some(b'{') => {
            let first_line = prefix[first..].split(|b| *b == b'\n').next().unwrap_or_default();
            let complete = whole || first + first_line.len() < prefix.len();
            match serde_json::from_slice::<Value>(first_line).ok().filter(|_| complete) {
                Some(value) if !is_document_object(&value) => {
                    (Layout::Lines, first_object_line(&prefix[start..]))
                }
                Some(_) => {
                    let document = read_document(prefix, reader, first, &name)?;
                    let record = first_item(&document);
                    (Layout::Document(document), record)
                }
                None => {
                    // An object spread over lines (a document, perhaps cut short), or NDJSON whose
                    // first line is bad.
                    let mut text = prefix;
                    reader.read_to_end(&mut text).map_err(Error::io(format!("cannot read {name}")))?;
                    let single = skip_value(&text, first)
                        .ok()
                        .filter(|end| skip_ws(&text, *end) == text.len())
                        .is_some();
                    if single || holds_records(&text, first) {
                        let document = document(text, first);
                        let record = first_item(&document);
                        (Layout::Document(document), record)
                    } else {
                        (Layout::Lines, first_object_line(&text[start..]))
                    }
                }
            }
        }
        Some(_) if asked == Some(Format::Ndjson) => (Layout::Lines, None),
        Some(_) => return Err(Error::Input(format!("{name} is not JSON: {}", expected(asked)))),
    };
    let format = decide(asked, first_record.as_ref(), &name, &extension)?;
    Ok(input(format, layout))
}

/// The format, from what was asked and the first record.
fn decide(asked: Option<Format>, first: Option<&Value>, name: &str, extension: &str) -> Result<Format> {
    let wanted = match asked {
        None => {
            let problem = match first.and_then(classify) {
                Some(format) => return Ok(format),
                None if first.is_none() && matches!(extension, "ndjson" | "jsonl") => {
                    return Ok(Format::Ndjson);
                }
                None if first.is_none() => format!("{name} holds no readable record: {}", expected(asked)),
                None => format!("cannot tell the format of {name}: {}; or pass --format", expected(asked)),
            };
            return Err(Error::Input(problem));
        }
        Some(format @ (Format::Ndjson | Format::Csv | Format::Pgaudit)) => return Ok(format),
        Some(format) => format,
    };
    match first {
        Some(record) if !wanted.looks_like(record) => {
            Err(Error::Input(format!("{name} does not look like {}: {}", wanted.name(), expected(asked))))
        }
        _ => Ok(wanted),
    }
}

/// The format a record looks like.
fn classify(record: &Value) -> Option<Format> {
    [
        Format::CloudTrail,
        Format::K8s,
        Format::Okta,
        Format::EntraSignIn,
        Format::AzureActivity,
        Format::Workspace,
        Format::GitHub,
        Format::Ndjson,
    ]
    .into_iter()
    .find(|format| format.looks_like(record))
}

/// What a file of the asked format should hold.
fn expected(asked: Option<Format>) -> &'static str {
    match asked {
        None => {
            "expected NDJSON of Evident events (id, source, type, ...), AWS CloudTrail records (a \
             {\"Records\": [...]} file or NDJSON), Kubernetes audit events (audit.k8s.io/v1 Event or \
             EventList, or GKE or AKS audit records), a GitHub audit log (a JSON array or NDJSON of entries \
             with action, actor and @timestamp or created_at), an Okta System Log, an Azure Activity Log, \
             Entra ID sign-in logs, Google Workspace audit activities, a PostgreSQL CSV log with pgaudit \
             lines, or a .csv file"
        }
        Some(Format::Ndjson) => "expected one Evident event (a JSON object) per line",
        Some(Format::Csv) => "expected CSV with a header row",
        Some(Format::CloudTrail) => {
            "expected a CloudTrail records file ({\"Records\": [...]}) or NDJSON of CloudTrail records \
             (with eventVersion and eventSource or insightDetails)"
        }
        Some(Format::K8s) => {
            "expected a Kubernetes audit EventList or NDJSON of audit events (apiVersion audit.k8s.io/v1, \
             kind Event), or GKE (protoPayload AuditLog of k8s.io) or AKS (category kube-audit, \
             properties.log) audit records"
        }
        Some(Format::GitHub) => {
            "expected a GitHub audit log: a JSON array or NDJSON of entries with action, actor and \
             @timestamp or created_at"
        }
        Some(Format::Okta) => {
            "expected an Okta System Log: a JSON array or NDJSON of LogEvents with uuid, published, \
             eventType and actor"
        }
        Some(Format::AzureActivity) => {
            "expected an Azure Activity Log: a JSON array, NDJSON or {\"records\": [...]} of events with \
             operationName and eventTimestamp (or time and resourceId)"
        }
        Some(Format::EntraSignIn) => {
            "expected Entra ID sign-in logs: a JSON array, NDJSON or {\"value\"|\"records\": [...]} of \
             sign-ins with id, createdDateTime and userPrincipalName or appId (or SignInLogs records)"
        }
        Some(Format::Workspace) => {
            "expected Google Workspace audit activities: a Reports API answer ({\"items\": [...]}), a \
             JSON array or NDJSON of activities (kind admin#reports#activity)"
        }
        Some(Format::Pgaudit) => {
            "expected a PostgreSQL CSV log (log_destination = 'csvlog') with pgaudit's AUDIT: lines"
        }
    }
}

/// Lists whose records are inside an object: CloudTrail's `Records`, Azure's `records`, Microsoft
/// Graph's `value`, and `items` of a Kubernetes `EventList` or a Google Reports API answer.
fn is_document_object(value: &Value) -> bool {
    let kind = value.get("kind").and_then(Value::as_str);
    ["Records", "records", "value"].iter().any(|name| value.get(*name).is_some_and(Value::is_array))
        || (kind.is_some_and(items_kind) && value.get("items").is_some_and(Value::is_array))
}

/// The `kind`s whose `items` are records.
fn items_kind(kind: &str) -> bool {
    matches!(kind, "EventList" | "admin#reports#activities")
}

/// The extension, lowercase, without a trailing `.gz`.
fn extension(path: &Path) -> String {
    let file_name = path.file_name().map(|name| name.to_string_lossy().to_lowercase()).unwrap_or_default();
    let file_name = file_name.strip_suffix(".gz").unwrap_or(&file_name);
    file_name.rsplit_once('.').map(|(_, extension)| extension.to_owned()).unwrap_or_default()
}

/// The first line among the first few that is a JSON object.
fn first_object_line(text: &[u8]) -> Option<Value> {
    text.split(|b| *b == b'\n')
        .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
        .take(PROBE_LINES)
        .find_map(|line| serde_json::from_slice::<Value>(line).ok().filter(Value::is_object))
}

fn first_item(document: &Document) -> Option<Value> {
    let range = document.items.first()?.clone();
    serde_json::from_slice(&document.text[range]).ok()
}

/// Reads the rest of a document and finds its records.
fn read_document(mut text: Vec<u8>, mut reader: Box<dyn Read>, first: usize, name: &str) -> Result<Document> {
    reader.read_to_end(&mut text).map_err(Error::io(format!("cannot read {name}")))?;
    Ok(document(text, first))
}

/// The records of the document starting at `first` (a `[` or `{`).
fn document(text: Vec<u8>, first: usize) -> Document {
    let (items, broken) =
        if text[first] == b'[' { array_items(&text, first) } else { object_items(&text, first) };
    Document { text, items, broken }
}

/// The records of a document object: its `Records` or `items` array, or the object itself.
fn object_items(text: &[u8], open: usize) -> (Vec<Range<usize>>, Option<Broken>) {
    let (members, end) = object_members(text, open);
    let inner = member_array(text, &members);
    let broken = match &end {
        Ok(end) => trailing(text, *end),
        Err(broken) => Some(broken.clone()),
    };
    if let Some(at) = inner {
        let (items, array_broken) = array_items(text, at);
        return (items, array_broken.or(broken));
    }
    match end {
        Ok(end) => (std::iter::once(open..end).collect(), broken),
        Err(_) => (Vec::new(), broken),
    }
}

/// Whether the object at `open` holds records ([`is_document_object`]), even if the document breaks
/// later.
fn holds_records(text: &[u8], open: usize) -> bool {
    let (members, _) = object_members(text, open);
    member_array(text, &members).is_some()
}

/// Where the records array starts among an object's members ([`is_document_object`]).
fn member_array(text: &[u8], members: &[(String, usize)]) -> Option<usize> {
    let member = |name: &str| members.iter().find(|(key, _)| key == name).map(|(_, at)| *at);
    let kind = member("kind").and_then(|at| {
        let end = skip_value(text, at).ok()?;
        serde_json::from_slice::<String>(&text[at..end]).ok()
    });
    member("Records")
        .or_else(|| member("records"))
        .or_else(|| member("value"))
        .or_else(|| member("items").filter(|_| kind.as_deref().is_some_and(items_kind)))
        .filter(|at| text.get(*at) == Some(&b'['))
}

/// The members of the object at `open`: each key and where its value starts; and the end of the
/// object, or where and why it breaks.
fn object_members(text: &[u8], open: usize) -> (Vec<(String, usize)>, Result<usize, Broken>) {
    let mut members = Vec::new();
    let mut at = skip_ws(text, open + 1);
    if text.get(at) == Some(&b'}') {
        return (members, Ok(at + 1));
    }
    loop {
        let key_end = match skip_string(text, at) {
            Ok(end) => end,
            Err(err) => return (members, Err((at, err))),
        };
        let key = serde_json::from_slice::<String>(&text[at..key_end]).unwrap_or_default();
        at = skip_ws(text, key_end);
        if text.get(at) != Some(&b':') {
            return (members, Err((at, "expected `:` after a key".into())));
        }
        at = skip_ws(text, at + 1);
        members.push((key, at));
        let end = match skip_value(text, at) {
            Ok(end) => end,
            Err(err) => return (members, Err((at, err))),
        };
        at = skip_ws(text, end);
        match text.get(at) {
            Some(b',') => at = skip_ws(text, at + 1),
            Some(b'}') => return (members, Ok(at + 1)),
            Some(_) => return (members, Err((at, "expected `,` or `}`".into()))),
            None => return (members, Err((at, ends_early()))),
        }
    }
}

/// The items of the array at `open`, up to the first structural problem.
fn array_items(text: &[u8], open: usize) -> (Vec<Range<usize>>, Option<Broken>) {
    let mut items = Vec::new();
    let mut at = skip_ws(text, open + 1);
    if text.get(at) == Some(&b']') {
        return (items, None);
    }
    loop {
        let end = match skip_value(text, at) {
            Ok(end) => end,
            Err(err) => return (items, Some((at, err))),
        };
        items.push(at..end);
        at = skip_ws(text, end);
        match text.get(at) {
            Some(b',') => at = skip_ws(text, at + 1),
            Some(b']') => return (items, None),
            Some(_) => return (items, Some((at, "expected `,` or `]` between records".into()))),
            None => return (items, Some((at, ends_early()))),
        }
    }
}

fn ends_early() -> String {
    "the JSON document ends early (a truncated file?)".into()
}

/// Text after the end of the document, if any.
fn trailing(text: &[u8], end: usize) -> Option<Broken> {
    let at = skip_ws(text, end);
    (at < text.len()).then(|| (at, "unexpected text after the end of the JSON document".into()))
}

fn skip_bom(text: &[u8]) -> usize {
    if text.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 }
}

fn skip_ws(text: &[u8], mut at: usize) -> usize {
    while text.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The end of the string starting at `at` (a `"`).
fn skip_string(text: &[u8], at: usize) -> Result<usize, String> {
    if text.get(at) != Some(&b'"') {
        return Err(if at >= text.len() { ends_early() } else { "expected a string".into() });
    }
    let mut i = at + 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(ends_early())
}

/// The end of the JSON value starting at `at`. Only the structure is followed; the value itself is
/// checked when it is parsed.
fn skip_value(text: &[u8], at: usize) -> Result<usize, String> {
    match text.get(at) {
        None => Err(ends_early()),
        Some(b'"') => skip_string(text, at),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = at;
            while i < text.len() {
                match text[i] {
                    b'"' => {
                        i = skip_string(text, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Err(ends_early())
        }
        Some(_) => {
            let end = text[at..]
                .iter()
                .position(|b| matches!(b, b',' | b']' | b'}') || b.is_ascii_whitespace())
                .map_or(text.len(), |n| at + n);
            if end == at { Err("expected a value".into()) } else { Ok(end) }
        }
    }
}

/// Opens `path` for reading, decompressing gzip (told by its magic bytes); the counter follows the
/// bytes read from disk.
pub(crate) fn open_reader(path: &Path, name: &str) -> Result<(Box<dyn Read>, BytesRead)> {
    let mut file = File::open(path).map_err(Error::io(format!("cannot open {name}")))?;
    let mut magic = [0u8; 2];
    let mut n_magic = 0;
    while n_magic < 2 {
        match file.read(&mut magic[n_magic..]).map_err(Error::io(format!("cannot read {name}")))? {
            0 => break,
            n => n_magic += n,
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(Error::io(format!("cannot read {name}")))?;
    let counter = Rc::new(Cell::new(0));
    let counting = Counting { inner: file, counter: counter.clone() };
    let reader: Box<dyn Read> = if n_magic == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(counting)))
    } else {
        Box::new(counting)
    };
    Ok((reader, counter))
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    counter: BytesRead,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.set(self.counter.get() + n as u64);
        Ok(n)
    }
}

impl Input {
    /// The records of a JSON-based file, in order.
    pub(crate) fn json_records(&self) -> Result<Records<'_>> {
        let file: Rc<str> = Rc::from(self.name.as_str());
        let source = match &self.layout {
            Layout::Lines => {
                let (reader, counter) = open_reader(&self.path, &self.name)?;
                Source::Lines { reader: BufReader::with_capacity(1 << 16, reader), counter, line: 0 }
            }
            Layout::Document(document) => Source::Document { document, next: 0, line: 1, scanned: 0 },
            Layout::Csv => return Err(Error::Input(format!("{} is CSV, not JSON", self.name))),
        };
        Ok(Records { input: self, file, source, buf: Vec::new() })
    }
}

/// The records of one JSON-based file.
pub(crate) struct Records<'i> {
    input: &'i Input,
    file: Rc<str>,
    source: Source<'i>,
    buf: Vec<u8>,
}

enum Source<'i> {
    Lines {
        reader: BufReader<Box<dyn Read>>,
        counter: BytesRead,
        line: u64,
    },
    /// `next`: the next item (`items.len()` is the broken tail, then the end); `line` is the line
    /// of byte `scanned`.
    Document {
        document: &'i Document,
        next: usize,
        line: u64,
        scanned: usize,
    },
}

impl Records<'_> {
    /// The next record; `None` at the end. Errors only when the file cannot be read.
    pub(crate) fn next_record(&mut self) -> Result<Option<JsonRecord>> {
        match &mut self.source {
            Source::Lines { reader, line, .. } => loop {
                self.buf.clear();
                let n = reader.read_until(b'\n', &mut self.buf).map_err(|source| Error::Io {
                    context: format!("cannot read {}: line {}", self.input.name, *line + 1),
                    source,
                })?;
                if n == 0 {
                    return Ok(None);
                }
                *line += 1;
                let start = if *line == 1 { skip_bom(&self.buf) } else { 0 };
                let text = self.buf[start..].trim_ascii();
                if text.is_empty() {
                    continue;
                }
                let place = Place { file: self.file.clone(), line: *line, record: None };
                // The record is the line: its position is the column.
                let value =
                    parse(text).map_err(|message| message.replace(" at line 1 column ", " at column "));
                return Ok(Some(JsonRecord { place, value }));
            },
            Source::Document { document, next, line, scanned } => {
                let (at, value) = match document.items.get(*next) {
                    Some(range) => (range.start, parse(&document.text[range.clone()])),
                    None => match (&document.broken, *next == document.items.len()) {
                        (Some((at, why)), true) => (*at, Err(why.clone())),
                        _ => return Ok(None),
                    },
                };
                let at = at.min(document.text.len());
                *line += document.text[*scanned..at].iter().filter(|b| **b == b'\n').count() as u64;
                *scanned = at;
                *next += 1;
                let place = Place { file: self.file.clone(), line: *line, record: Some(*next) };
                Ok(Some(JsonRecord { place, value }))
            }
        }
    }

    /// Bytes of the file (on disk) read so far.
    pub(crate) fn position(&self) -> u64 {
        match &self.source {
            Source::Lines { counter, .. } => counter.get(),
            Source::Document { document, next, .. } => {
                let end = document.items.get(next.wrapping_sub(1)).map_or(0, |range| range.end);
                let text_len = document.text.len().max(1) as u128;
                (end as u128 * self.input.size as u128 / text_len) as u64
            }
        }
    }
}

/// One record's JSON; duplicate keys are refused, as the server does.
fn parse(text: &[u8]) -> Result<Value, String> {
    evident_wire::json::parse(text).map_err(|err| format!("invalid JSON: {err}"))
}

#[cfg(test)]
mod tests {
    use super::{document, skip_ws};

    /// The records found in `text` (as text), and why reading stopped early, if it did.
    fn check(text: &str, items: &[&str], broken: Option<&str>) {
        let first = skip_ws(text.as_bytes(), 0);
        let found = document(text.as_bytes().to_vec(), first);
        let found_items: Vec<&str> = found
            .items
            .iter()
            .map(|range| std::str::from_utf8(&text.as_bytes()[range.clone()]).unwrap())
            .collect();
        assert_eq!(found_items, items, "{text}");
        assert_eq!(found.broken.as_ref().map(|(_, why)| why.as_str()), broken, "{text}");
    }

    #[test]
    fn documents_yield_their_records_up_to_where_they_break() {
        check("[]", &[], None);
        check(
            r#"[{"a": "]"}, {"b": [1, {"c": "\"}"}]}]"#,
            &[r#"{"a": "]"}"#, r#"{"b": [1, {"c": "\"}"}]}"#],
            None,
        );
        check(
            r#"{"Records": [{"a": 1},
            {"b": 2}]}"#,
            &[r#"{"a": 1}"#, r#"{"b": 2}"#],
            None,
        );
        check(
            r#"{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": [{"a": 1}]}"#,
            &[r#"{"a": 1}"#],
            None,
        );
        check(r#"{"items": [{"a": 1}]}"#, &[r#"{"items": [{"a": 1}]}"#], None);
        check(r#"{"a": 1}"#, &[r#"{"a": 1}"#], None);
        check(
            r#"{"Records": [{"a": 1}, {"b": 2}, {"c": "#,
            &[r#"{"a": 1}"#, r#"{"b": 2}"#],
            Some("the JSON document ends early (a truncated file?)"),
        );
        check(r#"[{"a": 1} {"b": 2}]"#, &[r#"{"a": 1}"#], Some("expected `,` or `]` between records"));
        check(
            r#"{"a": 1} trailing"#,
            &[r#"{"a": 1}"#],
            Some("unexpected text after the end of the JSON document"),
        );
    }
}
