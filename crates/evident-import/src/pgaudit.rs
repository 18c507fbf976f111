//! PostgreSQL `pgaudit` records in a CSV log (`log_destination = 'csvlog'`): each row is one log
//! line (`log_time`, `user_name`, `database_name`, `process_id`, `connection_from`, `session_id`,
//! `session_line_num`, `command_tag`, `session_start_time`, `virtual_transaction_id`,
//! `transaction_id`, `error_severity`, `sql_state_code`, `message`, ... `application_name`,
//! `backend_type`: 23 to 26 columns, by server version), and pgaudit writes its records in
//! `message` as `AUDIT: <AUDIT_TYPE>,<STATEMENT_ID>,<SUBSTATEMENT_ID>,<CLASS>,<COMMAND>,
//! <OBJECT_TYPE>,<OBJECT_NAME>,<STATEMENT>,<PARAMETER>` (itself CSV). PostgreSQL's own lines
//! (connections, errors, checkpoints) are skipped, counted once.
//!
//! | event field | from the log line and its pgaudit record |
//! | --- | --- |
//! | `id` | `pg/<session_id>/<session_line_num>` (a session's lines are numbered; the session id is the backend's start time and process id) |
//! | `source` | `//postgresql/<database_name>` |
//! | `type` | `pg.<class>.<command>`, lowercased, spaces as `_`: `pg.read.select`, `pg.write.insert`, `pg.ddl.create_table`, `pg.role.grant` |
//! | `action` | see [`action`]: class `READ` → `read` (`COPY` → `export`); `WRITE`: `INSERT` → `create`, `UPDATE`, `MERGE` → `update`, `DELETE`, `TRUNCATE TABLE` → `delete`, `COPY` → `create`; `DDL` and `ROLE`: `CREATE …` → `create`, `ALTER …` → `update`, `DROP …` → `delete`, `GRANT` → `grant`, `REVOKE` → `revoke`; `MISC_SET` → `configure`; `FUNCTION`, `MISC` and the rest → `other` |
//! | `time` | `log_time` (UTC, or a numeric offset: set `log_timezone = 'UTC'`) |
//! | `actor.id` | `user_name` for PostgreSQL's own and cloud providers' administrative roles (`postgres`, `pg_*`, `rdsadmin`, `cloudsqladmin`, `azure_superuser`, …); any other role's name (often a person's) becomes its pseudonym |
//! | `actor.display` (sealed) | `user_name` of a pseudonymised role |
//! | `actor.type` | an administrative role → `admin`; else `user` |
//! | `actor.session` | the pseudonym of `session_id` |
//! | `targets` | `OBJECT_NAME` → `{"type": "pg.<object type>", "id": "<database>.<object name>"}` (`pg.table`, `pg.view`, `pg.function`, …); none (a `SESSION` record of a statement without objects): the database, `pg.database` |
//! | `outcome` | `success`: pgaudit writes a record when the statement runs, after parsing and permission checks; an error that ends it is PostgreSQL's own (skipped) line |
//! | `changes` (sealed) | successful create/update: the whole object (`after` its target), delete: `before` it, `after` null; and for every record `{"field": "/request", "after": {"statement", "parameter"}}`: statements and their parameters hold the data people asked for and wrote, so they are sealed, never in clear |
//! | `origin.ip` (sealed) | the address of `connection_from` (`host:port`); a host name goes to `origin.host`, a local socket (`[local]`) to neither |
//! | `origin.service` | `postgresql` |
//! | `correlation.correlation_id` | `<session_id>/<STATEMENT_ID>`: the records (one per sub-statement and object) of one statement |
//! | `metadata` | `audit_type` (`SESSION` or `OBJECT`), `statement_id`, `substatement_id`, `class`, `command`, `object_type`, `database`, `command_tag`, `process_id`, `virtual_transaction_id`, `transaction_id`, `application_name`, `backend_type`, `severity` |

use std::io::Read;
use std::rc::Rc;

use chrono::{DateTime, FixedOffset, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::event::{self, Metadata, limit};
use crate::input::{BytesRead, Input, Place, open_reader};
use crate::pseudonym::Pseudonyms;
use crate::{Error, Mapped, Record, Result};

/// Columns of the CSV log, by position.
mod column {
    pub const LOG_TIME: usize = 0;
    pub const USER_NAME: usize = 1;
    pub const DATABASE: usize = 2;
    pub const PROCESS_ID: usize = 3;
    pub const CONNECTION_FROM: usize = 4;
    pub const SESSION_ID: usize = 5;
    pub const SESSION_LINE: usize = 6;
    pub const COMMAND_TAG: usize = 7;
    pub const VIRTUAL_TRANSACTION_ID: usize = 9;
    pub const TRANSACTION_ID: usize = 10;
    pub const SEVERITY: usize = 11;
    pub const MESSAGE: usize = 13;
    pub const APPLICATION_NAME: usize = 22;
    pub const BACKEND_TYPE: usize = 23;
    /// The fewest columns a CSV log line has (PostgreSQL 9.0 to 12).
    pub const MIN: usize = 23;
}

fn csv_reader(reader: Box<dyn Read>) -> csv::Reader<Box<dyn Read>> {
    csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(reader)
}

/// Whether the file's first row is a PostgreSQL CSV log line: at least 23 columns, the first a
/// `log_time` (in any zone: a zone that cannot be read is said on each line).
pub(crate) fn looks_like(reader: Box<dyn Read>) -> bool {
    let mut row = csv::StringRecord::new();
    matches!(csv_reader(reader).read_record(&mut row), Ok(true))
        && row.len() >= column::MIN
        && row[column::LOG_TIME]
            .rsplit_once(' ')
            .is_some_and(|(local, _)| NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f").is_ok())
}

/// The rows of a CSV log, each mapped onto an event (or skipped).
pub(crate) struct Rows<'i> {
    name: &'i str,
    file: Rc<str>,
    csv: csv::Reader<Box<dyn Read>>,
    counter: BytesRead,
    keys: &'i Pseudonyms,
    row: csv::StringRecord,
}

impl<'i> Rows<'i> {
    pub(crate) fn open(input: &'i Input, keys: &'i Pseudonyms) -> Result<Rows<'i>> {
        let (reader, counter) = open_reader(&input.path, &input.name)?;
        let file = Rc::from(input.name.as_str());
        Ok(Rows {
            name: &input.name,
            file,
            csv: csv_reader(reader),
            counter,
            keys,
            row: csv::StringRecord::new(),
        })
    }

    /// The next line's event, or why there is none; `None` at the end.
    pub(crate) fn next_record(&mut self) -> Result<Option<Record>> {
        let line = self.csv.position().line();
        let read = self.csv.read_record(&mut self.row);
        let line = self.row.position().map_or(line, |position| position.line());
        let place = Place { file: self.file.clone(), line, record: None };
        match read {
            Ok(false) => Ok(None),
            Ok(true) => Ok(Some(Record { place, mapped: line_event(&self.row, self.keys) })),
            Err(err) if err.is_io_error() => {
                let context = format!("cannot read {}: line {line}", self.name);
                match err.into_kind() {
                    csv::ErrorKind::Io(source) => Err(Error::Io { context, source }),
                    _ => unreachable!("an I/O error"),
                }
            }
            Err(err) => {
                Ok(Some(Record { place, mapped: Mapped::Bad(format!("not a valid CSV log line: {err}")) }))
            }
        }
    }

    /// Bytes of the file (on disk) read so far.
    pub(crate) fn position(&self) -> u64 {
        self.counter.get()
    }
}

/// A pgaudit record's fields, from the text after `AUDIT: `.
struct Audit {
    audit_type: String,
    statement_id: String,
    substatement_id: String,
    class: String,
    command: String,
    object_type: String,
    object_name: String,
    statement: String,
    parameter: String,
}

impl Audit {
    fn parse(text: &str) -> Result<Audit, String> {
        let mut row = csv::StringRecord::new();
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
        let read =
            reader.read_record(&mut row).map_err(|err| format!("the pgaudit record is not CSV: {err}"))?;
        if !read || row.len() < 8 {
            return Err(format!(
                "the pgaudit record has {} fields, expected AUDIT_TYPE, STATEMENT_ID, SUBSTATEMENT_ID, CLASS, \
                 COMMAND, OBJECT_TYPE, OBJECT_NAME, STATEMENT[, PARAMETER]",
                row.len()
            ));
        }
        let field = |at: usize| row.get(at).unwrap_or("").trim().to_owned();
        Ok(Audit {
            audit_type: field(0),
            statement_id: field(1),
            substatement_id: field(2),
            class: field(3),
            command: field(4),
            object_type: field(5),
            object_name: field(6),
            statement: row.get(7).unwrap_or("").to_owned(),
            parameter: field(8),
        })
    }
}

/// PostgreSQL's own roles and cloud providers' administrative ones: not people.
fn administrative(role: &str) -> bool {
    matches!(
        role,
        "postgres"
            | "rdsadmin"
            | "rds_superuser"
            | "cloudsqladmin"
            | "cloudsqlsuperuser"
            | "azure_superuser"
            | "azuresu"
            | "alloydbadmin"
    ) || role.starts_with("pg_")
}

/// The event of one CSV log line; PostgreSQL's own lines are skipped.
fn line_event(row: &csv::StringRecord, keys: &Pseudonyms) -> Mapped {
    if row.len() < column::MIN {
        return Mapped::Bad(format!(
            "the line has {} columns; a PostgreSQL CSV log line has at least {}",
            row.len(),
            column::MIN
        ));
    }
    let Some(audit) = row[column::MESSAGE].strip_prefix("AUDIT: ") else {
        return Mapped::Skipped(
            "PostgreSQL's own log line, not a pgaudit record (its message does not start with AUDIT:)".into(),
        );
    };
    audit_event(row, audit, keys).into()
}

fn audit_event(row: &csv::StringRecord, audit: &str, keys: &Pseudonyms) -> Result<Value, String> {
    let audit = Audit::parse(audit)?;
    let cell = |at: usize| row.get(at).map(str::trim).filter(|cell| !cell.is_empty());
    let time = log_time(&row[column::LOG_TIME])?;
    let session = cell(column::SESSION_ID).ok_or("the line has no session_id")?;
    let line = cell(column::SESSION_LINE).ok_or("the line has no session_line_num")?;
    let role = cell(column::USER_NAME).ok_or("the line has no user_name")?;
    let database = cell(column::DATABASE).unwrap_or("postgres");
    let action = action(&audit.class, &audit.command);

    let target = if audit.object_name.is_empty() {
        event::target("pg.database", database)
    } else {
        let object_type =
            if audit.object_type.is_empty() { "object".to_owned() } else { audit.object_type.to_lowercase() };
        event::target(
            &format!("pg.{}", event::type_segment(&object_type)),
            &format!("{database}.{}", audit.object_name),
        )
    };
    let mut request = json!({"statement": audit.statement});
    if !matches!(audit.parameter.as_str(), "" | "<not logged>" | "<none>") {
        request["parameter"] = json!(audit.parameter);
    }
    let changes = event::changes(
        event::record_changes(action, "success", Vec::new(), &target),
        event::request_change(&request),
    );
    let (ip, host) = match cell(column::CONNECTION_FROM).filter(|from| !from.starts_with('[')) {
        Some(from) => {
            let host = from.rsplit_once(':').map_or(from, |(host, _)| host).trim_matches(['[', ']']);
            match event::ip(host) {
                Some(ip) => (Some(ip), None),
                None => (None, Some(event::bounded(host, limit::HOST))),
            }
        }
        None => (None, None),
    };
    let person = !administrative(role);
    let mut event = json!({
        "id": event::bounded(&format!("pg/{session}/{line}"), 128),
        "source": event::bounded(&format!("//postgresql/{}", event::source_segment(database)), limit::SOURCE),
        "type": format!("pg.{}.{}", event::type_segment(&audit.class), event::type_segment(&audit.command)),
        "action": action,
        "time": time,
        "actor": {
            "id": if person { keys.of(role) } else { role.to_owned() },
            "type": if person { "user" } else { "admin" },
            "display": person.then(|| event::bounded(role, limit::DISPLAY)),
            "session": keys.of(session),
        },
        "targets": [target],
        "outcome": "success",
        "changes": changes,
        "origin": {"ip": ip, "host": host, "service": "postgresql"},
        "correlation": {"correlation_id": event::bounded(&format!("{session}/{}", audit.statement_id), limit::REQUEST_ID)},
        "metadata": metadata(row, &audit, database),
    });
    event::prune(&mut event);
    Ok(event)
}

fn metadata(row: &csv::StringRecord, audit: &Audit, database: &str) -> Option<Value> {
    let mut metadata = Metadata::default();
    for (key, value) in [
        ("audit_type", audit.audit_type.as_str()),
        ("statement_id", &audit.statement_id),
        ("substatement_id", &audit.substatement_id),
        ("class", &audit.class),
        ("command", &audit.command),
        ("object_type", &audit.object_type),
        ("database", database),
    ] {
        metadata.put(key, value);
    }
    for (key, at) in [
        ("command_tag", column::COMMAND_TAG),
        ("process_id", column::PROCESS_ID),
        ("virtual_transaction_id", column::VIRTUAL_TRANSACTION_ID),
        ("transaction_id", column::TRANSACTION_ID),
        ("severity", column::SEVERITY),
        ("application_name", column::APPLICATION_NAME),
        ("backend_type", column::BACKEND_TYPE),
    ] {
        if let Some(value) = row.get(at) {
            metadata.put(key, value);
        }
    }
    metadata.into_value()
}

/// `log_time` (`2024-05-01 10:00:00.123 UTC`, or with a numeric offset such as `+02`) as RFC 3339.
fn log_time(text: &str) -> Result<String, String> {
    let text = text.trim();
    let bad = |why: &str| format!("log_time {text:?} {why}");
    let (local, zone) = text.rsplit_once(' ').ok_or_else(|| bad("is not a PostgreSQL log time"))?;
    let local = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f")
        .map_err(|_| bad("is not a PostgreSQL log time (YYYY-MM-DD HH:MM:SS[.fff] ZONE)"))?;
    let offset_seconds = match zone {
        "UTC" | "GMT" | "Z" | "UCT" => 0,
        _ if zone.starts_with(['+', '-']) => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let digits: String = zone[1..].chars().filter(char::is_ascii_digit).collect();
            let (hours, minutes) = match digits.len() {
                1 | 2 => (digits.parse::<i32>().unwrap_or(99), 0),
                4 => (digits[..2].parse::<i32>().unwrap_or(99), digits[2..].parse::<i32>().unwrap_or(99)),
                _ => return Err(bad("has an offset that cannot be read")),
            };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => {
            return Err(bad(&format!(
                "is in the time zone {zone:?}, which cannot be told from the log alone; set log_timezone = 'UTC'"
            )));
        }
    };
    let offset = FixedOffset::east_opt(offset_seconds).ok_or_else(|| bad("has an offset out of range"))?;
    let time: DateTime<FixedOffset> =
        local.and_local_timezone(offset).single().ok_or_else(|| bad("is not a time"))?;
    Ok(time.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// The schema action of a pgaudit class and command.
pub fn action(class: &str, command: &str) -> &'static str {
    let command = command.to_uppercase();
    let starts = |prefix: &str| command.starts_with(prefix);
    match class.to_uppercase().as_str() {
        "READ" if starts("COPY") => "export",
        "READ" => "read",
        "WRITE" if starts("INSERT") || starts("COPY") => "create",
        "WRITE" if starts("UPDATE") || starts("MERGE") => "update",
        "WRITE" if starts("DELETE") || starts("TRUNCATE") => "delete",
        "DDL" | "ROLE" if starts("GRANT") => "grant",
        "DDL" | "ROLE" if starts("REVOKE") => "revoke",
        "DDL" | "ROLE" if starts("CREATE") => "create",
        "DDL" | "ROLE" if starts("ALTER") || starts("COMMENT") => "update",
        "DDL" | "ROLE" if starts("DROP") => "delete",
        "MISC_SET" => "configure",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::{action, log_time};

    #[test]
    fn log_times_become_rfc_3339_in_utc() {
        assert_eq!(log_time("2024-05-01 10:00:00.123 UTC").unwrap(), "2024-05-01T10:00:00.123000Z");
        assert_eq!(log_time("2024-05-01 12:00:00 +02").unwrap(), "2024-05-01T10:00:00.000000Z");
        assert_eq!(log_time("2024-05-01 05:30:00.5 -0430").unwrap(), "2024-05-01T10:00:00.500000Z");
        let err = log_time("2024-05-01 12:00:00 CEST").unwrap_err();
        assert!(err.contains("set log_timezone = 'UTC'"), "{err}");
        assert!(log_time("yesterday").is_err());
    }

    #[test]
    fn actions_follow_the_class_and_command() {
        for (class, command, expected) in [
            ("READ", "SELECT", "read"),
            ("READ", "COPY", "export"),
            ("WRITE", "INSERT", "create"),
            ("WRITE", "UPDATE", "update"),
            ("WRITE", "DELETE", "delete"),
            ("WRITE", "TRUNCATE TABLE", "delete"),
            ("DDL", "CREATE TABLE", "create"),
            ("DDL", "ALTER TABLE", "update"),
            ("DDL", "DROP TABLE", "delete"),
            ("ROLE", "GRANT", "grant"),
            ("ROLE", "REVOKE", "revoke"),
            ("ROLE", "CREATE ROLE", "create"),
            ("MISC_SET", "SET", "configure"),
            ("FUNCTION", "EXECUTE", "other"),
            ("MISC", "VACUUM", "other"),
        ] {
            assert_eq!(action(class, command), expected, "{class} {command}");
        }
    }
}
