//! Evident's importers: other systems' audit records turned into Evident producer events
//! (`EVENT-SCHEMA.md` §1), ready for `POST /v1/events`. A pure library: it reads files (gzip
//! compressed too) and yields, record by record, the event as JSON or the problem that kept the
//! record from becoming one, with the file and line it came from. It sends nothing and knows no
//! HTTP and no engine: `evident ingest` batches, posts and reports what it yields.
//!
//! Formats ([`Format`], told from the file by [`open`] unless one is asked): Evident's own events
//! as NDJSON ([`ndjson`]), CSV with a column mapping ([`csv`]), AWS CloudTrail ([`cloudtrail`]),
//! Kubernetes audit events ([`k8s`]) and GitHub organisation audit logs ([`github`]). Each importer
//! documents its mapping field by field; all of them derive a stable `id` from the source record,
//! so importing the same file again gives the same events (the server stores nothing twice).
//! How files are laid out and told apart is in [`input`].
//!
//! ```
//! use evident_import::{Format, Options};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let path = std::env::temp_dir().join(format!("evident-import-doc-{}.json", std::process::id()));
//! std::fs::write(&path, r#"{"Records": [{
//!     "eventVersion": "1.08", "eventID": "3f0d5c8e-0001", "eventTime": "2026-05-01T10:00:00Z",
//!     "eventSource": "iam.amazonaws.com", "eventName": "CreateUser", "awsRegion": "us-east-1",
//!     "sourceIPAddress": "203.0.113.7", "recipientAccountId": "123456789012",
//!     "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice"},
//!     "requestParameters": {"userName": "bob"}
//! }, "not a record"]}"#)?;
//!
//! let input = evident_import::open(&path, None)?; // None: tell the format from the file
//! assert_eq!(input.format, Format::CloudTrail);
//! let mut events = Vec::new();
//! let mut problems = Vec::new();
//! for record in input.events(&Options::default())? {
//!     let record = record?; // Err only when the file cannot be read
//!     match record.event {
//!         Ok(event) => events.push(event),
//!         Err(problem) => problems.push(format!("{}: {problem}", record.place)),
//!     }
//! }
//! assert_eq!(events[0]["type"], "aws.iam.createuser");
//! assert_eq!(events[0]["action"], "create");
//! assert_eq!(problems.len(), 1); // the string is not a CloudTrail record
//! assert!(problems[0].contains("(record 2)"), "{}", problems[0]);
//! # std::fs::remove_file(&path)?;
//! # Ok(())
//! # }
//! ```

pub mod cloudtrail;
pub mod csv;
mod error;
mod event;
pub mod github;
pub mod input;
pub mod k8s;
pub mod ndjson;

use serde_json::Value;

pub use error::{Error, Result};
pub use input::{Input, Place, open};

/// A file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
    CloudTrail,
    K8s,
    GitHub,
}

impl Format {
    /// The format's name, for people.
    pub fn name(self) -> &'static str {
        match self {
            Format::Ndjson => "Evident NDJSON",
            Format::Csv => "CSV",
            Format::CloudTrail => "AWS CloudTrail",
            Format::K8s => "Kubernetes audit",
            Format::GitHub => "GitHub audit log",
        }
    }

    /// Whether a JSON record looks like one of this format (never, for CSV).
    pub fn looks_like(self, record: &Value) -> bool {
        match self {
            Format::CloudTrail => cloudtrail::looks_like(record),
            Format::K8s => k8s::looks_like(record),
            Format::GitHub => github::looks_like(record),
            Format::Ndjson => ndjson::looks_like(record),
            Format::Csv => false,
        }
    }

    /// The event of one JSON record of this format, or why there cannot be one.
    fn event(self, record: Value, options: &Options) -> Result<Value, String> {
        match self {
            Format::Ndjson => ndjson::event(record),
            Format::CloudTrail => cloudtrail::event(&record),
            Format::K8s => k8s::event(&record, &options.cluster),
            Format::GitHub => github::event(&record),
            Format::Csv => unreachable!("CSV rows are mapped by csv::Rows"),
        }
    }
}

/// How records become events.
pub struct Options {
    /// Kubernetes: the cluster's name, in the events' source `//k8s/<cluster>`.
    pub cluster: String,
    /// CSV: which column (or constant) gives which field; CSV files cannot be read without one.
    pub csv: Option<csv::Mapping>,
}

impl Default for Options {
    fn default() -> Options {
        Options { cluster: k8s::DEFAULT_CLUSTER.to_owned(), csv: None }
    }
}

/// One record of a file: where it came from, and its event or why there is none (a line that is
/// not JSON, a record that is not of the format, a CSV row missing a required cell, ...).
#[derive(Debug)]
pub struct Record {
    pub place: Place,
    pub event: Result<Value, String>,
}

/// The records of one file, in order, each mapped onto an event ([`Input::events`]). An `Err` item
/// means the file could not be read further.
pub struct Events<'i> {
    source: Source<'i>,
}

enum Source<'i> {
    Json { records: input::Records<'i>, format: Format, options: &'i Options },
    Csv(csv::Rows<'i>),
}

impl Input {
    /// The events of this file's records. CSV files need [`Options::csv`].
    pub fn events<'i>(&'i self, options: &'i Options) -> Result<Events<'i>> {
        let source = match (self.format, &options.csv) {
            (Format::Csv, Some(mapping)) => Source::Csv(csv::Rows::open(self, mapping)?),
            (Format::Csv, None) => {
                return Err(Error::Input(format!("{} is CSV: it needs a column mapping", self.name)));
            }
            (format, _) => Source::Json { records: self.json_records()?, format, options },
        };
        Ok(Events { source })
    }
}

impl Events<'_> {
    /// The next record; `None` at the end. Errors only when the file cannot be read.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        match &mut self.source {
            Source::Json { records, format, options } => {
                let Some(record) = records.next_record()? else { return Ok(None) };
                let event = record.value.and_then(|value| format.event(value, options));
                Ok(Some(Record { place: record.place, event }))
            }
            Source::Csv(rows) => rows.next_record(),
        }
    }

    /// Bytes of the file (on disk, compressed for a `.gz`) read so far: progress against
    /// [`Input::size`].
    pub fn position(&self) -> u64 {
        match &self.source {
            Source::Json { records, .. } => records.position(),
            Source::Csv(rows) => rows.position(),
        }
    }
}

impl Iterator for Events<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        self.next_record().transpose()
    }
}
