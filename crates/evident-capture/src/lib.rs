//! PostgreSQL change capture: [`install`] puts a trigger on each captured table that writes every
//! change (the row before and after as JSON, the changed columns, `evident.actor` and
//! `evident.reason` set by the application with `SET LOCAL`, the transaction id, the time) into the
//! outbox table `evident_capture.outbox`, in the same transaction as the change. [`Drainer`] sends
//! the outbox to Evident in batches with the outbox row as idempotency key and deletes a row only
//! after the server acknowledged it, so killing the drain at any point loses and duplicates
//! nothing. [`uninstall`] removes everything `install` created.
//!
//! - `sql.rs`: the schema and the trigger function.
//! - `event.rs`: an outbox row as an Evident event.
//! - `db.rs`: a blocking connection (tokio-postgres on a private current-thread runtime).

mod db;
mod event;
mod sql;

use std::collections::HashMap;

use evident_client::Client;
use evident_wire::api::{InvalidParam, ItemStatus};

pub use db::Database;
pub use event::OutboxRow;

/// What capture can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag names something that does not fit; `flag` is the flag's text.
    #[error("{flag}: {reason}")]
    Usage { flag: String, reason: String },
    #[error("PostgreSQL: {0}")]
    Database(String),
    /// The outbox still holds changes Evident has not acknowledged.
    #[error(
        "the outbox holds {0} changes not yet sent to Evident; run the capture until it is empty, or pass --force to discard them"
    )]
    Undelivered(i64),
    /// Another process drains this database's outbox.
    #[error("another capture process is draining this database's outbox")]
    Busy,
    /// The server did not take the batch; retry later.
    #[error("sending to Evident: {0}")]
    Send(#[from] evident_client::Error),
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Error {
        Error::Database(match err.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => err.to_string(),
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One captured table and what to do with its columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableSpec {
    /// `schema.table` (`public.` when the flag named none).
    pub name: String,
    /// The column holding the data subject's id, if any.
    pub subject_column: Option<String>,
    /// Columns whose change marks the event `data_classes: ["pii"]`.
    pub personal: Vec<String>,
    /// Columns never captured.
    pub excluded: Vec<String>,
    /// Columns captured as a salted SHA-256 only.
    pub hashed: Vec<String>,
}

/// The tables of `--table NAME[:SUBJECT_COLUMN]` flags with the columns of `--personal`,
/// `--exclude` and `--hash TABLE.COLUMN` flags.
pub fn plan(
    tables: &[String],
    personal: &[String],
    excluded: &[String],
    hashed: &[String],
) -> Result<Vec<TableSpec>> {
    let mut specs: Vec<TableSpec> = Vec::new();
    for flag in tables {
        let (name, subject) = match flag.split_once(':') {
            Some((name, subject)) => (name, Some(subject)),
            None => (flag.as_str(), None),
        };
        let usage = |reason: &str| Error::Usage { flag: format!("--table {flag}"), reason: reason.into() };
        if name.is_empty() || name.split('.').count() > 2 || name.split('.').any(str::is_empty) {
            return Err(usage("expected TABLE or SCHEMA.TABLE, optionally followed by :SUBJECT_COLUMN"));
        }
        if subject.is_some_and(|subject| subject.is_empty() || subject.contains(',')) {
            return Err(usage("the subject column after `:` must be a column name"));
        }
        let name = if name.contains('.') { name.to_owned() } else { format!("public.{name}") };
        if specs.iter().any(|spec| spec.name == name) {
            return Err(usage("this table is named twice"));
        }
        specs.push(TableSpec { name, subject_column: subject.map(str::to_owned), ..TableSpec::default() });
    }
    for (option, columns) in [("--personal", personal), ("--exclude", excluded), ("--hash", hashed)] {
        for flag in columns {
            let (table, column) = column_of(&specs, option, flag)?;
            let spec = &mut specs[table];
            let list = match option {
                "--personal" => &mut spec.personal,
                "--exclude" => &mut spec.excluded,
                _ => &mut spec.hashed,
            };
            list.push(column);
        }
    }
    for spec in &specs {
        if let Some(column) = spec.excluded.iter().find(|column| spec.hashed.contains(column)) {
            return Err(Error::Usage {
                flag: format!("--hash {}.{column}", spec.name),
                reason: "the column is also excluded; choose one".into(),
            });
        }
    }
    Ok(specs)
}

/// The index of the `--table` a `TABLE.COLUMN` flag names, and the column.
fn column_of(specs: &[TableSpec], option: &str, flag: &str) -> Result<(usize, String)> {
    let usage = |reason: String| Error::Usage { flag: format!("{option} {flag}"), reason };
    let Some((table, column)) = flag.rsplit_once('.') else {
        return Err(usage("expected TABLE.COLUMN".into()));
    };
    if column.is_empty() || column.contains(',') {
        return Err(usage("expected TABLE.COLUMN (a column name without `,`)".into()));
    }
    let qualified = if table.contains('.') { table.to_owned() } else { format!("public.{table}") };
    let found = specs.iter().position(|spec| spec.name == qualified);
    let index = found.ok_or_else(|| usage(format!("no --table {table}; name the table to capture first")))?;
    Ok((index, column.to_owned()))
}

/// Installs (or updates) capture of `tables` in one transaction: the `evident_capture` schema,
/// and a trigger named `evident_capture` on each table. Checks that each table exists, has a
/// primary key, and has every column the flags name.
pub fn install(db: &mut Database, tables: &[TableSpec]) -> Result<()> {
    db.install(tables)
}

/// Removes the triggers and the `evident_capture` schema. Refuses while the outbox holds changes
/// not yet sent, unless `force`. Answers whether anything was installed.
pub fn uninstall(db: &mut Database, force: bool) -> Result<bool> {
    db.uninstall(force)
}

/// What one drained batch came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Changes the server stored (or had stored): their outbox rows are deleted.
    pub delivered: usize,
    /// Changes the server refused: moved to `evident_capture.dead_letter` with the reasons.
    pub dead_lettered: usize,
}

/// Sends the outbox to Evident.
pub struct Drainer {
    db: Database,
    client: Client,
    install_id: String,
    batch: i64,
}

impl Drainer {
    /// Takes the database's drain lock (one drainer at a time) and reads the install's id.
    pub fn new(mut db: Database, client: Client, batch: i64) -> Result<Drainer> {
        let install_id = db.begin_drain()?;
        Ok(Drainer { db, client, install_id, batch: batch.max(1) })
    }

    /// Sends the oldest `batch` changes and settles the answer: acknowledged rows are deleted,
    /// refused ones move to the dead-letter table, in one transaction. A crash before that
    /// transaction commits sends the same rows again with the same ids, which the server answers
    /// as duplicates. An empty outbox answers zeros.
    pub fn drain_batch(&mut self) -> Result<Drained> {
        let rows = self.db.read_outbox(self.batch)?;
        if rows.is_empty() {
            return Ok(Drained::default());
        }
        let personal = self.db.personal_columns()?;
        let no_personal = Vec::new();
        let mut body = Vec::new();
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let event = row.event(&self.install_id, personal.get(&row.table_name).unwrap_or(&no_personal));
            serde_json::to_writer(&mut body, &event).expect("JSON values serialize");
            body.push(b'\n');
            events.push(event);
        }
        let (_, answer) = self.client.post_events("application/x-ndjson", body)?;
        if answer.receipts.len() != rows.len() {
            return Err(Error::Send(evident_client::Error::Protocol {
                url: self.client.base().to_owned(),
                reason: format!("{} results for {} events", answer.receipts.len(), rows.len()),
            }));
        }
        let mut acknowledged = Vec::new();
        let mut dead: Vec<DeadLetter> = Vec::new();
        for ((row, event), item) in rows.iter().zip(events).zip(answer.receipts) {
            match item.status {
                ItemStatus::Stored | ItemStatus::Duplicate => acknowledged.push(row.id),
                status => dead.push(DeadLetter { outbox_id: row.id, event, status, errors: item.errors }),
            }
        }
        let drained = Drained { delivered: acknowledged.len(), dead_lettered: dead.len() };
        self.db.settle(&acknowledged, &dead)?;
        Ok(drained)
    }
}

/// A change the server refused.
pub(crate) struct DeadLetter {
    pub outbox_id: i64,
    pub event: serde_json::Value,
    pub status: ItemStatus,
    pub errors: Vec<InvalidParam>,
}

/// Columns marked personal, by table.
pub(crate) type PersonalColumns = HashMap<String, Vec<String>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn flags_become_table_specs() {
        let specs = plan(
            &strings(&["customers:id", "billing.accounts"]),
            &strings(&["customers.email"]),
            &strings(&["customers.password_hash"]),
            &strings(&["billing.accounts.iban"]),
        )
        .unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].name, "public.customers");
        assert_eq!(specs[0].subject_column.as_deref(), Some("id"));
        assert_eq!(specs[0].personal, ["email"]);
        assert_eq!(specs[0].excluded, ["password_hash"]);
        assert_eq!(
            (specs[1].name.as_str(), specs[1].hashed.as_slice()),
            ("billing.accounts", &strings(&["iban"])[..])
        );
    }

    #[test]
    fn bad_flags_are_refused_naming_the_flag() {
        let check = |tables: &[&str], hashed: &[&str], excluded: &[&str], expect: &str| {
            let err = plan(&strings(tables), &[], &strings(excluded), &strings(hashed)).expect_err("refused");
            assert!(err.to_string().contains(expect), "{err}");
        };
        check(&["a.b.c"], &[], &[], "--table a.b.c: expected TABLE or SCHEMA.TABLE");
        check(&["customers:"], &[], &[], "--table customers:: the subject column");
        check(&["customers", "public.customers"], &[], &[], "named twice");
        check(&["customers"], &["orders.total"], &[], "--hash orders.total: no --table orders");
        check(&["customers"], &["ssn"], &[], "--hash ssn: expected TABLE.COLUMN");
        check(&["customers"], &["customers.ssn"], &["customers.ssn"], "also excluded");
    }
}
