//! `evident ingest FILE...`: sends events from files to a server, in batches, resumably.
//!
//! The files are read and their records mapped onto events by `evident-import` (formats:
//! `--format`, detected by default; each importer documents its mapping field by field). Every
//! importer derives a stable `id` from the source record, so running the same file again stores
//! nothing twice: the server answers `duplicate` for what it has. This module does the rest:
//! flags, batches, posting, retries, progress and the summary.
//!
//! Every problem is reported with the file and line (and record number inside a JSON document):
//! lines that cannot be read or mapped (*bad lines*, never sent), events the server rejected (with
//! every failing field and rule), and conflicts (the same `source` and `id` already stored with other
//! content; nothing is stored). A problem repeated in a file (a whole file failing the same way) is
//! said once, then counted. Records skipped on purpose (a CloudTrail digest file, PostgreSQL's own
//! log lines) are counted apart, with one line per reason, and are not problems. Without
//! `--fail-fast` the rest goes on and the exit code is non-zero if anything was not stored; with
//! it, ingestion stops after the first problem.
//!
//! Output: problems and a summary on stderr, with a progress bar when stderr is a terminal (plain
//! progress lines otherwise); with `--json` (or when stdout is not a terminal) also one JSON object
//! per problem and a final `{"summary": ...}` on stdout.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use evident_client::{Client, Error as ClientError};
use evident_import::{Format, Input, Mapped, Options, Place, Pseudonyms, csv};
use evident_wire::api::{IngestResponse, InvalidParam, ItemResult, ItemStatus};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::ClientArgs;
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The files to ingest (`.gz` compressed files too).
    #[arg(required_unless_present_any = ["pseudonym_of", "map"], value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The files' format; `auto` tells it from the extension and the first record.
    #[arg(long, value_enum, default_value = "auto")]
    format: FormatArg,
    /// Stop at the first bad line, rejection or conflict (the default is to skip, report and go on).
    /// The server judges a whole batch at once, so the events after a rejected one in its batch are
    /// stored; with `--batch-size 1` nothing after it is sent.
    #[arg(long)]
    fail_fast: bool,
    /// Events per request.
    #[arg(long, default_value = "500", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
    /// CSV: the column holding a field, e.g. `--map actor.id=User` (repeatable; `--map help` lists
    /// the fields).
    #[arg(long = "map", value_name = "FIELD=COLUMN")]
    map: Vec<String>,
    /// CSV: a constant field, e.g. `--set source=//erp.example.com --set action=update` (repeatable).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    set: Vec<String>,
    /// CSV: the field delimiter.
    #[arg(long, default_value = ",")]
    delimiter: char,
    /// CSV: how times are written when not RFC 3339 (chrono `strftime` syntax, e.g. `%d/%m/%Y %H:%M`;
    /// without an offset, UTC).
    #[arg(long, value_name = "FORMAT")]
    time_format: Option<String>,
    /// Kubernetes: the cluster's name, used in the events' source `//k8s/<NAME>` (default: the name
    /// GKE and AKS records give, else `kubernetes`).
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Okta: the org's host (e.g. `acme.okta.com`), used in the events' source `//okta/<HOST>`
    /// (System Log records seldom name their org).
    #[arg(long, value_name = "HOST")]
    okta_org: Option<String>,
    /// The key file of pseudonyms: personal values in clear fields (user names, e-mail addresses,
    /// access key ids) become keyed pseudonyms, and records without an id get a keyed derived id.
    /// Made on first use (mode 0600); use the same file for every import of the same logs.
    /// Default: `$XDG_CONFIG_HOME/evident/pseudonym.key` (`~/.config/evident/pseudonym.key`).
    #[arg(long, value_name = "FILE", env = "EVIDENT_PSEUDONYM_KEY")]
    pseudonym_key: Option<PathBuf>,
    /// Print the pseudonym of VALUE (a user name, an e-mail address) under the key, to search for
    /// that person's imported events (`evident search --actor ps_...`), and import nothing
    /// (repeatable).
    #[arg(long, value_name = "VALUE")]
    pseudonym_of: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Auto,
    Ndjson,
    Csv,
    Cloudtrail,
    K8s,
    Github,
    Okta,
    AzureActivity,
    EntraSignin,
    Workspace,
    Pgaudit,
}

impl FormatArg {
    /// The format asked for; `None`: tell it from the file.
    fn asked(self) -> Option<Format> {
        match self {
            FormatArg::Auto => None,
            FormatArg::Ndjson => Some(Format::Ndjson),
            FormatArg::Csv => Some(Format::Csv),
            FormatArg::Cloudtrail => Some(Format::CloudTrail),
            FormatArg::K8s => Some(Format::K8s),
            FormatArg::Github => Some(Format::GitHub),
            FormatArg::Okta => Some(Format::Okta),
            FormatArg::AzureActivity => Some(Format::AzureActivity),
            FormatArg::EntraSignin => Some(Format::EntraSignIn),
            FormatArg::Workspace => Some(Format::Workspace),
            FormatArg::Pgaudit => Some(Format::Pgaudit),
        }
    }
}

/// At most this many bytes of NDJSON in one request (the server's default limit is 16 MiB).
const MAX_BATCH_BYTES: usize = 8 << 20;
/// How often plain progress lines are printed when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Attempts of one request while the server answers 503 (or 429).
const MAX_BUSY_ATTEMPTS: u32 = 10;
/// Different problem messages remembered per file to say each once (memory stays bounded).
const MAX_REPEATS: usize = 1000;
/// Attempts of one request after the server was reached once and then could not be.
const MAX_UNREACHABLE_ATTEMPTS: u32 = 5;

pub fn run(args: Args) -> Result<ExitCode> {
    if !args.pseudonym_of.is_empty() {
        return print_pseudonyms(&args);
    }
    if args.map.iter().any(|map| map == "help") {
        crate::outln!("--map FIELD=COLUMN and --set FIELD=VALUE take these fields: {}", csv::known_fields());
        return Ok(ExitCode::SUCCESS);
    }
    if args.files.is_empty() {
        bail!("name the files to ingest (evident ingest FILE... --map FIELD=COLUMN ...)");
    }
    let inputs: Vec<Input> = args
        .files
        .iter()
        .map(|path| evident_import::open(path, args.format.asked()))
        .collect::<Result<_, _>>()?;
    let csv = csv_mapping(&args, &inputs)?;
    if args.client.key.is_none() {
        bail!("no API key: pass --key or set EVIDENT_API_KEY (a key with the producer role)");
    }
    let options = Options {
        cluster: args.cluster.clone(),
        okta_org: args.okta_org.clone(),
        csv,
        pseudonyms: pseudonym_key(&args)?,
    };

    let client = args.client.client()?;
    let total_bytes = inputs.iter().map(|input| input.size).sum();
    let mut run = Run::new(&client, args.batch_size as usize, args.fail_fast, &args.client, total_bytes);
    run.check_server()?;
    let outcome = ingest_all(&mut run, &inputs, &options);
    run.progress.finish();
    let stopped = match outcome {
        Ok(flow) => flow.is_break(),
        Err(err) => {
            if run.totals.records > 0 {
                run.summary(false);
            }
            if run.totals.stored + run.totals.duplicates > 0 {
                return Err(err.context("ingestion stopped (running the same command again resumes it)"));
            }
            return Err(err);
        }
    };
    run.summary(stopped);
    let clean = run.totals.conflicts + run.totals.rejected + run.totals.bad_lines == 0 && !stopped;
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The key of `--pseudonym-key`, or of `$XDG_CONFIG_HOME/evident/pseudonym.key` (else
/// `~/.config/evident/pseudonym.key`); made when the file does not exist yet.
fn pseudonym_key(args: &Args) -> Result<Pseudonyms> {
    let path = pseudonym_key_path(args)?;
    let (pseudonyms, created) = Pseudonyms::load_or_create(&path)?;
    if created {
        eprintln!(
            "evident: made the pseudonym key {}: keep it, and use it for every import of the same logs \
             (another key gives other pseudonyms and ids)",
            path.display()
        );
    }
    Ok(pseudonyms)
}

/// `--pseudonym-of`: each value's pseudonym, one per line (tab-separated from the value for
/// people; with `--json`, `{"value", "pseudonym"}`).
fn print_pseudonyms(args: &Args) -> Result<ExitCode> {
    let path = pseudonym_key_path(args)?;
    let Some(pseudonyms) = Pseudonyms::load(&path)? else {
        bail!(
            "no pseudonym key at {}: nothing was imported with it; pass the key file the imports used \
             with --pseudonym-key",
            path.display()
        );
    };
    for value in &args.pseudonym_of {
        let pseudonym = pseudonyms.of(value);
        if output::json_wanted(args.client.json) {
            crate::outln!("{}", json!({"value": value, "pseudonym": pseudonym}));
        } else {
            crate::outln!("{pseudonym}\t{value}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--pseudonym-key`, else the default place.
fn pseudonym_key_path(args: &Args) -> Result<PathBuf> {
    Ok(match &args.pseudonym_key {
        Some(path) => path.clone(),
        None => {
            let config = std::env::var_os("XDG_CONFIG_HOME")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .filter(|dir| !dir.is_empty())
                        .map(|home| PathBuf::from(home).join(".config"))
                });
            let Some(config) = config else {
                bail!("no place for the pseudonym key: pass --pseudonym-key FILE (or set HOME)");
            };
            config.join("evident").join("pseudonym.key")
        }
    })
}

/// The CSV mapping of `--map` and `--set`, checked against the header of every CSV file; `None`
/// when there is no CSV file.
fn csv_mapping(args: &Args, inputs: &[Input]) -> Result<Option<csv::Mapping>> {
    let csv_inputs: Vec<&Input> = inputs.iter().filter(|input| input.format == Format::Csv).collect();
    let mapping = match (args.map.is_empty() && args.set.is_empty(), csv_inputs.is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => bail!("--map and --set apply to CSV files only, and none of the files is CSV"),
        (true, false) => bail!(
            "CSV files need a column mapping: --map FIELD=COLUMN for each column and --set FIELD=VALUE \
             for constants, e.g. --map id=EventId --map time=Timestamp --map actor.id=User \
             --set source=//erp.example.com --set type=erp.record.updated ... (`--map help` lists the fields)"
        ),
        (false, false) => {
            csv::Mapping::from_args(&args.map, &args.set, args.delimiter, args.time_format.clone())?
        }
    };
    for input in csv_inputs {
        mapping.check(input)?;
    }
    Ok(Some(mapping))
}

fn ingest_all(run: &mut Run, inputs: &[Input], options: &Options) -> Result<ControlFlow<()>> {
    for input in inputs {
        run.totals.files += 1;
        run.progress.start_file(input);
        let flow = ingest_file(input, options, run)?;
        // After a stop too: the events read before the problem are good.
        let flushed = run.flush()?;
        run.said_once(input);
        let flow = if flow.is_break() { flow } else { flushed };
        run.progress.end_file(input);
        if flow.is_break() {
            return Ok(flow);
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// One file: every record's event sent, every problem reported.
fn ingest_file(input: &Input, options: &Options, run: &mut Run) -> Result<ControlFlow<()>> {
    let mut events = input.events(options)?;
    run.repeats.clear();
    let mut flow = ControlFlow::Continue(());
    while let Some(record) = events.next_record()? {
        run.totals.records += 1;
        flow = match record.mapped {
            Mapped::Event(event) => run.event(record.place, event)?,
            Mapped::Skipped(why) => run.skipped(record.place, &why),
            Mapped::Bad(message) => run.bad(record.place, &message),
        };
        run.progress.update(input, events.position(), &run.totals);
        if flow.is_break() {
            break;
        }
    }
    Ok(flow)
}

/// What happened to the records so far.
#[derive(Debug, Default)]
struct Totals {
    files: u64,
    /// Lines (or records of a JSON document, or CSV rows) read.
    records: u64,
    stored: u64,
    /// Already stored with the same content (a re-run, or a repeat in the file).
    duplicates: u64,
    conflicts: u64,
    rejected: u64,
    /// Lines that could not be read or mapped: never sent.
    bad_lines: u64,
    /// Records that hold no event, on purpose (a digest file, a log line that is not an audit
    /// record): never sent, not a problem.
    skipped: u64,
}

/// An event read and waiting for its batch.
struct Pending {
    place: Place,
    id: Option<String>,
    line: Vec<u8>,
}

/// The sending side: batches, the server's answers, problems, totals and progress.
struct Run<'c> {
    client: &'c Client,
    batch_size: usize,
    fail_fast: bool,
    json: bool,
    batch: Vec<Pending>,
    batch_bytes: usize,
    totals: Totals,
    /// Whether the server answered once: before that, an unreachable server is not retried.
    contacted: bool,
    started: Instant,
    progress: Progress,
    /// This file's messages said so far (bad lines, skips, rejections), with the first
    /// place and how many more times each came: a file failing the same way on every line is said
    /// once.
    repeats: HashMap<String, (Place, u64)>,
}

impl<'c> Run<'c> {
    fn new(
        client: &'c Client,
        batch_size: usize,
        fail_fast: bool,
        args: &ClientArgs,
        total_bytes: u64,
    ) -> Self {
        Run {
            client,
            batch_size,
            fail_fast,
            json: output::json_wanted(args.json),
            batch: Vec::new(),
            batch_bytes: 0,
            totals: Totals::default(),
            contacted: false,
            started: Instant::now(),
            progress: Progress::new(total_bytes),
            repeats: HashMap::new(),
        }
    }

    /// Prints `line` for people, unless this file said `message` already (then it is counted).
    /// Past [`MAX_REPEATS`] different messages, new ones are printed and not remembered.
    fn say_once(&mut self, place: &Place, message: String, line: String) {
        match self.repeats.get_mut(&message) {
            Some((_, more)) => *more += 1,
            None => {
                self.progress.println(&line);
                if self.repeats.len() < MAX_REPEATS {
                    self.repeats.insert(message, (place.clone(), 0));
                }
            }
        }
    }

    /// After a file: how many more times each message came.
    fn said_once(&mut self, input: &Input) {
        let mut repeated: Vec<(&String, &(Place, u64))> =
            self.repeats.iter().filter(|(_, (_, more))| *more > 0).collect();
        repeated.sort_by_key(|(_, (place, _))| (place.line, place.record));
        for (message, (place, more)) in repeated {
            let lines = if *more == 1 { "line" } else { "lines" };
            self.progress.println(&format!(
                "{}: the same on {more} more {lines} after line {}: {message}",
                input.name, place.line
            ));
        }
        self.repeats.clear();
    }

    /// A record that holds no event, on purpose: counted, said once per reason.
    fn skipped(&mut self, place: Place, why: &str) -> ControlFlow<()> {
        self.totals.skipped += 1;
        self.say_once(&place, format!("skipped: {why}"), format!("{place}: skipped: {why}"));
        ControlFlow::Continue(())
    }

    /// A line that could not be read or mapped: reported (once per message and file for people,
    /// every time for scripts), never sent.
    fn bad(&mut self, place: Place, message: &str) -> ControlFlow<()> {
        self.totals.bad_lines += 1;
        self.say_once(&place, format!("bad line: {message}"), format!("{place}: bad line: {message}"));
        if self.json {
            let mut problem = place_json(&place);
            problem["problem"] = json!("bad_line");
            problem["message"] = json!(message);
            crate::outln!("{problem}");
        }
        if self.fail_fast { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }

    /// An event to send (batched).
    fn event(&mut self, place: Place, event: Value) -> Result<ControlFlow<()>> {
        let id = event.get("id").and_then(Value::as_str).map(str::to_owned);
        let mut line = serde_json::to_vec(&event).expect("a JSON value serializes");
        line.push(b'\n');
        self.batch_bytes += line.len();
        self.batch.push(Pending { place, id, line });
        if self.batch.len() >= self.batch_size || self.batch_bytes >= MAX_BATCH_BYTES {
            return self.flush();
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Sends the waiting events and accounts for every answer.
    fn flush(&mut self) -> Result<ControlFlow<()>> {
        if self.batch.is_empty() {
            return Ok(ControlFlow::Continue(()));
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let answers = self.send(&batch)?;
        let mut flow = ControlFlow::Continue(());
        for (pending, answer) in batch.iter().zip(answers) {
            if self.account(pending, &answer).is_break() {
                flow = ControlFlow::Break(());
            }
        }
        Ok(flow)
    }

    /// One answer (`receipts[i]` of `POST /v1/events`).
    fn account(&mut self, pending: &Pending, answer: &ItemResult) -> ControlFlow<()> {
        let errors = &answer.errors;
        let id = pending.id.as_deref().map(|id| format!(" (id {id:?})")).unwrap_or_default();
        let problem = match answer.status {
            ItemStatus::Stored => {
                self.totals.stored += 1;
                return ControlFlow::Continue(());
            }
            ItemStatus::Duplicate => {
                self.totals.duplicates += 1;
                return ControlFlow::Continue(());
            }
            ItemStatus::Conflict => {
                self.totals.conflicts += 1;
                let reason = errors.first().map(|e| e.reason.as_str()).unwrap_or(
                    "an event with this source and id is stored with other content; nothing was stored",
                );
                // Each names the stored event it conflicts with: said every time.
                self.progress.println(&format!("{}: conflict{id}: {reason}", pending.place));
                "conflict"
            }
            ItemStatus::Rejected => {
                self.totals.rejected += 1;
                let reasons: Vec<String> = errors.iter().map(describe_error).collect();
                let reasons =
                    if reasons.is_empty() { "no reason given".to_owned() } else { reasons.join("; ") };
                let line = format!("{}: rejected{id}: {reasons}", pending.place);
                self.say_once(&pending.place, format!("rejected: {reasons}"), line);
                "rejected"
            }
        };
        if self.json {
            let mut record = place_json(&pending.place);
            record["problem"] = json!(problem);
            if let Some(id) = &pending.id {
                record["id"] = json!(id);
            }
            record["errors"] = json!(errors);
            if problem == "conflict" {
                record["existing_event_id"] = json!(answer.event_id);
                record["existing_index"] = json!(answer.index);
            }
            crate::outln!("{record}");
        }
        if self.fail_fast { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }

    /// POSTs `batch` as NDJSON and answers one result per event. A batch the server finds too large
    /// is split in halves; a single event still too large is answered as rejected.
    fn send(&mut self, batch: &[Pending]) -> Result<Vec<ItemResult>> {
        let body: Vec<u8> = batch.iter().flat_map(|pending| pending.line.iter().copied()).collect();
        match self.post(body)? {
            Posted::Answer(answer) => {
                let receipts = answer.receipts;
                if receipts.len() != batch.len() {
                    bail!(
                        "unexpected answer from {}: {} results for {} events",
                        self.client.base(),
                        receipts.len(),
                        batch.len()
                    );
                }
                Ok(receipts)
            }
            Posted::TooLarge(detail) if batch.len() == 1 => {
                Ok(vec![ItemResult::rejected(vec![InvalidParam {
                    name: String::new(),
                    rule: "size".into(),
                    reason: detail,
                }])])
            }
            Posted::TooLarge(_) => {
                let (first, second) = batch.split_at(batch.len() / 2);
                let mut answers = self.send(first)?;
                answers.extend(self.send(second)?);
                Ok(answers)
            }
        }
    }

    /// Before reading anything: that the server is there and takes this key for appending. An empty
    /// NDJSON body is authenticated and authorised like any other, then refused (400) for holding
    /// no event; nothing is stored.
    fn check_server(&mut self) -> Result<()> {
        match self.client.post_events("application/x-ndjson", Vec::new()) {
            Ok(_) | Err(ClientError::Api { status: 400 | 429 | 503, .. }) => {
                self.contacted = true;
                Ok(())
            }
            Err(error) => Err(self.fatal(error)),
        }
    }

    /// The error that ends ingestion, said plainly.
    fn fatal(&self, error: ClientError) -> anyhow::Error {
        let base = self.client.base();
        match &error {
            ClientError::Api { status: 401, .. } => {
                anyhow::anyhow!("the API key was refused by {base} ({error}); check --key or EVIDENT_API_KEY")
            }
            ClientError::Api { status: 403, .. } => anyhow::anyhow!(
                "the API key may not append events at {base} ({error}); ingesting needs a key with the producer role"
            ),
            ClientError::Api { .. } => anyhow::anyhow!("the server at {base} refused the events: {error}"),
            ClientError::Unreachable { reason, .. } => {
                let why = connect_error(base).unwrap_or_else(|| reason.clone());
                anyhow::anyhow!(
                    "cannot reach the server at {base}: {why}; is `evident serve` running there? Set --url or \
                     EVIDENT_URL"
                )
            }
            ClientError::Protocol { .. } => anyhow::Error::new(error),
        }
    }

    /// One request, retried while the server is busy (honouring `Retry-After`) or, once it was
    /// reached, briefly unreachable: appending is idempotent, so a repeat never stores twice.
    fn post(&mut self, body: Vec<u8>) -> Result<Posted> {
        let mut busy_attempts = 0;
        let mut unreachable_attempts = 0;
        let mut backoff = Duration::from_millis(500);
        loop {
            let error = match self.client.post_events("application/x-ndjson", body.clone()) {
                Ok((_, answer)) => {
                    self.contacted = true;
                    return Ok(Posted::Answer(answer));
                }
                Err(error) => error,
            };
            let wait = match &error {
                ClientError::Api { status: 503 | 429, retry_after, .. } => {
                    busy_attempts += 1;
                    if busy_attempts >= MAX_BUSY_ATTEMPTS {
                        bail!(
                            "the server at {} stayed busy after {busy_attempts} attempts: {error}",
                            self.client.base()
                        );
                    }
                    retry_after.map(Duration::from_secs).unwrap_or(backoff).min(Duration::from_secs(60))
                }
                ClientError::Api { status: 413, detail, .. } => {
                    return Ok(Posted::TooLarge(detail.clone().unwrap_or_else(|| error.to_string())));
                }
                ClientError::Unreachable { .. } if !self.contacted => return Err(self.fatal(error)),
                ClientError::Unreachable { .. } => {
                    unreachable_attempts += 1;
                    if unreachable_attempts >= MAX_UNREACHABLE_ATTEMPTS {
                        return Err(anyhow::Error::new(error)
                            .context(format!("the server at {} went away", self.client.base())));
                    }
                    backoff
                }
                _ => return Err(self.fatal(error)),
            };
            self.progress.println(&format!("evident: {error}; retrying in {:.1} s", wait.as_secs_f64()));
            std::thread::sleep(wait);
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Prints the summary: on stderr for people, and as JSON on stdout for scripts.
    fn summary(&self, stopped: bool) {
        let totals = &self.totals;
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 { totals.records as f64 / elapsed } else { 0.0 };
        let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut line = format!(
            "{}, {} read: {} stored, {} already present, {}, {} rejected, {}, {} skipped; {elapsed:.1} s, {rate:.0} records/s",
            plural(totals.files, "file", "files"),
            plural(totals.records, "record", "records"),
            totals.stored,
            totals.duplicates,
            plural(totals.conflicts, "conflict", "conflicts"),
            totals.rejected,
            plural(totals.bad_lines, "bad line", "bad lines"),
            totals.skipped,
        );
        if stopped {
            line.push_str("; stopped at the first problem (--fail-fast)");
        }
        eprintln!("{line}");
        if self.json {
            let summary = json!({"summary": {
                "files": totals.files,
                "records": totals.records,
                "stored": totals.stored,
                "duplicates": totals.duplicates,
                "conflicts": totals.conflicts,
                "rejected": totals.rejected,
                "bad_lines": totals.bad_lines,
                "skipped": totals.skipped,
                "stopped_early": stopped,
                "elapsed_seconds": (elapsed * 1000.0).round() / 1000.0,
                "records_per_second": rate.round(),
            }});
            crate::outln!("{summary}");
        }
    }
}

/// Why a TCP connection to the server's address fails (e.g. "Connection refused"), if it does:
/// the HTTP client's own error does not say.
fn connect_error(base: &str) -> Option<String> {
    use std::net::{TcpStream, ToSocketAddrs as _};
    let (scheme, rest) = base.split_once("://")?;
    let authority = rest.split('/').next()?.rsplit('@').next()?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    let has_port = authority.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok())
        && !authority.ends_with(']');
    let address = if has_port { authority.to_owned() } else { format!("{authority}:{default_port}") };
    let addresses = match address.to_socket_addrs() {
        Ok(addresses) => addresses,
        Err(err) => return Some(format!("cannot resolve {authority}: {err}")),
    };
    let mut last = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, Duration::from_secs(5)) {
            Ok(_) => return None,
            Err(err) => last = Some(err.to_string()),
        }
    }
    last
}

enum Posted {
    Answer(IngestResponse),
    /// 413: the batch (or the one event) is too large; the server's detail.
    TooLarge(String),
}

/// Where a problem is, for `--json`: `{"file", "line"}` and `"record"` inside a JSON document.
fn place_json(place: &Place) -> Value {
    let mut json = json!({"file": &*place.file, "line": place.line});
    if let Some(record) = place.record {
        json["record"] = json!(record);
    }
    json
}

/// `name (rule): reason` of one item error.
fn describe_error(error: &InvalidParam) -> String {
    let (name, rule, reason) = (error.name.as_str(), error.rule.as_str(), error.reason.as_str());
    match (name.is_empty(), rule.is_empty()) {
        (false, false) => format!("{name} ({rule}): {reason}"),
        (true, false) => format!("({rule}) {reason}"),
        _ => reason.to_owned(),
    }
}

/// Progress over the bytes of all files: a bar on a terminal, a plain line now and then otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    /// Bytes of the files done.
    done_files: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        let now = Instant::now();
        Progress { bar, total, done_files: 0, started: now, last_line: now }
    }

    fn start_file(&mut self, input: &Input) {
        if let Some(bar) = &self.bar {
            bar.set_prefix(input.name.clone());
        }
    }

    /// `position`: bytes of `input` read so far.
    fn update(&mut self, input: &Input, position: u64, totals: &Totals) {
        let at = self.done_files + position.min(input.size);
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} stored, {} already present", totals.stored, totals.duplicates));
            bar.set_position(at);
            return;
        }
        if self.last_line.elapsed() < PLAIN_PROGRESS_EVERY {
            return;
        }
        self.last_line = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = totals.records as f64 / elapsed.max(0.001);
        let fraction = if self.total == 0 { 1.0 } else { at as f64 / self.total as f64 };
        let left = if fraction > 0.0 { elapsed / fraction - elapsed } else { 0.0 };
        eprintln!(
            "{}: {:.0}% of {} bytes, {} records, {rate:.0} records/s, about {left:.0} s left",
            input.name,
            fraction * 100.0,
            self.total,
            totals.records
        );
    }

    fn end_file(&mut self, input: &Input) {
        self.done_files += input.size;
        if let Some(bar) = &self.bar {
            bar.set_position(self.done_files);
        }
    }

    /// A line for people (above the bar, if any).
    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
