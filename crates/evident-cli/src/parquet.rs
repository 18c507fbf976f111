//! `evident export --format parquet --output FILE` (cargo feature `parquet`): the skeletons of the
//! events a search matches, as one Parquet file with typed columns for BI tools (DuckDB, pyarrow,
//! Spark). It reads `GET /v1/export` as a client, line by line as the bundle streams in, checks
//! each line as `evident verify` does (inclusion proof at the signed checkpoint, query, order; the
//! signed manifest at the end) with the keys the server names, and writes a row group every
//! `--row-group-rows` rows (65,536 by default) or [`ROW_GROUP_BYTES`] of entries, so
//! memory stays bounded whatever the log's size. A bundle that does not verify, or a stream cut short, leaves no file behind.
//!
//! Only the skeleton (the logged entry) is written: never a personal value, whoever asks
//! (`--purpose` is refused). Columns: [`schema`].

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use arrow_array::builder::{BooleanBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use evident_client::Client;
use evident_client::bundle::StreamCheck;
use evident_tlog::Verifier;
use evident_wire::Micros;
use evident_wire::api::SearchParams;
use evident_wire::export::{EventLine, Header, Line, parse_header, parse_line};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value;

/// Entry bytes buffered before a row group is written, at most (about what its columns take).
pub const ROW_GROUP_BYTES: usize = 64 << 20;

/// What a finished export wrote.
pub struct Written {
    pub rows: u64,
    pub row_groups: usize,
    pub origin: String,
    pub tree_size: u64,
}

/// The file's columns: names, types and nullability. Times are UTC microseconds.
pub fn schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let time =
        |name: &str| Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false);
    Arc::new(Schema::new(vec![
        text("tenant", false),
        Field::new("index", DataType::UInt64, false),
        text("event_id", false),
        // The producer's own id and system: (source, id) is the idempotency key.
        text("id", false),
        text("source", false),
        time("occurred_at"),
        time("recorded_at"),
        text("type", false),
        text("action", false),
        text("outcome", false),
        text("severity", true),
        // `origin.service`.
        text("channel", true),
        text("origin_host", true),
        text("actor_id", false),
        text("actor_type", true),
        text("actor_on_behalf_of", true),
        // The pseudonymous subject id, as the skeleton holds it.
        text("subject", true),
        // The first target; `targets` holds them all (type and id) as JSON.
        text("target_type", true),
        text("target_id", true),
        text("targets", false),
        text("reason", true),
        text("correlation_id", true),
        text("request_id", true),
        // JSON: the clear metadata (`{}` when none) and the data classes (`[]`).
        text("metadata", false),
        text("data_classes", false),
        // Whether the event has a sealed personal part (its values are never in this file).
        Field::new("has_personal", DataType::Boolean, false),
    ]))
}

/// Column builders of the row group being filled.
struct Columns {
    text: Vec<StringBuilder>,
    index: UInt64Builder,
    occurred_at: TimestampMicrosecondBuilder,
    recorded_at: TimestampMicrosecondBuilder,
    has_personal: BooleanBuilder,
    rows: usize,
    bytes: usize,
    max_rows: usize,
}

/// The text columns in schema order, as JSON pointers into the skeleton (`""`: computed).
const TEXT: [&str; 22] = [
    "/tenant",
    "/event_id",
    "/id",
    "/source",
    "/type",
    "/action",
    "/outcome",
    "/severity",
    "/origin/service",
    "/origin/host",
    "/actor/id",
    "/actor/type",
    "/actor/on_behalf_of",
    "/subject",
    "/targets/0/type",
    "/targets/0/id",
    "targets",
    "/reason",
    "/correlation/correlation_id",
    "/correlation/request_id",
    "metadata",
    "data_classes",
];

impl Columns {
    fn new(max_rows: usize) -> Columns {
        Columns {
            text: TEXT.iter().map(|_| StringBuilder::new()).collect(),
            index: UInt64Builder::new(),
            occurred_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            recorded_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            has_personal: BooleanBuilder::new(),
            rows: 0,
            bytes: 0,
            max_rows,
        }
    }

    /// Appends the row of one checked event line, from its entry (the skeleton) only.
    fn push(&mut self, line: &EventLine, occurred_at: Micros) -> Result<()> {
        let entry: Value = serde_json::from_slice(&line.entry).context("an entry is not JSON")?;
        let recorded_at = entry
            .get("recorded_at")
            .and_then(Value::as_str)
            .and_then(Micros::parse_rfc3339)
            .ok_or_else(|| anyhow!("the entry of index {} has no RFC 3339 recorded_at", line.index))?;
        for (builder, pointer) in self.text.iter_mut().zip(TEXT) {
            let json = |key: &str, empty: &str| {
                entry.get(key).map_or_else(|| empty.to_owned(), |v| serde_json::to_string(v).expect("JSON"))
            };
            match pointer {
                "targets" => builder.append_value(json("targets", "[]")),
                "metadata" => builder.append_value(json("metadata", "{}")),
                "data_classes" => builder.append_value(json("data_classes", "[]")),
                _ => builder.append_option(entry.pointer(pointer).and_then(Value::as_str)),
            }
        }
        self.index.append_value(line.index);
        self.occurred_at.append_value(occurred_at.0);
        self.recorded_at.append_value(recorded_at.0);
        self.has_personal.append_value(entry.get("pii_commitment").is_some());
        self.rows += 1;
        self.bytes += line.entry.len();
        Ok(())
    }

    fn full(&self) -> bool {
        self.rows >= self.max_rows || self.bytes >= ROW_GROUP_BYTES
    }

    /// The rows so far as a batch in schema order; the builders start empty again.
    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut text = self.text.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef);
        let mut next = || text.next().expect("a text column");
        let (tenant, event_id, id, source) = (next(), next(), next(), next());
        let mut columns: Vec<ArrayRef> = vec![
            tenant,
            Arc::new(self.index.finish()),
            event_id,
            id,
            source,
            Arc::new(self.occurred_at.finish()),
            Arc::new(self.recorded_at.finish()),
        ];
        columns.extend(text);
        columns.push(Arc::new(self.has_personal.finish()));
        (self.rows, self.bytes) = (0, 0);
        RecordBatch::try_new(schema.clone(), columns).context("the columns do not fit the schema")
    }
}

/// Where a streamed bundle's lines go: checked, then appended as rows.
struct Sink<'a> {
    client: &'a Client,
    partial: Vec<u8>,
    line: usize,
    check: Option<StreamCheck>,
    header: Option<Header>,
    columns: Columns,
    schema: SchemaRef,
    writer: ArrowWriter<File>,
    rows: u64,
    finished: bool,
    /// The first failure, with its context (a `Write` can only answer an `io::Error`).
    failure: Option<anyhow::Error>,
}

impl Sink<'_> {
    fn line(&mut self, text: &str) -> Result<()> {
        self.line += 1;
        if self.finished {
            bail!("line {}: data after the trailer", self.line);
        }
        let Some(check) = self.check.as_mut() else {
            let header = parse_header(text)?;
            self.check = Some(check_header(self.client, &header)?);
            self.header = Some(header);
            return Ok(());
        };
        match parse_line(self.line, text)? {
            Line::Event(event) => {
                let time = check.event(&event)?;
                self.columns.push(&event, time)?;
                self.rows += 1;
                if self.columns.full() {
                    let batch = self.columns.finish(&self.schema)?;
                    self.writer.write(&batch)?;
                    self.writer.flush()?; // ends the row group
                }
            }
            Line::Manifest(trailer) => {
                self.check.take().expect("checked").finish(&trailer)?;
                self.finished = true;
            }
        }
        Ok(())
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.failure.is_some() {
            return Err(std::io::Error::other("the export failed"));
        }
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let text = String::from_utf8(std::mem::take(&mut self.partial));
            let done =
                text.map_err(|_| anyhow!("line {}: not UTF-8", self.line + 1)).and_then(|t| self.line(&t));
            if let Err(err) = done {
                let message = err.to_string();
                self.failure = Some(err);
                return Err(std::io::Error::other(message));
            }
        }
        self.partial.extend_from_slice(rest);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The header's checkpoint checked with the keys the server names for its log (as the bundle
/// export checks it: intact and from that server; pin a key with `evident verify` to prove more).
fn check_header(client: &Client, header: &Header) -> Result<StreamCheck> {
    let tenant = header.origin.rsplit('/').next().unwrap_or_default();
    let vkeys = client
        .vkeys(tenant)
        .with_context(|| format!("cannot fetch the verifier keys of the log of tenant {tenant}"))?;
    let trusted = vkeys
        .iter()
        .map(|line| Verifier::parse(line).with_context(|| format!("the server's vkey {line:?}")))
        .collect::<Result<Vec<_>>>()?;
    Ok(StreamCheck::new(header, &trusted, None)?.bounded())
}

/// Streams the export of `params` into a new Parquet file at `path` (mode 0600; replaced only
/// with `force`), removing it again on any failure.
pub fn export(
    client: &Client,
    params: &SearchParams,
    path: &Path,
    force: bool,
    row_group_rows: usize,
) -> Result<Written> {
    if params.purpose.is_some() {
        bail!(
            "--format parquet writes skeletons only, never personal values: leave out --purpose \
             (investigators export personal parts in a bundle, without --format parquet)"
        );
    }
    if path.exists() && !force {
        bail!("{} exists; choose a new --output file or pass --force to replace it", path.display());
    }
    let partial = partial_path(path);
    let file = crate::export::create_private(&partial)?;
    let result = write(client, params, file, row_group_rows);
    match result {
        Ok(written) => {
            File::open(&partial)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot write {}", partial.display()))?;
            std::fs::rename(&partial, path)
                .with_context(|| format!("cannot move {} to {}", partial.display(), path.display()))?;
            Ok(written)
        }
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            Err(err)
        }
    }
}

/// Where the file is written until it is complete and verified: next to it, so the rename is atomic.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".partial");
    path.with_file_name(name)
}

fn write(client: &Client, params: &SearchParams, file: File, row_group_rows: usize) -> Result<Written> {
    let schema = schema();
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_created_by(format!("evident {}", env!("CARGO_PKG_VERSION")))
        .build();
    let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))?;
    let mut sink = Sink {
        client,
        partial: Vec::new(),
        line: 0,
        check: None,
        header: None,
        columns: Columns::new(row_group_rows),
        schema,
        writer,
        rows: 0,
        finished: false,
        failure: None,
    };
    let streamed = client.export_to_writer(params, crate::export::EXPORT_TIMEOUT, &mut sink);
    if let Some(failure) = sink.failure.take() {
        return Err(failure.context(format!("the export from {} does NOT verify", client.base())));
    }
    streamed.with_context(|| format!("export from {} failed", client.base()))?;
    if !sink.partial.is_empty() || !sink.finished {
        bail!(
            "the export from {} ended after {} events without its signed manifest: the stream was cut short",
            client.base(),
            sink.rows
        );
    }
    if sink.columns.rows > 0 {
        let batch = sink.columns.finish(&sink.schema)?;
        sink.writer.write(&batch)?;
    }
    let header = sink.header.take().expect("a header was read");
    let metadata = sink.writer.close().context("cannot finish the Parquet file")?;
    Ok(Written {
        rows: sink.rows,
        row_groups: metadata.num_row_groups(),
        origin: header.origin,
        tree_size: header.tree_size,
    })
}
