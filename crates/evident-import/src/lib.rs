//! Evident's importers: other systems' audit records turned into Evident producer events
//! (`EVENT-SCHEMA.md` §1), ready for `POST /v1/events`. A pure library: it reads files (gzip
//! compressed too) and yields, record by record, the event as JSON or the problem that kept the
//! record from becoming one, with the file and line it came from. It sends nothing and knows no
//! HTTP and no engine: `evident ingest` batches, posts and reports what it yields.
//!
//! Formats ([`Format`], told from the file by [`open`] unless one is asked): Evident's own events
//! as NDJSON ([`ndjson`]), CSV with a column mapping ([`csv`]), AWS CloudTrail ([`cloudtrail`]),
//! Kubernetes audit events, also as GKE and AKS deliver them ([`k8s`]), GitHub organisation and
//! enterprise audit logs ([`github`]), the Okta System Log ([`okta`]), the Azure Activity Log
//! ([`azure`]), Microsoft Entra ID sign-in logs ([`entra`]), Google Workspace admin audit
//! activities ([`workspace`]) and PostgreSQL `pgaudit` lines in CSV logs ([`pgaudit`]). Each
//! importer documents its mapping field by field (and `docs/importers.md` gathers them); all of
//! them derive a stable `id` from the source record, so importing the same file again gives the
//! same events (the server stores nothing twice). How files are laid out and told apart is in
//! [`input`].
//!
//! Personal values never go to clear fields: where a source names a person only by a personal
//! value (a user name, an e-mail address, an access key id), the clear field gets its pseudonym
//! ([`pseudonym`]) and the value goes where the schema seals it (`actor.display`,
//! `targets[].display`, `changes`); free text is redacted the same way.
//!
//! ```
//! use evident_import::{Format, Mapped, Options, Pseudonyms};
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
//! let options = Options::new(Pseudonyms::new([7; 32])); // the key: Pseudonyms::load_or_create
//! let mut events = Vec::new();
//! let mut problems = Vec::new();
//! for record in input.events(&options)? {
//!     let record = record?; // Err only when the file cannot be read
//!     match record.mapped {
//!         Mapped::Event(event) => events.push(event),
//!         Mapped::Skipped(why) | Mapped::Bad(why) => problems.push(format!("{}: {why}", record.place)),
//!     }
//! }
//! assert_eq!(events[0]["type"], "aws.iam.createuser");
//! assert_eq!(events[0]["action"], "create");
//! // A user name is personal: the actor's id is its pseudonym, the name is sealed as its display.
//! assert_eq!(events[0]["actor"]["id"], format!("arn:aws:iam::123456789012:user/{}", options.pseudonyms.of("alice")));
//! assert_eq!(events[0]["actor"]["display"], "alice");
//! assert_eq!(problems.len(), 1); // the string is not a CloudTrail record
//! assert!(problems[0].contains("(record 2)"), "{}", problems[0]);
//! # std::fs::remove_file(&path)?;
//! # Ok(())
//! # }
//! ```

pub mod azure;
pub mod cloudtrail;
pub mod csv;
pub mod entra;
mod error;
mod event;
pub mod github;
pub mod input;
pub mod k8s;
pub mod ndjson;
pub mod okta;
pub mod pgaudit;
pub mod pseudonym;
pub mod workspace;

use std::collections::VecDeque;

use serde_json::Value;

pub use error::{Error, Result};
pub use input::{Input, Place, open};
pub use pseudonym::Pseudonyms;

/// A file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
    CloudTrail,
    K8s,
    GitHub,
    Okta,
    AzureActivity,
    EntraSignIn,
    Workspace,
    Pgaudit,
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
            Format::Okta => "Okta System Log",
            Format::AzureActivity => "Azure Activity Log",
            Format::EntraSignIn => "Entra ID sign-in log",
            Format::Workspace => "Google Workspace audit",
            Format::Pgaudit => "PostgreSQL pgaudit CSV log",
        }
    }

    /// Whether a JSON record looks like one of this format (never, for CSV-based formats).
    pub fn looks_like(self, record: &Value) -> bool {
        match self {
            Format::CloudTrail => cloudtrail::looks_like(record),
            Format::K8s => k8s::looks_like(record),
            Format::GitHub => github::looks_like(record),
            Format::Okta => okta::looks_like(record),
            Format::AzureActivity => azure::looks_like(record),
            Format::EntraSignIn => entra::looks_like(record),
            Format::Workspace => workspace::looks_like(record),
            Format::Ndjson => ndjson::looks_like(record),
            Format::Csv | Format::Pgaudit => false,
        }
    }

    /// The events of one JSON record of this format (most records make one; a Google Workspace
    /// activity makes one per event it holds), or why there are none.
    fn events(self, record: Value, options: &Options) -> Vec<Mapped> {
        let one = |result: Result<Value, String>| vec![Mapped::from(result)];
        let keys = &options.pseudonyms;
        match self {
            Format::Ndjson => one(ndjson::event(record)),
            Format::CloudTrail => vec![cloudtrail::event(&record, keys)],
            Format::K8s => one(k8s::event(&record, options.cluster.as_deref(), keys)),
            Format::GitHub => one(github::event(&record, keys)),
            Format::Okta => one(okta::event(&record, options.okta_org.as_deref(), keys)),
            Format::AzureActivity => one(azure::event(&record, keys)),
            Format::EntraSignIn => one(entra::event(&record, keys)),
            Format::Workspace => workspace::events(&record, keys),
            Format::Csv | Format::Pgaudit => unreachable!("CSV rows are mapped by their own readers"),
        }
    }
}

/// How records become events.
pub struct Options {
    /// Kubernetes: the cluster's name, in the events' source `//k8s/<cluster>`; `None`: the name
    /// the record gives (GKE, AKS), else [`k8s::DEFAULT_CLUSTER`].
    pub cluster: Option<String>,
    /// Okta: the org's host (`acme.okta.com`), in the events' source `//okta/<org>`; `None`: the
    /// host of the request URL the record gives, if it gives one.
    pub okta_org: Option<String>,
    /// CSV: which column (or constant) gives which field; CSV files cannot be read without one.
    pub csv: Option<csv::Mapping>,
    /// The key of pseudonyms and derived ids.
    pub pseudonyms: Pseudonyms,
}

impl Options {
    pub fn new(pseudonyms: Pseudonyms) -> Options {
        Options { cluster: None, okta_org: None, csv: None, pseudonyms }
    }
}

/// What became of one record.
#[derive(Debug)]
pub enum Mapped {
    /// The event to send.
    Event(Value),
    /// Not an event, and rightly so (a CloudTrail digest file, a PostgreSQL log line that is not
    /// an audit record): why. Not a problem.
    Skipped(String),
    /// The record cannot become an event: why.
    Bad(String),
}

impl From<Result<Value, String>> for Mapped {
    fn from(result: Result<Value, String>) -> Mapped {
        match result {
            Ok(event) => Mapped::Event(event),
            Err(why) => Mapped::Bad(why),
        }
    }
}

/// One record of a file (or one event of it, when a record makes several): where it came from,
/// and its event, or why there is none (a line that is not JSON, a record that is not of the
/// format, a CSV row missing a required cell, ...).
#[derive(Debug)]
pub struct Record {
    pub place: Place,
    pub mapped: Mapped,
}

/// The records of one file, in order, each mapped onto events ([`Input::events`]). An `Err` item
/// means the file could not be read further.
pub struct Events<'i> {
    source: Source<'i>,
    /// Events of the last record not yet handed out.
    pending: VecDeque<Record>,
}

enum Source<'i> {
    Json { records: input::Records<'i>, format: Format, options: &'i Options },
    Csv(csv::Rows<'i>),
    Pgaudit(pgaudit::Rows<'i>),
}

impl Input {
    /// The events of this file's records. CSV files need [`Options::csv`].
    pub fn events<'i>(&'i self, options: &'i Options) -> Result<Events<'i>> {
        let source = match (self.format, &options.csv) {
            (Format::Csv, Some(mapping)) => Source::Csv(csv::Rows::open(self, mapping, &options.pseudonyms)?),
            (Format::Csv, None) => {
                return Err(Error::Input(format!("{} is CSV: it needs a column mapping", self.name)));
            }
            (Format::Pgaudit, _) => Source::Pgaudit(pgaudit::Rows::open(self, &options.pseudonyms)?),
            (format, _) => Source::Json { records: self.json_records()?, format, options },
        };
        Ok(Events { source, pending: VecDeque::new() })
    }
}

impl Events<'_> {
    /// The next record; `None` at the end. Errors only when the file cannot be read.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        if let Some(record) = self.pending.pop_front() {
            return Ok(Some(record));
        }
        match &mut self.source {
            Source::Json { records, format, options } => {
                let Some(record) = records.next_record()? else { return Ok(None) };
                let mapped = match record.value {
                    Ok(value) => format.events(value, options),
                    Err(why) => vec![Mapped::Bad(why)],
                };
                let place = record.place;
                self.pending.extend(mapped.into_iter().map(|mapped| Record { place: place.clone(), mapped }));
                Ok(self
                    .pending
                    .pop_front()
                    .or(Some(Record { place, mapped: Mapped::Skipped("the record holds no event".into()) })))
            }
            Source::Csv(rows) => rows.next_record(),
            Source::Pgaudit(rows) => rows.next_record(),
        }
    }

    /// Bytes of the file (on disk, compressed for a `.gz`) read so far: progress against
    /// [`Input::size`].
    pub fn position(&self) -> u64 {
        match &self.source {
            Source::Json { records, .. } => records.position(),
            Source::Csv(rows) => rows.position(),
            Source::Pgaudit(rows) => rows.position(),
        }
    }
}

impl Iterator for Events<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        self.next_record().transpose()
    }
}

#[cfg(test)]
mod tests {
    /// `docs/importers.md` shows each importer's mapping table; the module docs are where it is
    /// written, so the two must stay equal.
    #[test]
    fn docs_hold_every_mapping_table() {
        let docs = include_str!("../../../docs/importers.md");
        for (module, source) in [
            ("cloudtrail", include_str!("cloudtrail.rs")),
            ("k8s", include_str!("k8s.rs")),
            ("github", include_str!("github.rs")),
            ("okta", include_str!("okta.rs")),
            ("azure", include_str!("azure.rs")),
            ("entra", include_str!("entra.rs")),
            ("workspace", include_str!("workspace.rs")),
            ("pgaudit", include_str!("pgaudit.rs")),
            ("csv", include_str!("csv.rs")),
        ] {
            let rows: Vec<&str> = source.lines().filter_map(|line| line.strip_prefix("//! |")).collect();
            assert!(rows.len() > 5, "{module} has a mapping table");
            for row in rows {
                assert!(
                    docs.contains(&format!("\n|{row}\n")),
                    "docs/importers.md lacks {module}'s row |{row}"
                );
            }
        }
    }
}
