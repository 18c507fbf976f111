//! Export bundles: a query's events as of one checkpoint, in a form that verifies offline.
//!
//! The format (`evident-export/v1`) is described and owned by `evident_wire::export`.
//!
//! Next to `bundle.ndjson`, `evident export` writes two derived views for people and spreadsheets:
//! `events.jsonl` (the `J` values, one per line, in bundle order) and `events.csv` (one row per
//! event, columns [`CSV_COLUMNS`], made by [`csv_record`]). They carry no proof of their own;
//! [`verify_bundle`] checks that they say exactly what the verified bundle says.
//!
//! # What verification checks
//!
//! [`verify_bundle`] trusts only the verifier keys it is given: the checkpoint must carry a valid
//! signature by one of them and name the expected origin; every event's entry must be the leaf at
//! its index of that checkpoint's tree (RFC 9162 §2.1.3.2), match the query, come in order and only
//! once, and agree with its `event` and its `personal` part (whose commitment must match the
//! entry's); and the signed manifest must state exactly these events, this query and this
//! checkpoint. Every failure names the line, and the event (index and event id) when there is one.
//!
//! The JCS, commitment, manifest and digest code is `evident-wire`'s, the very code the server
//! signs with, so that verifier and signer cannot drift apart; besides it, verification needs only
//! the log core (`evident-tlog`).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use evident_tlog::{Checkpoint, Hash, LeafIndex, TreeSize, Verifier, leaf_hash, open_note, verify_inclusion};
use evident_wire::Micros;
use evident_wire::export::{
    BUNDLE_FILE, CSV_COLUMNS, EVENTS_CSV, EVENTS_JSONL, EventLine, ExportDigest, FORMAT, FormatError, Header,
    Line, Trailer, manifest_text, parse_header, parse_line,
};
use evident_wire::filter::Filter;
use evident_wire::jcs;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// Why a bundle does not verify.
///
/// [`BundleError::Unreadable`] is operational (a file that cannot be read); every other variant
/// means the bundle is not what a trusted log signed: tampered, truncated, or from another log.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file cannot be opened or read.
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    /// A line that is not in the format (and names no event).
    #[error("{file} line {line}: {reason}")]
    Malformed { file: &'static str, line: usize, reason: String },
    /// The header's checkpoint is not one a trusted key signed for the expected log.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// One event does not check out.
    #[error("event at line {line} (index {index}, event_id {event_id}): {reason}")]
    Event { line: usize, index: u64, event_id: String, reason: String },
    /// The signed manifest does not state these events, this query and this checkpoint.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The bundle ends without its signed trailer.
    #[error(
        "the bundle is truncated: it ends after {events} events without its signed manifest (the trailer line)"
    )]
    Truncated { events: u64 },
    /// `events.jsonl` or `events.csv` does not say what the bundle says.
    #[error("{file} {place}: {reason}")]
    Derived { file: &'static str, place: String, reason: String },
}

impl BundleError {
    /// True when the failure is evidence that the bundle was changed (not an unreadable file).
    pub fn is_tamper_evidence(&self) -> bool {
        !matches!(self, BundleError::Unreadable { .. })
    }
}

/// What a verified bundle holds.
#[derive(Clone, Debug, PartialEq)]
pub struct BundleReport {
    /// The `bundle.ndjson` that was verified.
    pub path: PathBuf,
    pub origin: String,
    pub tree_size: u64,
    pub root: Hash,
    /// The signed checkpoint note.
    pub checkpoint: String,
    /// The query, as the manifest signed it.
    pub query: Map<String, Value>,
    /// Number of events.
    pub events: u64,
    /// Number of events whose personal part is included (and was checked).
    pub personal_included: u64,
    /// The names of the trusted keys that signed the checkpoint.
    pub signed_by: Vec<String>,
    /// Whether `events.jsonl` and `events.csv` were present (and so checked).
    pub checked_jsonl: bool,
    pub checked_csv: bool,
}

/// Reads a bundle line by line (the header first), decoding each line's fields.
pub struct BundleReader {
    path: PathBuf,
    lines: std::io::Lines<BufReader<File>>,
    line: usize,
    pub header: Header,
}

/// The `bundle.ndjson` of a bundle directory, or the file itself.
pub fn bundle_file(dir_or_file: &Path) -> PathBuf {
    if dir_or_file.is_dir() { dir_or_file.join(BUNDLE_FILE) } else { dir_or_file.to_owned() }
}

impl BundleReader {
    /// Opens a bundle (its directory or its `bundle.ndjson`) and reads its header.
    pub fn open(dir_or_file: &Path) -> Result<BundleReader, BundleError> {
        let path = bundle_file(dir_or_file);
        let file = File::open(&path)
            .map_err(|err| BundleError::Unreadable { path: path.clone(), reason: err.to_string() })?;
        let mut lines = BufReader::new(file).lines();
        let first = match lines.next() {
            None => return Err(malformed(1, "the file is empty: no header line")),
            Some(Err(err)) => return Err(BundleError::Unreadable { path, reason: err.to_string() }),
            Some(Ok(first)) => first,
        };
        let header = parse_header(&first)?;
        Ok(BundleReader { path, lines, line: 1, header })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next line after the header; `None` at the end of the file. Blank lines are refused.
    pub fn next_line(&mut self) -> Result<Option<Line>, BundleError> {
        let Some(text) = self.lines.next() else { return Ok(None) };
        self.line += 1;
        let text = text.map_err(|err| BundleError::Unreadable {
            path: self.path.clone(),
            reason: format!("line {}: {err}", self.line),
        })?;
        Ok(Some(parse_line(self.line, &text)?))
    }
}

fn malformed(line: usize, reason: impl Into<String>) -> BundleError {
    BundleError::Malformed { file: BUNDLE_FILE, line, reason: reason.into() }
}

/// The failure of one event line.
fn fail(event: &EventLine, reason: impl Into<String>) -> BundleError {
    event.fail(reason).into()
}

impl From<FormatError> for BundleError {
    fn from(err: FormatError) -> BundleError {
        match err {
            FormatError::Malformed { line, reason } => {
                BundleError::Malformed { file: BUNDLE_FILE, line, reason }
            }
            FormatError::Event { line, index, event_id, reason } => {
                BundleError::Event { line, index, event_id, reason }
            }
        }
    }
}

/// The `events.csv` row of an event line: [`CSV_COLUMNS`], from its `event` value.
pub fn csv_record(line: &EventLine) -> Vec<String> {
    let event = &line.event;
    let text = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let targets = event
        .get("targets")
        .and_then(Value::as_array)
        .map(|targets| {
            targets
                .iter()
                .map(|target| {
                    let part = |key: &str| target.get(key).and_then(Value::as_str).unwrap_or_default();
                    format!("{}/{}", part("type"), part("id"))
                })
                .collect::<Vec<_>>()
                .join(";")
        })
        .unwrap_or_default();
    let row = vec![
        line.index.to_string(),
        line.event_id.clone(),
        text("time"),
        text("recorded_at"),
        text("tenant"),
        text("source"),
        text("type"),
        text("action"),
        text("outcome"),
        event.pointer("/actor/id").and_then(Value::as_str).unwrap_or_default().to_owned(),
        text("subject"),
        targets,
        text("reason"),
        line.personal.is_some().to_string(),
    ];
    row.into_iter().map(neutralise_formula).collect()
}

/// A cell a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return) gets a leading `'`, so producers cannot plant formulas in an auditor's
/// spreadsheet (CSV injection). `events.csv` is for people; the bundle keeps the exact values.
pub fn neutralise_formula(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}") } else { cell }
}

/// Verifies an export bundle offline against the verifier keys the caller trusts.
///
/// `origin` is the log the bundle must come from; `None` accepts the origin the header names (the
/// checkpoint must still be signed by a trusted key). When `events.jsonl` and `events.csv` lie
/// next to `bundle.ndjson` they are checked against it too.
pub fn verify_bundle(
    dir_or_file: &Path,
    trusted: &[Verifier],
    origin: Option<&str>,
) -> Result<BundleReport, BundleError> {
    let mut reader = BundleReader::open(dir_or_file)?;
    let header = reader.header.clone();
    let mut check = StreamCheck::new(&header, trusted, origin)?;
    let mut expected_views: Vec<ExpectedView> = Vec::new();
    let mut personal_included = 0;
    let trailer = loop {
        match reader.next_line()? {
            None => return Err(BundleError::Truncated { events: check.events() }),
            Some(Line::Manifest(trailer)) => break trailer,
            Some(Line::Event(event)) => {
                check.event(&event)?;
                personal_included += u64::from(event.personal.is_some());
                expected_views.push(ExpectedView::of(&event));
            }
        }
    };
    if reader.next_line()?.is_some() {
        return Err(malformed(reader.line, "data after the trailer"));
    }
    let (root, signed_by) = check.finish(&trailer)?;
    let (checked_jsonl, checked_csv) = check_views(reader.path(), &expected_views)?;
    Ok(BundleReport {
        path: reader.path().to_owned(),
        origin: header.origin,
        tree_size: header.tree_size,
        root,
        checkpoint: header.checkpoint,
        query: header.query,
        events: expected_views.len() as u64,
        personal_included,
        signed_by,
        checked_jsonl,
        checked_csv,
    })
}

/// The checks of [`verify_bundle`] on a bundle read one line at a time, as it streams in: the
/// header's checkpoint when made, each event line as it comes ([`StreamCheck::event`]), the
/// signed manifest at the end ([`StreamCheck::finish`]). It keeps the indices and event ids seen,
/// never the events; [`StreamCheck::bounded`] keeps nothing per event (a repeated index still
/// fails the order check; a repeated event id on two entries is not caught).
pub struct StreamCheck {
    header: Header,
    trusted: Vec<Verifier>,
    checkpoint: Checkpoint,
    signed_by: Vec<String>,
    query: Filter,
    digest: ExportDigest,
    /// The indices and event ids seen (`None`: bounded).
    seen: Option<(HashSet<u64>, HashSet<String>)>,
    previous: Option<(Micros, u64)>,
    links: Links,
}

impl StreamCheck {
    /// Checks the header: its checkpoint must be signed by a trusted key for `origin` (when given).
    pub fn new(
        header: &Header,
        trusted: &[Verifier],
        origin: Option<&str>,
    ) -> Result<StreamCheck, BundleError> {
        if let Some(expected) = origin
            && expected != header.origin
        {
            return Err(BundleError::Checkpoint(format!(
                "the bundle is from the log {:?}, not the expected {expected:?}",
                header.origin
            )));
        }
        if trusted.is_empty() {
            return Err(BundleError::Checkpoint("no trusted verifier key was given".into()));
        }
        let (checkpoint, note) =
            Checkpoint::open(&header.checkpoint, trusted, &header.origin).map_err(|err| {
                BundleError::Checkpoint(match err {
                    evident_tlog::Error::NoKnownSignature => format!(
                        "not signed by a trusted key (trusted: {}); the bundle comes from another log or key",
                        trusted.iter().map(Verifier::to_vkey).collect::<Vec<_>>().join(", ")
                    ),
                    other => other.to_string(),
                })
            })?;
        if checkpoint.size.0 != header.tree_size {
            return Err(BundleError::Checkpoint(format!(
                "the header's tree_size {} is not the checkpoint's size {}",
                header.tree_size, checkpoint.size
            )));
        }
        let query = header.filter().map_err(|err| malformed(1, format!("header: query: {}", err.reason)))?;
        Ok(StreamCheck {
            header: header.clone(),
            trusted: trusted.to_vec(),
            checkpoint,
            signed_by: note.verified.iter().map(|s| s.name.clone()).collect(),
            query,
            digest: ExportDigest::default(),
            seen: Some((HashSet::new(), HashSet::new())),
            previous: None,
            links: Links::default(),
        })
    }

    /// The same checks in memory that does not grow with the bundle.
    pub fn bounded(mut self) -> StreamCheck {
        self.seen = None;
        self
    }

    /// Event lines checked so far.
    pub fn events(&self) -> u64 {
        self.digest.count()
    }

    /// Checks the next event line: in the log at the checkpoint, matching the query, in order,
    /// once; answers its event time.
    pub fn event(&mut self, event: &EventLine) -> Result<Micros, BundleError> {
        self.links.follow(event.previous.as_ref(), Some((event.index, &event.event_id)));
        let time = check_event(event, &self.checkpoint, &self.query)?;
        if let Some((indices, ids)) = &mut self.seen {
            if !indices.insert(event.index) {
                return Err(fail(event, "appears twice: an index occurs at most once in a bundle"));
            }
            if !ids.insert(event.event_id.clone()) {
                return Err(fail(event, "appears twice: an event id occurs at most once in a bundle"));
            }
        }
        if let Some((previous_time, previous_index)) = self.previous
            && (time, event.index) <= (previous_time, previous_index)
        {
            return Err(fail(
                event,
                format!(
                    "out of order: its (time {}, index {}) is not after the previous event's (time {}, \
                 index {previous_index}); a bundle lists events oldest first",
                    time.to_rfc3339(),
                    event.index,
                    previous_time.to_rfc3339()
                ),
            ));
        }
        self.previous = Some((time, event.index));
        self.digest.add(event.index, &event.entry);
        Ok(time)
    }

    /// Checks the trailer's signed manifest against every event line checked; answers the
    /// checkpoint's root and the names of the keys that signed it.
    pub fn finish(mut self, trailer: &Trailer) -> Result<(Hash, Vec<String>), BundleError> {
        self.links.follow(trailer.last.as_ref(), None);
        let held = self.seen.take().map(|(indices, _)| indices).unwrap_or_default();
        let missing = self.links.missing(&held);
        check_manifest(&trailer.manifest, &self.trusted, &self.header, self.digest, &missing)?;
        if let Some((line, claim)) = self.links.broken.first() {
            return Err(malformed(
                *line,
                format!(
                    "its link names index {} (event_id {}), which is not the event line before it",
                    claim.0, claim.1
                ),
            ));
        }
        Ok((self.checkpoint.root, self.signed_by))
    }
}

/// Checks one event line against the checkpoint and the query; answers its event time.
fn check_event(event: &EventLine, checkpoint: &Checkpoint, query: &Filter) -> Result<Micros, BundleError> {
    if event.index >= checkpoint.size.0 {
        return Err(fail(
            event,
            format!("index is not below the checkpoint's tree size {}", checkpoint.size),
        ));
    }
    let entry: Value = serde_json::from_slice(&event.entry)
        .map_err(|err| fail(event, format!("entry is not JSON: {err}")))?;
    if !entry.is_object() {
        return Err(fail(event, "entry is not a JSON object"));
    }
    // The proof first: an entry that is not in the log is the most telling failure.
    verify_inclusion(
        &leaf_hash(&event.entry),
        LeafIndex(event.index),
        checkpoint.size,
        &event.proof,
        &checkpoint.root,
    )
    .map_err(|err| {
        fail(
            event,
            format!(
                "the entry is not the log's leaf at this index: its inclusion proof does not lead to the \
                 checkpoint's root ({err}); the entry, its index or its proof was changed"
            ),
        )
    })?;
    if entry.get("event_id").and_then(Value::as_str) != Some(event.event_id.as_str()) {
        return Err(fail(
            event,
            format!(
                "the line's event_id is not the entry's ({})",
                entry.get("event_id").and_then(Value::as_str).unwrap_or("none")
            ),
        ));
    }
    let time = entry
        .get("time")
        .and_then(Value::as_str)
        .and_then(Micros::parse_rfc3339)
        .ok_or_else(|| fail(event, "the entry has no RFC 3339 \"time\""))?;
    if let Some(reason) = query.mismatch(&entry, time) {
        return Err(fail(event, format!("does not match the bundle's query: {reason}")));
    }
    let expected = match &event.personal {
        None => entry,
        Some((salt, part)) => {
            let canonical = jcs::to_vec(part);
            let claimed = entry.get("pii_commitment").and_then(Value::as_str);
            let Some(claimed) = claimed else {
                return Err(fail(
                    event,
                    "has a personal part but its entry commits to none (no pii_commitment)",
                ));
            };
            if evident_wire::entry::commitment(salt, &canonical) != claimed {
                return Err(fail(
                    event,
                    "its personal part does not match the entry's pii_commitment: the personal values or \
                     the salt were changed",
                ));
            }
            evident_wire::entry::rehydrate(&entry, salt, &canonical)
                .map_err(|err| fail(event, err.to_string()))?
        }
    };
    if jcs::to_vec(&event.event) != jcs::to_vec(&expected) {
        let at = first_difference(&event.event, &expected).unwrap_or_default();
        let what = if event.personal.is_some() {
            "its entry with the personal part merged in"
        } else {
            "its entry (no personal part is included)"
        };
        return Err(fail(
            event,
            format!(
                "its \"event\" differs from {what} at {}",
                if at.is_empty() { "the top level".to_owned() } else { format!("{at:?}") }
            ),
        ));
    }
    Ok(time)
}

/// The JSON pointer of the first place where `a` and `b` differ (`None` when equal).
fn first_difference(a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                let token = key.replace('~', "~0").replace('/', "~1");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => first_difference(x, y).map(|rest| format!("/{token}{rest}")),
                    _ => Some(format!("/{token}")),
                }
            })
        }
        (Value::Array(a), Value::Array(b)) => {
            (0..a.len().max(b.len())).find_map(|i| match (a.get(i), b.get(i)) {
                (Some(x), Some(y)) => first_difference(x, y).map(|rest| format!("/{i}{rest}")),
                _ => Some(format!("/{i}")),
            })
        }
        _ => (jcs::to_vec(a) != jcs::to_vec(b)).then(String::new),
    }
}

/// The `previous` and `last` links of a bundle's lines, as read: the ones that do not name the
/// line before them (in a genuine bundle, none; after a drop, they name what was dropped).
#[derive(Default)]
struct Links {
    /// The event line read last: (index, event id).
    before: Option<(u64, String)>,
    /// The line number being read (the header is line 1).
    line: usize,
    /// (line, what its link names) for every link that does not name the line before.
    broken: Vec<(usize, (u64, String))>,
}

impl Links {
    /// Reads the link of the next line (an event line, or the trailer with `this` = `None`).
    fn follow(&mut self, claimed: Option<&(u64, String)>, this: Option<(u64, &str)>) {
        self.line = if self.line == 0 { 2 } else { self.line + 1 };
        // Bundles written before the links existed have none: nothing to follow.
        if let Some(claimed) = claimed
            && self.before.as_ref() != Some(claimed)
        {
            self.broken.push((self.line, claimed.clone()));
        }
        self.before = this.map(|(index, event_id)| (index, event_id.to_owned()));
    }

    /// The events the links name that the bundle does not hold: the dropped ones.
    fn missing(&self, held: &HashSet<u64>) -> Vec<(u64, String)> {
        self.broken
            .iter()
            .map(|(_, claim)| claim.clone())
            .filter(|(index, _)| !held.contains(index))
            .collect()
    }
}

/// Checks the trailer: a note signed by a trusted key stating exactly this bundle. `missing` are
/// the events the lines' links name that the bundle does not hold, for the message.
fn check_manifest(
    manifest: &str,
    trusted: &[Verifier],
    header: &Header,
    digest: ExportDigest,
    missing: &[(u64, String)],
) -> Result<(), BundleError> {
    let note = open_note(manifest, trusted).map_err(|err| {
        BundleError::Manifest(match err {
            evident_tlog::Error::NoKnownSignature => "not signed by a trusted key".to_owned(),
            other => format!("its signature does not verify: {other}"),
        })
    })?;
    let count = digest.count();
    let query = Value::Object(header.query.clone());
    let expected = manifest_text(&header.origin, TreeSize(header.tree_size), count, &digest.finish(), &query);
    if note.text == expected {
        return Ok(());
    }
    // Say which statement differs.
    let signed: Vec<&str> = note.text.lines().collect();
    let ours: Vec<&str> = expected.lines().collect();
    if signed.len() != ours.len() || signed[0] != FORMAT {
        return Err(BundleError::Manifest("the signed text is not an evident-export/v1 manifest".into()));
    }
    let reason = if signed[1] != ours[1] {
        format!("it was signed for the log {:?}, the bundle names {:?}", signed[1], ours[1])
    } else if signed[2] != ours[2] {
        format!("it was signed at tree size {}, the bundle's checkpoint is at {}", signed[2], ours[2])
    } else if signed[5] != ours[5] {
        format!("it was signed for the query {}, the bundle's header states {}", signed[5], ours[5])
    } else if signed[3] != ours[3] {
        let named: Vec<String> =
            missing.iter().map(|(index, event_id)| format!("index {index} (event_id {event_id})")).collect();
        let which = if named.is_empty() {
            "events were dropped or added".to_owned()
        } else {
            format!("missing: {}", named.join(", "))
        };
        format!("it lists {} events, the bundle holds {}: {which}", signed[3], ours[3])
    } else {
        "the bundle's events (their indices, entries or order) are not those it lists: an event was replaced \
         or events were reordered"
            .to_owned()
    };
    Err(BundleError::Manifest(reason))
}

/// What the derived views must say of one event.
struct ExpectedView {
    index: u64,
    event_id: String,
    event_digest: [u8; 32],
    csv: Vec<String>,
}

impl ExpectedView {
    fn of(event: &EventLine) -> ExpectedView {
        ExpectedView {
            index: event.index,
            event_id: event.event_id.clone(),
            event_digest: Sha256::digest(jcs::to_vec(&event.event)).into(),
            csv: csv_record(event),
        }
    }
}

/// Checks `events.jsonl` and `events.csv` next to `bundle`, when present.
fn check_views(bundle: &Path, expected: &[ExpectedView]) -> Result<(bool, bool), BundleError> {
    let dir = bundle.parent().unwrap_or(Path::new("."));
    let jsonl = dir.join(EVENTS_JSONL);
    let csv = dir.join(EVENTS_CSV);
    let has_jsonl = jsonl.exists();
    let has_csv = csv.exists();
    if has_jsonl {
        check_jsonl(&jsonl, expected)?;
    }
    if has_csv {
        check_csv(&csv, expected)?;
    }
    Ok((has_jsonl, has_csv))
}

/// A failure of a derived view at `place` (`line 3` of `events.jsonl`, `row 3` of `events.csv`).
fn derived(
    file: &'static str,
    place: String,
    view: Option<&ExpectedView>,
    reason: impl Into<String>,
) -> BundleError {
    let place = match view {
        Some(view) => format!("{place} (index {}, event_id {})", view.index, view.event_id),
        None => place,
    };
    BundleError::Derived { file, place, reason: reason.into() }
}

fn check_jsonl(path: &Path, expected: &[ExpectedView]) -> Result<(), BundleError> {
    let unreadable =
        |err: std::io::Error| BundleError::Unreadable { path: path.to_owned(), reason: err.to_string() };
    let file = File::open(path).map_err(unreadable)?;
    let mut count = 0;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(unreadable)?;
        let number = i + 1;
        let Some(view) = expected.get(i) else {
            return Err(derived(
                EVENTS_JSONL,
                format!("line {number}"),
                None,
                format!("the bundle holds only {} events; this line is not one of them", expected.len()),
            ));
        };
        let value: Value = serde_json::from_str(&line).map_err(|err| {
            derived(EVENTS_JSONL, format!("line {number}"), Some(view), format!("not JSON: {err}"))
        })?;
        if <[u8; 32]>::from(Sha256::digest(jcs::to_vec(&value))) != view.event_digest {
            return Err(derived(
                EVENTS_JSONL,
                format!("line {number}"),
                Some(view),
                "differs from the bundle's event at this position",
            ));
        }
        count += 1;
    }
    if count < expected.len() {
        return Err(derived(
            EVENTS_JSONL,
            format!("line {}", count + 1),
            expected.get(count),
            format!("missing: the file has {count} lines, the bundle {} events", expected.len()),
        ));
    }
    Ok(())
}

fn check_csv(path: &Path, expected: &[ExpectedView]) -> Result<(), BundleError> {
    let unreadable =
        |err: csv::Error| BundleError::Unreadable { path: path.to_owned(), reason: err.to_string() };
    let mut reader =
        csv::ReaderBuilder::new().has_headers(true).flexible(true).from_path(path).map_err(unreadable)?;
    let headers = reader.headers().map_err(unreadable)?.clone();
    if headers.iter().ne(CSV_COLUMNS) {
        return Err(derived(
            EVENTS_CSV,
            "header".into(),
            None,
            format!("the columns are not {}", CSV_COLUMNS.join(",")),
        ));
    }
    let mut count = 0;
    for (i, record) in reader.records().enumerate() {
        let place = format!("row {}", i + 1); // data rows, after the header
        let Some(view) = expected.get(i) else {
            return Err(derived(
                EVENTS_CSV,
                place,
                None,
                format!("the bundle holds only {} events; this row is not one of them", expected.len()),
            ));
        };
        let record = record.map_err(|err| derived(EVENTS_CSV, place.clone(), Some(view), err.to_string()))?;
        if record.iter().ne(view.csv.iter().map(String::as_str)) {
            let column = CSV_COLUMNS
                .iter()
                .enumerate()
                .find(|(c, _)| record.get(*c) != view.csv.get(*c).map(String::as_str))
                .map(|(_, name)| *name)
                .unwrap_or("row");
            return Err(derived(
                EVENTS_CSV,
                place,
                Some(view),
                format!("column {column} differs from the bundle's event at this position"),
            ));
        }
        count += 1;
    }
    if count < expected.len() {
        return Err(derived(
            EVENTS_CSV,
            format!("row {}", count + 1),
            expected.get(count),
            format!("missing: the file has {count} rows, the bundle {} events", expected.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use evident_tlog::{MemoryTree, Signer, sign_note};
    use serde_json::json;

    use super::*;

    const ORIGIN: &str = "evident.test/acme";

    /// A log of eight events (subjects alternate between cust-1 and cust-2; the events of cust-1
    /// carry a personal part) and the bundle of `subject=cust-1`, as lines of JSON.
    fn bundle(personal: bool) -> (Vec<Value>, Verifier) {
        bundle_of(personal, "cust-1")
    }

    /// The same log's bundle of `subject=<subject>`.
    fn bundle_of(personal: bool, wanted: &str) -> (Vec<Value>, Verifier) {
        let signer = Signer::from_seed(ORIGIN, [9; 32]).unwrap();
        let mut tree = MemoryTree::new();
        let mut events = Vec::new();
        for i in 0..8u64 {
            let subject = if i % 2 == 0 { "cust-1" } else { "cust-2" };
            let mut skeleton = json!({
                "id": format!("e-{i}"), "source": "//crm", "type": "customer.viewed", "action": "read",
                "time": format!("2026-01-01T10:00:0{}.000000Z", 8 - i), "actor": {"id": "agent-7"},
                "subject": subject, "targets": [{"type": "customer", "id": subject}], "outcome": "success",
                "tenant": "acme", "event_id": format!("00000000-0000-7000-8000-00000000000{i}"),
                "recorded_at": "2026-01-01T11:00:00.000000Z",
            });
            let salt = [i as u8; 32];
            let part = json!({"/actor/display": format!("Ann {i}")});
            if subject == "cust-1" {
                skeleton["pii_commitment"] =
                    json!(evident_wire::entry::commitment(&salt, &jcs::to_vec(&part)));
            }
            let entry = jcs::to_vec(&skeleton);
            tree.append(&entry);
            events.push((i, skeleton, entry, salt, part));
        }
        let size = tree.size();
        let checkpoint = Checkpoint::new(ORIGIN, size, tree.root()).sign(&[&signer]).unwrap();
        let query = json!({ "subject": wanted });
        let mut lines = vec![json!({
            "format": FORMAT, "origin": ORIGIN, "tree_size": size.0, "checkpoint": checkpoint,
            "vkey": signer.verifier().to_vkey(), "query": query,
        })];
        let mut matching: Vec<_> = events.into_iter().filter(|e| e.1["subject"] == wanted).collect();
        matching.sort_by_key(|e| (e.1["time"].as_str().unwrap().to_owned(), e.0));
        let mut digest = ExportDigest::default();
        let mut previous = Value::Null;
        for (index, skeleton, entry, salt, part) in matching {
            digest.add(index, &entry);
            let proof = tree.inclusion_proof(LeafIndex(index), size).unwrap();
            let mut line = json!({
                "index": index, "event_id": skeleton["event_id"], "entry": BASE64.encode(&entry),
                "proof": proof.iter().map(Hash::to_base64).collect::<Vec<_>>(), "event": skeleton,
            });
            if !previous.is_null() {
                line["previous"] = previous;
            }
            previous = json!({"index": index, "event_id": skeleton["event_id"]});
            if personal {
                line["event"] =
                    evident_wire::entry::rehydrate(&skeleton, &salt, &jcs::to_vec(&part)).unwrap();
                line["personal"] = json!({"salt": BASE64.encode(salt), "part": part});
            }
            lines.push(line);
        }
        let count = digest.count();
        let text = manifest_text(ORIGIN, size, count, &digest.finish(), &query);
        lines.push(json!({"manifest": sign_note(&text, &[&signer]).unwrap(), "last": previous}));
        (lines, signer.verifier())
    }

    /// Writes `lines` as a bundle, changes it with `change`, and checks the verdict: `Ok` with the
    /// number of events, or an error whose message contains `expect`.
    fn check(personal: bool, change: impl FnOnce(&mut Vec<Value>), expect: Result<u64, &str>) {
        let (mut lines, verifier) = bundle(personal);
        change(&mut lines);
        let dir = tempfile::tempdir().unwrap();
        let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
        std::fs::write(dir.path().join(BUNDLE_FILE), text).unwrap();
        let verdict = verify_bundle(dir.path(), &[verifier], Some(ORIGIN));
        match (verdict, expect) {
            (Ok(report), Ok(count)) => {
                assert_eq!(report.events, count);
                assert_eq!(report.personal_included, if personal { count } else { 0 });
            }
            (Err(err), Err(expect)) => {
                let message = err.to_string();
                assert!(message.contains(expect), "{message:?} does not contain {expect:?}");
                assert!(err.is_tamper_evidence());
            }
            (verdict, expect) => panic!("got {verdict:?}, expected {expect:?}"),
        }
    }

    fn entry_of(line: &Value) -> Value {
        serde_json::from_slice(&BASE64.decode(line["entry"].as_str().unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn a_genuine_bundle_verifies_with_and_without_personal_parts() {
        check(false, |_| {}, Ok(4));
        check(true, |_| {}, Ok(4));
        // Oldest first: the event with the highest index has the earliest time.
        let (lines, _) = bundle(false);
        assert_eq!(lines[1]["index"], 6);
    }

    #[test]
    fn a_changed_entry_fails_naming_its_event() {
        let change = |lines: &mut Vec<Value>| {
            let mut entry = entry_of(&lines[2]);
            entry["outcome"] = json!("failure");
            lines[2]["entry"] = json!(BASE64.encode(jcs::to_vec(&entry)));
            lines[2]["event"] = entry;
        };
        check(false, change, Err("line 3 (index 4, event_id 00000000-0000-7000-8000-000000000004)"));
        check(false, change, Err("inclusion proof does not lead to the checkpoint's root"));
    }

    #[test]
    fn a_changed_event_or_personal_part_fails_naming_where() {
        check(
            false,
            |lines| lines[1]["event"]["actor"]["id"] = json!("mallory"),
            Err("differs from its entry"),
        );
        check(false, |lines| lines[1]["event"]["actor"]["id"] = json!("mallory"), Err("\"/actor/id\""));
        check(
            true,
            |lines| lines[1]["personal"]["part"]["/actor/display"] = json!("Eve"),
            Err("pii_commitment"),
        );
        check(true, |lines| lines[1]["event"]["actor"]["display"] = json!("Eve"), Err("\"/actor/display\""));
        // Personal values in an event without its personal part are not what the entry says.
        check(
            true,
            |lines| {
                lines[1].as_object_mut().unwrap().remove("personal");
            },
            Err("no personal part is included"),
        );
    }

    #[test]
    fn dropped_added_reordered_or_duplicated_events_fail() {
        check(false, |lines| drop(lines.remove(2)), Err("it lists 4 events, the bundle holds 3"));
        // The dropped event is named, wherever it was.
        for at in [1, 2, 4] {
            let (lines, _) = bundle(false);
            let named = format!(
                "missing: index {} (event_id {})",
                lines[at]["index"],
                lines[at]["event_id"].as_str().unwrap()
            );
            check(false, move |lines| drop(lines.remove(at)), Err(&named));
        }
        // In a genuine bundle every link names the line before it.
        check(false, |lines| lines[3]["previous"]["index"] = json!(0), Err("line 4: its link names index 0"));
        check(false, |lines| lines.swap(1, 2), Err("out of order"));
        check(false, |lines| lines.insert(2, lines[1].clone()), Err("appears twice"));
        // A genuine event of the log (its proof checks out) that the query does not select.
        let (other, _) = bundle_of(false, "cust-2");
        let foreign = other[1].clone();
        assert_eq!(foreign["index"], 7);
        check(
            false,
            move |lines| lines.insert(1, foreign),
            Err(
                "(index 7, event_id 00000000-0000-7000-8000-000000000007): does not match the bundle's query: /subject is \"cust-2\", the query asks for \"cust-1\"",
            ),
        );
    }

    #[test]
    fn a_changed_query_checkpoint_or_trailer_fails() {
        check(
            false,
            |lines| lines[0]["query"] = json!({"subject": "cust-2"}),
            Err("does not match the bundle's query"),
        );
        check(
            false,
            |lines| lines[0]["query"] = json!({"subject": "cust-1", "type": "customer.viewed"}),
            Err("signed for the query"),
        );
        check(false, |lines| drop(lines.pop()), Err("the bundle is truncated"));
        check(false, |lines| lines[0]["tree_size"] = json!(7), Err("tree_size 7"));
        check(
            false,
            |lines| {
                let checkpoint = lines[0]["checkpoint"].as_str().unwrap().replacen("\n8\n", "\n7\n", 1);
                lines[0]["checkpoint"] = json!(checkpoint);
            },
            Err("bad signature"),
        );
        check(
            false,
            |lines| lines[0]["format"] = json!("evident-export/v2"),
            Err("is not \"evident-export/v1\""),
        );
    }

    #[test]
    fn another_key_or_origin_is_refused() {
        let (lines, _) = bundle(false);
        let dir = tempfile::tempdir().unwrap();
        let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
        std::fs::write(dir.path().join(BUNDLE_FILE), text).unwrap();
        let other = Signer::from_seed(ORIGIN, [1; 32]).unwrap().verifier();
        let err = verify_bundle(dir.path(), &[other], None).unwrap_err();
        assert!(err.to_string().contains("not signed by a trusted key"), "{err}");
        let (_, right) = bundle(false);
        let err = verify_bundle(dir.path(), &[right], Some("evident.test/other")).unwrap_err();
        assert!(err.to_string().contains("not the expected"), "{err}");
        let err = verify_bundle(&dir.path().join("missing"), &[], None).unwrap_err();
        assert!(!err.is_tamper_evidence(), "{err}");
    }

    #[test]
    fn derived_views_must_say_what_the_bundle_says() {
        let (lines, verifier) = bundle(true);
        let dir = tempfile::tempdir().unwrap();
        let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
        std::fs::write(dir.path().join(BUNDLE_FILE), text).unwrap();
        let mut reader = BundleReader::open(dir.path()).unwrap();
        let (mut jsonl, mut csv_out) = (String::new(), csv::Writer::from_writer(Vec::new()));
        csv_out.write_record(CSV_COLUMNS).unwrap();
        while let Some(Line::Event(event)) = reader.next_line().unwrap() {
            jsonl.push_str(&format!("{}\n", event.event));
            csv_out.write_record(csv_record(&event)).unwrap();
        }
        let csv_text = String::from_utf8(csv_out.into_inner().unwrap()).unwrap();
        let verify = |jsonl: &str, csv_text: &str| {
            std::fs::write(dir.path().join(EVENTS_JSONL), jsonl).unwrap();
            std::fs::write(dir.path().join(EVENTS_CSV), csv_text).unwrap();
            verify_bundle(dir.path(), std::slice::from_ref(&verifier), Some(ORIGIN))
                .map_err(|e| e.to_string())
        };
        let report = verify(&jsonl, &csv_text).unwrap();
        assert!(report.checked_jsonl && report.checked_csv);
        let err = verify(&jsonl.replacen("Ann", "Eve", 1), &csv_text).unwrap_err();
        assert!(err.starts_with("events.jsonl line 1 (index 6,"), "{err}");
        let short: String = jsonl.lines().take(3).map(|l| format!("{l}\n")).collect();
        let err = verify(&short, &csv_text).unwrap_err();
        assert!(err.contains("line 4 (index 0,") && err.contains("missing"), "{err}");
        let err = verify(&jsonl, &csv_text.replacen("agent-7", "agent-8", 1)).unwrap_err();
        assert!(err.starts_with("events.csv row 1 (index 6,") && err.contains("column actor"), "{err}");
    }
}
