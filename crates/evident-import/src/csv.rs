//! CSV files with a header row, mapped onto events by the user: `--map FIELD=COLUMN` takes a field
//! from a column, `--set FIELD=VALUE` gives it a constant (a `--set` wins over a `--map`).
//!
//! | event field | from |
//! | --- | --- |
//! | `id` | the column mapped to `id`; without one, `csv-` and the keyed hash of the row's cells ([`Pseudonyms::record_id`]: the cells may be personal, so no plain hash of them goes to a clear field; a re-run with the same key stores nothing twice, and identical rows are one event) |
//! | `source`, `type`, `actor.id`, `actor.display`, `actor.on_behalf_of`, `actor.session`, `actor.auth.method`, `subject`, `target.type`, `target.id`, `target.display`, `reason`, `origin.ip`, `origin.user_agent`, `origin.host`, `origin.service`, `correlation.request_id`, `correlation.correlation_id`, `correlation.traceparent` | the cell, as it is |
//! | `action`, `outcome`, `actor.type`, `severity` | the cell, lowercased; for `outcome` also `ok`, `succeeded`, `true`, `allowed` → `success` and `failed`, `error`, `false`, `denied` → `failure` |
//! | `time` | RFC 3339; with `--time-format`, that `strftime` format (UTC unless it has an offset); also `YYYY-MM-DD HH:MM:SS[.f]` (UTC) and Unix seconds or milliseconds |
//! | `actor.auth.mfa` | `true`/`false` (also `yes`/`no`, `1`/`0`) |
//! | `change.field`, `change.before`, `change.after` | one change (`changes[0]`); `before`/`after` are parsed as JSON when they are JSON, else kept as text; a successful create, update or delete row without one gets the change `event::record_changes` makes (the whole record) |
//! | `data_classes` | a list separated by commas, semicolons or spaces |
//! | `metadata.<KEY>` | the cell, under `KEY` |
//!
//! Required, mapped or set: `source`, `type`, `action`, `time`, `actor.id`, `target.type`,
//! `target.id`, `outcome`, and at least one `origin.*`. An empty cell means the field is absent. A
//! row with a missing or empty required column, or a time that cannot be read, is a bad line; the
//! server reports what else is wrong with an event.

use std::collections::BTreeMap;
use std::io::Read;
use std::rc::Rc;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::input::{BytesRead, Input, Place, open_reader};
use crate::pseudonym::Pseudonyms;
use crate::{Error, Mapped, Record, Result, event};

/// Fields that take a cell as it is, and where they go in the event.
const TEXT_FIELDS: &[(&str, &[&str])] = &[
    ("id", &["id"]),
    ("source", &["source"]),
    ("type", &["type"]),
    ("action", &["action"]),
    ("time", &["time"]),
    ("actor.id", &["actor", "id"]),
    ("actor.type", &["actor", "type"]),
    ("actor.display", &["actor", "display"]),
    ("actor.on_behalf_of", &["actor", "on_behalf_of"]),
    ("actor.session", &["actor", "session"]),
    ("actor.auth.method", &["actor", "auth", "method"]),
    ("actor.auth.mfa", &["actor", "auth", "mfa"]),
    ("subject", &["subject"]),
    ("target.type", &["targets", "type"]),
    ("target.id", &["targets", "id"]),
    ("target.display", &["targets", "display"]),
    ("outcome", &["outcome"]),
    ("reason", &["reason"]),
    ("change.field", &["changes", "field"]),
    ("change.before", &["changes", "before"]),
    ("change.after", &["changes", "after"]),
    ("origin.ip", &["origin", "ip"]),
    ("origin.user_agent", &["origin", "user_agent"]),
    ("origin.host", &["origin", "host"]),
    ("origin.service", &["origin", "service"]),
    ("correlation.request_id", &["correlation", "request_id"]),
    ("correlation.correlation_id", &["correlation", "correlation_id"]),
    ("correlation.traceparent", &["correlation", "traceparent"]),
    ("severity", &["severity"]),
    ("data_classes", &["data_classes"]),
];

const REQUIRED: &[&str] =
    &["source", "type", "action", "time", "actor.id", "target.type", "target.id", "outcome"];

/// `--map` and `--set`, checked.
pub struct Mapping {
    /// Field → column name.
    columns: BTreeMap<String, String>,
    /// Field → constant.
    constants: BTreeMap<String, String>,
    delimiter: u8,
    time_format: Option<String>,
}

/// A mapping resolved against one file's header: field → column index.
struct Columns {
    index: Vec<(String, usize, String)>,
}

/// The fields a mapping can name, for messages: `id, source, ..., metadata.<KEY>`.
pub fn known_fields() -> String {
    let mut fields: Vec<&str> = TEXT_FIELDS.iter().map(|(name, _)| *name).collect();
    fields.push("metadata.<KEY>");
    fields.join(", ")
}

fn is_known(field: &str) -> bool {
    TEXT_FIELDS.iter().any(|(name, _)| *name == field)
        || field.strip_prefix("metadata.").is_some_and(|key| !key.is_empty() && key.chars().count() <= 64)
}

impl Mapping {
    /// The mapping from `FIELD=COLUMN` texts (`--map`) and `FIELD=VALUE` texts (`--set`), the field
    /// delimiter and the time format (chrono `strftime` syntax) of times not in RFC 3339.
    pub fn from_args(
        maps: &[String],
        sets: &[String],
        delimiter: char,
        time_format: Option<String>,
    ) -> Result<Mapping> {
        let split = |flag: &str, text: &String| -> Result<(String, String)> {
            let (field, value) = text.split_once('=').ok_or_else(|| {
                Error::Input(format!("{flag} {text:?}: expected FIELD={}", flag_value(flag)))
            })?;
            let field = field.trim().to_owned();
            if !is_known(&field) {
                return Err(Error::Input(format!(
                    "{flag} {text:?}: unknown field {field:?}; the fields are: {}",
                    known_fields()
                )));
            }
            Ok((field, value.to_owned()))
        };
        let columns: BTreeMap<String, String> =
            maps.iter().map(|map| split("--map", map)).collect::<Result<_>>()?;
        let constants: BTreeMap<String, String> =
            sets.iter().map(|set| split("--set", set)).collect::<Result<_>>()?;
        let given = |field: &str| columns.contains_key(field) || constants.contains_key(field);
        let missing: Vec<&str> = REQUIRED.iter().copied().filter(|field| !given(field)).collect();
        let has_origin =
            ["origin.ip", "origin.user_agent", "origin.host", "origin.service"].iter().any(|f| given(f));
        if !missing.is_empty() || !has_origin {
            let mut missing = missing.join(", ");
            if !has_origin {
                if !missing.is_empty() {
                    missing.push_str(", ");
                }
                missing.push_str("one of origin.ip, origin.user_agent, origin.host, origin.service");
            }
            return Err(Error::Input(format!(
                "the CSV mapping lacks {missing}: map a column with --map FIELD=COLUMN or give a constant \
                 with --set FIELD=VALUE"
            )));
        }
        if !delimiter.is_ascii() {
            return Err(Error::Input("--delimiter must be one ASCII character".into()));
        }
        Ok(Mapping { columns, constants, delimiter: delimiter as u8, time_format })
    }

    /// Whether the mapping fits the header of `input`: every mapped column must be there (exactly,
    /// or else ignoring case).
    pub fn check(&self, input: &Input) -> Result<()> {
        self.columns(input).map(|_| ())
    }

    /// The mapping against the header of `input`.
    fn columns(&self, input: &Input) -> Result<Columns> {
        let (reader, _) = open_reader(&input.path, &input.name)?;
        let mut csv = self.reader(reader);
        let header = csv
            .headers()
            .map_err(|err| Error::Input(format!("cannot read the header row of {}: {err}", input.name)))?;
        let names: Vec<String> = header.iter().map(|name| name.trim().to_owned()).collect();
        let mut index = Vec::new();
        for (field, column) in &self.columns {
            if self.constants.contains_key(field) {
                continue;
            }
            let at = names
                .iter()
                .position(|name| name == column.trim())
                .or_else(|| names.iter().position(|name| name.eq_ignore_ascii_case(column.trim())));
            match at {
                Some(at) => index.push((field.clone(), at, column.clone())),
                None => {
                    return Err(Error::Input(format!(
                        "{}: no column {column:?} (mapped to {field}) in the header row; its columns are: {}",
                        input.name,
                        names.join(", ")
                    )));
                }
            }
        }
        Ok(Columns { index })
    }

    fn reader<R: std::io::Read>(&self, reader: R) -> csv::Reader<R> {
        csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .flexible(true)
            .has_headers(true)
            .from_reader(reader)
    }
}

fn flag_value(flag: &str) -> &'static str {
    if flag == "--map" { "COLUMN" } else { "VALUE" }
}

/// The rows of a CSV file, each mapped onto an event.
pub(crate) struct Rows<'i> {
    name: &'i str,
    file: Rc<str>,
    csv: csv::Reader<Box<dyn Read>>,
    counter: BytesRead,
    mapping: &'i Mapping,
    keys: &'i Pseudonyms,
    columns: Columns,
    row: csv::ByteRecord,
}

impl<'i> Rows<'i> {
    pub(crate) fn open(input: &'i Input, mapping: &'i Mapping, keys: &'i Pseudonyms) -> Result<Rows<'i>> {
        let columns = mapping.columns(input)?;
        let (reader, counter) = open_reader(&input.path, &input.name)?;
        let csv = mapping.reader(reader);
        let file = Rc::from(input.name.as_str());
        Ok(Rows {
            name: &input.name,
            file,
            csv,
            counter,
            mapping,
            keys,
            columns,
            row: csv::ByteRecord::new(),
        })
    }

    /// The next row's event, or why there is none; `None` at the end. Blank rows are skipped.
    pub(crate) fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            let line = self.csv.position().line();
            let read = self.csv.read_byte_record(&mut self.row);
            let line_of_row = self.row.position().map_or(line, |p| p.line());
            let place = Place { file: self.file.clone(), line: line_of_row, record: None };
            return match read {
                Ok(false) => Ok(None),
                Ok(true) if self.row.iter().all(|cell| cell.trim_ascii().is_empty()) => continue,
                Ok(true) => {
                    let event = row_event(&self.row, self.mapping, &self.columns, self.keys);
                    Ok(Some(Record { place, mapped: event.into() }))
                }
                Err(err) if err.is_io_error() => {
                    let context = format!("cannot read {}: line {line}", self.name);
                    match err.into_kind() {
                        csv::ErrorKind::Io(source) => Err(Error::Io { context, source }),
                        _ => unreachable!("an I/O error"),
                    }
                }
                Err(err) => Ok(Some(Record { place, mapped: Mapped::Bad(format!("not valid CSV: {err}")) })),
            };
        }
    }

    /// Bytes of the file (on disk) read so far.
    pub(crate) fn position(&self) -> u64 {
        self.counter.get()
    }
}

/// The event of one row.
fn row_event(
    row: &csv::ByteRecord,
    mapping: &Mapping,
    columns: &Columns,
    keys: &Pseudonyms,
) -> Result<Value, String> {
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    for (field, at, column) in &columns.index {
        let cell = row.get(*at).ok_or_else(|| {
            format!("the row has {} columns; column {column:?} ({field}) is missing", row.len())
        })?;
        let cell = std::str::from_utf8(cell)
            .map_err(|_| format!("column {column:?} ({field}) is not valid UTF-8"))?
            .trim();
        if cell.is_empty() {
            if REQUIRED.contains(&field.as_str()) || field == "id" {
                return Err(format!("column {column:?} ({field}) is empty"));
            }
            continue;
        }
        values.insert(field, cell.to_owned());
    }
    for (field, value) in &mapping.constants {
        values.insert(field, value.clone());
    }
    let column_of = |field: &str| {
        columns
            .index
            .iter()
            .find(|(f, _, _)| f == field)
            .map_or_else(|| "--set".to_owned(), |(_, _, c)| format!("column {c:?}"))
    };

    let mut event = Map::new();
    if !values.contains_key("id") {
        let cells: Vec<String> = row.iter().map(|cell| String::from_utf8_lossy(cell).into_owned()).collect();
        values.insert("id", keys.record_id("csv-", &json!(cells)));
    }
    for (field, value) in values {
        if let Some(key) = field.strip_prefix("metadata.") {
            let metadata = event.entry("metadata").or_insert_with(|| json!({}));
            metadata[key] = json!(value);
            continue;
        }
        let value = match field {
            "time" => json!(parse_time(&value, mapping.time_format.as_deref()).ok_or_else(|| format!(
                "{} (time): cannot read {value:?} as a time; use RFC 3339 (2024-05-01T10:00:00Z) or give --time-format",
                column_of("time")
            ))?),
            "action" | "actor.type" | "severity" => json!(value.to_lowercase()),
            "outcome" => json!(outcome(&value)),
            "actor.auth.mfa" => json!(boolean(&value).ok_or_else(|| format!(
                "{} (actor.auth.mfa): {value:?} is not true or false",
                column_of("actor.auth.mfa")
            ))?),
            "change.before" | "change.after" => serde_json::from_str(&value).unwrap_or(json!(value)),
            "data_classes" => json!(
                value
                    .split([',', ';', ' '])
                    .map(str::trim)
                    .filter(|class| !class.is_empty())
                    .map(str::to_lowercase)
                    .collect::<Vec<_>>()
            ),
            _ => json!(value),
        };
        let path =
            TEXT_FIELDS.iter().find(|(name, _)| *name == field).map(|(_, path)| *path).expect("checked");
        insert(&mut event, path, value);
    }
    if !event.contains_key("changes") {
        let text = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or("").to_owned();
        let target = event.get("targets").map_or(Value::Null, |targets| targets[0].clone());
        let record = event::record_changes(&text("action"), &text("outcome"), Vec::new(), &target);
        if let Some(changes) = event::changes(record, None) {
            event.insert("changes".to_owned(), changes);
        }
    }
    Ok(Value::Object(event))
}

/// Puts `value` at `path`; `targets` and `changes` hold one object.
fn insert(event: &mut Map<String, Value>, path: &[&str], value: Value) {
    let (first, rest) = path.split_first().expect("paths are not empty");
    if rest.is_empty() {
        event.insert((*first).to_owned(), value);
        return;
    }
    let slot = if matches!(*first, "targets" | "changes") {
        let list = event.entry(*first).or_insert_with(|| json!([{}]));
        &mut list[0]
    } else {
        event.entry(*first).or_insert_with(|| json!({}))
    };
    if let Value::Object(inner) = slot {
        insert(inner, rest, value);
    }
}

fn outcome(text: &str) -> String {
    let lower = text.to_lowercase();
    match lower.as_str() {
        "ok" | "succeeded" | "successful" | "true" | "allowed" => "success".into(),
        "failed" | "fail" | "error" | "false" | "denied" => "failure".into(),
        _ => lower,
    }
}

fn boolean(text: &str) -> Option<bool> {
    match text.to_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// A time as RFC 3339 (UTC, microseconds).
fn parse_time(text: &str, format: Option<&str>) -> Option<String> {
    let utc = |time: DateTime<Utc>| time.to_rfc3339_opts(SecondsFormat::Micros, true);
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(utc(time.with_timezone(&Utc)));
    }
    if let Some(format) = format {
        if let Ok(time) = DateTime::parse_from_str(text, format) {
            return Some(utc(time.with_timezone(&Utc)));
        }
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some(utc(time.and_utc()));
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some(utc(time.and_utc()));
        }
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let number: i64 = text.parse().ok()?;
        return match text.len() {
            1..=11 => DateTime::from_timestamp(number, 0).map(utc),
            12..=14 => DateTime::from_timestamp_millis(number).map(utc),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_in_common_shapes_become_rfc_3339() {
        for (text, format, expected) in [
            ("2024-05-01T10:00:00+02:00", None, Some("2024-05-01T08:00:00.000000Z")),
            ("2024-05-01 10:00:00", None, Some("2024-05-01T10:00:00.000000Z")),
            ("2024-05-01 10:00:00.25", None, Some("2024-05-01T10:00:00.250000Z")),
            ("1714557600", None, Some("2024-05-01T10:00:00.000000Z")),
            ("1714557600123", None, Some("2024-05-01T10:00:00.123000Z")),
            ("01/05/2024 10:00", Some("%d/%m/%Y %H:%M"), Some("2024-05-01T10:00:00.000000Z")),
            ("yesterday", None, None),
            ("01/05/2024", None, None),
        ] {
            assert_eq!(parse_time(text, format).as_deref(), expected, "{text}");
        }
    }
}
