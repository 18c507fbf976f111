//! `evident demo`: fills a server with a realistic customer-service history, so that a newcomer
//! who runs `evident serve` and `evident demo` has something real to explore: customers and
//! agents, logins (some failed), support tickets, reads and edits of customer records with before
//! and after values, list exports, a deletion request, and three planted patterns to find with
//! `evident search` (an agent reading hundreds of customers at night, a burst of failed logins from
//! one address, a VIP customer read without a reason).
//!
//! The history is a pure function of the flags (`--seed`, `--customers`, `--days`, `--until`):
//! event ids are derived from them, so a second run with the same flags is answered with
//! duplicates and stores nothing new. It covers the `--days` days before `--until` (default
//! today) in business time, UTC+01:00 all year, where agents work their shifts.
//!
//! Generation has two passes: a plan (who does what when: logins, ticket work, signups, exports,
//! the planted patterns) and, in time order, its realisation into events against the state of
//! customers and tickets, so that every `before` is the `after` of the change before it.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{Datelike as _, NaiveDate, TimeDelta};
use evident_wire::Micros;
use evident_wire::api::{CreateKey, IngestResponse, ItemStatus};
use serde_json::{Value, json};

#[path = "demo_story.rs"]
mod story;

use crate::ClientArgs;
use crate::output;
use crate::search::{client, explain};

/// Events per request.
const BATCH: usize = 500;
const NDJSON: &str = "application/x-ndjson";
/// Business time: UTC+01:00, no daylight saving.
const OFFSET_SECONDS: i64 = 3600;
const ZONE: &str = "+01:00";

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

const CRM: &str = "//crm.example.com/support-desk";
const SSO: &str = "//sso.example.com";
const SHOP: &str = "//shop.example.com/accounts";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    client: ClientArgs,
    /// How many customers the business has.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(20..=100_000))]
    customers: u64,
    /// Days of history, ending the day before --until.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u64).range(1..=90))]
    days: u64,
    /// Seed of the generator: the same seed and flags make the same history, with the same ids.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The day after the history (YYYY-MM-DD, business time); default today. Pins the history, so
    /// that a run on another day stores nothing new either (the same history: the shifts follow
    /// the weekdays, so two days make two histories).
    #[arg(long, value_name = "DAY", env = "EVIDENT_DEMO_UNTIL")]
    until: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let client = client(&args.client)?;
    let until = match &args.until {
        Some(text) => parse_day(text).ok_or_else(|| anyhow!("--until must be a day like 2026-11-26"))?,
        None => (Micros::now().0 + OFFSET_SECONDS * SECOND).div_euclid(DAY),
    };
    let plan = Plan {
        seed: args.seed,
        customers: usize::try_from(args.customers).context("--customers")?,
        days: i64::try_from(args.days).context("--days")?,
        until,
    };
    let history = plan.generate();

    let (key_id, key) = producer_key(&client)?;
    let producer = client.with_key(Some(key));
    let tally = send(&producer, &history.events)?;
    report(&args, &plan, &history, &tally, &key_id);
    Ok(if tally.rejected + tally.conflicts == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Creates the producer key demo sends with; answers its key id and the key.
fn producer_key(admin: &evident_client::Client) -> Result<(String, String)> {
    let request = CreateKey { tenant: None, role: "producer".into(), label: Some("demo".into()) };
    let key = admin.create_key(&request).map_err(|err| match err {
        evident_client::Error::Api { status: 403, .. } => anyhow!(
            "demo needs an admin key (the one `evident serve` printed on its first start) to create \
             the producer key it sends with; this key may not create keys (403)"
        ),
        other => explain(other),
    })?;
    Ok((key.info.key_id, key.key))
}

/// What the server said about the events sent.
#[derive(Default)]
struct Tally {
    sent: usize,
    stored: usize,
    duplicates: usize,
    conflicts: usize,
    rejected: usize,
    /// Event type -> (sent, stored).
    by_type: BTreeMap<String, (usize, usize)>,
    /// The first few refusals, for the report.
    problems: Vec<String>,
}

fn send(client: &evident_client::Client, events: &[Value]) -> Result<Tally> {
    let mut tally = Tally::default();
    for batch in events.chunks(BATCH) {
        let mut body = Vec::new();
        for event in batch {
            serde_json::to_writer(&mut body, event).context("serialising an event")?;
            body.push(b'\n');
        }
        let receipts = post_with_retries(client, body)?.receipts;
        if receipts.len() != batch.len() {
            bail!("the server answered {} receipts for {} events", receipts.len(), batch.len());
        }
        for (event, receipt) in batch.iter().zip(&receipts) {
            let counts = tally.by_type.entry(event["type"].as_str().unwrap_or("?").to_owned()).or_default();
            counts.0 += 1;
            tally.sent += 1;
            let status = match receipt.status {
                ItemStatus::Stored => {
                    counts.1 += 1;
                    tally.stored += 1;
                    continue;
                }
                ItemStatus::Duplicate => {
                    tally.duplicates += 1;
                    continue;
                }
                ItemStatus::Conflict => {
                    tally.conflicts += 1;
                    "conflict"
                }
                ItemStatus::Rejected => {
                    tally.rejected += 1;
                    "rejected"
                }
            };
            if tally.problems.len() < 5 {
                let errors = serde_json::to_string(&receipt.errors).expect("errors serialise");
                tally.problems.push(format!("event {}: {status}: {errors}", event["id"]));
            }
        }
    }
    Ok(tally)
}

/// POSTs one NDJSON batch, waiting out a busy server (503) for a while.
fn post_with_retries(client: &evident_client::Client, body: Vec<u8>) -> Result<IngestResponse> {
    const ATTEMPTS: u32 = 30;
    for _ in 1..ATTEMPTS {
        match client.post_events(NDJSON, body.clone()) {
            Ok((_, answer)) => return Ok(answer),
            Err(evident_client::Error::Api { status: 503, retry_after, .. }) => {
                std::thread::sleep(Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 10)));
            }
            Err(err) => return Err(explain(err)).context("sending the demo events"),
        }
    }
    let (_, answer) = client.post_events(NDJSON, body).map_err(explain).context("sending the demo events")?;
    Ok(answer)
}

fn report(args: &Args, plan: &Plan, history: &History, tally: &Tally, key_id: &str) {
    let first_day = day_text(plan.until - plan.days);
    let last_day = day_text(plan.until - 1);
    let night = &history.night;
    let burst = &history.burst;
    let vip = &history.vip_read;
    if output::json_wanted(args.client.json) {
        let by_type: BTreeMap<&str, Value> = tally
            .by_type
            .iter()
            .map(|(t, (sent, stored))| (t.as_str(), json!({"sent": sent, "stored": stored})))
            .collect();
        let summary = json!({
            "first_day": first_day, "last_day": last_day, "time_zone": ZONE,
            "customers": plan.customers, "agents": AGENTS.len(), "seed": plan.seed,
            "producer_key_id": key_id,
            "sent": tally.sent, "stored": tally.stored, "duplicates": tally.duplicates,
            "conflicts": tally.conflicts, "rejected": tally.rejected, "by_type": by_type,
            "patterns": {
                "night_reads": {"actor": night.actor, "from": local_time(night.from),
                                "to": local_time(night.to), "reads": night.reads},
                "failed_login_burst": {"ip": burst.ip, "from": local_time(burst.from),
                                       "to": local_time(burst.to), "attempts": burst.attempts},
                "vip_read_without_reason": {"actor": vip.actor, "subject": vip.subject,
                                            "time": local_time(vip.time)},
                "deletion_request": {"subject": history.deletion_subject},
            },
            "story": {"contacts": history.contacts, "channels": story::CHANNELS,
                      "drop_off": {"channel": story::DROP_OFF_CHANNEL, "step": "contact.verified"},
                      "slow_channel": story::SLOW_CHANNEL},
        });
        crate::outln!("{summary}");
    } else {
        crate::outln!(
            "demo history {first_day} to {last_day} (business time UTC{ZONE}): {} customers, {} agents, seed {}",
            plan.customers,
            AGENTS.len(),
            plan.seed
        );
        crate::outln!(
            "sent {} events with a new producer key (id {key_id}, label demo): {} stored, {} already there",
            tally.sent,
            tally.stored,
            tally.duplicates
        );
        if tally.stored == 0 && tally.duplicates == tally.sent {
            crate::outln!("(this history was sent before; another --seed or --until makes a new one)");
        }
        crate::outln!();
        let rows: Vec<Vec<String>> = tally
            .by_type
            .iter()
            .map(|(t, (sent, stored))| vec![t.clone(), sent.to_string(), stored.to_string()])
            .collect();
        output::table(&["TYPE", "SENT", "STORED"], &rows);
        let day = |micros: i64| local_time(micros)[..10].to_owned();
        let at = |micros: i64| local_time(micros)[..16].replace('T', " ");
        crate::outln!();
        crate::outln!("planted patterns, to find with `evident search` (same --url and --key):");
        crate::outln!(
            "  1. {} read {} customers between 01:00 and 03:00 on {}:",
            night.actor,
            night.reads,
            day(night.from)
        );
        crate::outln!(
            "     evident search --actor {} --from {} --to {} --all",
            night.actor,
            local_time_short(night.from),
            local_time_short(night.to)
        );
        crate::outln!(
            "  2. {} failed logins from one address within 5 minutes, {} to {}:",
            burst.attempts,
            at(burst.from),
            &at(burst.to)[11..]
        );
        crate::outln!(
            "     evident search --type auth.login.failed --from {} --to {}",
            local_time_short(burst.from),
            local_time_short(burst.to)
        );
        crate::outln!(
            "  3. {} read VIP customer {} without a reason (every other read names a ticket):",
            vip.actor,
            vip.subject
        );
        crate::outln!("     evident search --subject {} --type customer.record.viewed", vip.subject);
        crate::outln!(
            "also: customer {} asked to be deleted: evident search --subject {}",
            history.deletion_subject,
            history.deletion_subject
        );
        crate::outln!(
            "names, addresses and before/after values are personal: an investigator key and --purpose \
             show them"
        );
        story::report(history.contacts);
    }
    for problem in &tally.problems {
        eprintln!("evident: not stored: {problem}");
    }
}

// ---- time in business days ----

/// Day 0 of the day numbers.
const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");

/// The day number (days since 1970-01-01) of `YYYY-MM-DD`, for years 1970 to 9999.
fn parse_day(text: &str) -> Option<i64> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    (1970..=9999).contains(&date.year()).then(|| (date - EPOCH).num_days())
}

/// `YYYY-MM-DD` of a day number.
fn day_text(days: i64) -> String {
    (EPOCH + TimeDelta::days(days)).format("%Y-%m-%d").to_string()
}

/// The UTC instant (microseconds) a business day starts.
fn day_start(days: i64) -> i64 {
    days * DAY - OFFSET_SECONDS * SECOND
}

/// 0 is Sunday.
fn weekday(days: i64) -> i64 {
    (days + 4).rem_euclid(7)
}

/// An instant in business time, RFC 3339 with milliseconds: `2026-11-20T01:02:03.456+01:00`.
fn local_time(micros: i64) -> String {
    let local = micros + OFFSET_SECONDS * SECOND;
    let (seconds, millis) = (local.div_euclid(SECOND), local.rem_euclid(SECOND) / 1000);
    let (hour, minute, second) =
        (seconds.rem_euclid(86_400) / 3600, seconds.rem_euclid(3600) / 60, seconds.rem_euclid(60));
    format!("{}T{hour:02}:{minute:02}:{second:02}.{millis:03}{ZONE}", day_text(seconds.div_euclid(86_400)))
}

/// `2026-11-20T01:00:00+01:00`: for commands people type.
fn local_time_short(micros: i64) -> String {
    let full = local_time(micros);
    format!("{}{ZONE}", &full[..19])
}

// ---- the generator ----

/// A small, seeded generator (SplitMix64): the same seed gives the same history everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    /// In `low..high` (low < high).
    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + ((u128::from(self.next()) * (high - low) as u128) >> 64) as i64
    }

    fn chance(&mut self, probability: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < probability
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Agents: (id, name). The first two are team leads (they export lists and handle erasures).
const AGENTS: [(&str, &str); 15] = [
    ("agt_asilva", "Ana Silva"),
    ("agt_bokafor", "Ben Okafor"),
    ("agt_cmeyer", "Clara Meyer"),
    ("agt_dkowalski", "Dawid Kowalski"),
    ("agt_enakamura", "Emi Nakamura"),
    ("agt_fbrennan", "Fiona Brennan"),
    ("agt_grossi", "Giulia Rossi"),
    ("agt_hdiallo", "Hamza Diallo"),
    ("agt_ilarsen", "Ida Larsen"),
    ("agt_jmorales", "Javier Morales"),
    ("agt_kpetrova", "Katya Petrova"),
    ("agt_lnguyen", "Linh Nguyen"),
    ("agt_mobrien", "Maeve O'Brien"),
    ("agt_nshah", "Nikhil Shah"),
    ("agt_ovisser", "Olaf Visser"),
];
const LEADS: usize = 2;

const DESKTOP_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
];
const MOBILE_AGENTS: &[&str] = &[
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
];

const FIRST_NAMES: &[&str] = &[
    "Olivia", "Noah", "Amelia", "Liam", "Sofia", "Mateo", "Hannah", "Lucas", "Aisha", "Omar", "Chloe",
    "Ethan", "Mia", "Leon", "Zara", "Yusuf", "Emma", "Finn", "Nora", "Arjun", "Lea", "Kai", "Inès", "Tomasz",
    "Priya", "Jonas", "Elif", "Marco", "Freya", "Samuel", "Chiara", "Diego", "Ava", "Felix", "Maja",
    "Rafael", "Lina", "Hugo", "Sara", "Erik",
];
const LAST_NAMES: &[&str] = &[
    "Smith",
    "Müller",
    "García",
    "Rossi",
    "Novak",
    "Jensen",
    "Okoye",
    "Kim",
    "Dubois",
    "Costa",
    "Schmidt",
    "Andersson",
    "Kowalska",
    "Haddad",
    "Fischer",
    "Moreau",
    "Silva",
    "Brown",
    "Tanaka",
    "Ivanova",
    "Murphy",
    "Bakker",
    "Weber",
    "López",
    "Nielsen",
    "Horvat",
    "Yılmaz",
    "Patel",
    "Wright",
    "Lindqvist",
];
const STREETS: &[&str] = &[
    "Acacia Avenue",
    "Station Road",
    "Mill Lane",
    "Church Street",
    "Harbour View",
    "Elm Grove",
    "Canal Street",
    "Park Terrace",
    "Orchard Way",
    "Victoria Road",
    "High Street",
    "Linden Close",
    "Bridge Street",
    "Meadow Rise",
    "Kings Road",
];
const CITIES: &[(&str, &str)] = &[
    ("Bristol", "BS1"),
    ("Leeds", "LS2"),
    ("York", "YO1"),
    ("Bath", "BA1"),
    ("Brighton", "BN1"),
    ("Oxford", "OX1"),
    ("Norwich", "NR2"),
    ("Exeter", "EX4"),
    ("Cardiff", "CF10"),
    ("Glasgow", "G1"),
];
const CATEGORIES: &[&str] = &["billing", "delivery", "account", "returns", "technical", "complaint"];
const CHANNELS: &[&str] = &["phone", "email", "chat"];
const PRIORITIES: &[&str] = &["low", "normal", "normal", "normal", "high"];
/// Lists team leads export: (list id, why).
const EXPORTS: &[(&str, &str)] = &[
    ("vip-customers", "weekly VIP newsletter mailing list"),
    ("gold-churn-risk", "retention campaign review"),
];

/// The credential-stuffing burst: who it tries.
const BURST_USERNAMES: &[&str] =
    &["admin", "agt_cmeyer", "support", "agt_asilva", "helpdesk", "root", "agt_nshah", "test"];
const BURST_ATTEMPTS: usize = 40;
const BURST_IP: &str = "192.0.2.66";
const NIGHT_IP: &str = "203.0.113.45";
const DELETION_REQUEST: &str = "DSR-2041";

/// The flags that determine a history.
struct Plan {
    seed: u64,
    customers: usize,
    days: i64,
    /// The day (number) after the history.
    until: i64,
}

/// A generated history and where its planted patterns are.
struct History {
    events: Vec<Value>,
    night: NightReads,
    burst: Burst,
    vip_read: VipRead,
    deletion_subject: String,
    /// Contacts of the contact-centre story (`demo_story.rs`).
    contacts: usize,
}

struct NightReads {
    actor: &'static str,
    /// The hours searched: 01:00 to 03:00 business time.
    from: i64,
    to: i64,
    reads: usize,
}

struct Burst {
    ip: &'static str,
    /// From the first attempt, five minutes.
    from: i64,
    to: i64,
    attempts: usize,
}

struct VipRead {
    actor: &'static str,
    subject: String,
    time: i64,
}

#[derive(Clone)]
struct Customer {
    id: String,
    name: String,
    email: String,
    phone: String,
    address: String,
    tier: &'static str,
    /// Signed up during the history (else before it).
    created: Option<i64>,
    /// Asked to be deleted: no new activity from then on.
    frozen_from: Option<i64>,
    /// A ticket is being worked on until then.
    busy_until: i64,
}

struct Ticket {
    id: String,
    customer: usize,
    status: &'static str,
    assignee: usize,
}

/// What the plan schedules; realised in time order.
#[derive(Clone, Copy)]
enum Step {
    Login { agent: usize, failed_first: bool },
    Logout { agent: usize },
    Ticket { agent: usize },
    Signup { customer: usize },
    Export { agent: usize, list: usize },
    DeletionRequest { customer: usize },
    Deletion { agent: usize, customer: usize },
    NightReads { agent: usize },
    LoginBurst,
    VipRead { agent: usize, customer: usize },
}

impl Plan {
    fn generate(&self) -> History {
        let mut rng = Rng(self.seed ^ 0x6576_6964_656e_7464); // "evidentd"
        let first_day = self.until - self.days;
        let mut customers = self.customers(&mut rng, first_day);
        let day_of = |index: i64| first_day + index.clamp(0, self.days - 1);
        let is_weekday = |day: i64| (1..=5).contains(&weekday(day));

        let mut steps: Vec<(i64, Step)> = Vec::new();
        for (index, customer) in customers.iter().enumerate() {
            if let Some(time) = customer.created {
                steps.push((time, Step::Signup { customer: index }));
            }
        }
        for day in first_day..self.until {
            self.plan_day(&mut rng, day, &mut steps);
        }

        // The planted patterns and the rarer events.
        let non_leads: Vec<usize> = (LEADS..AGENTS.len()).collect();
        let night_agent = *rng.pick(&non_leads);
        let vip_agent = loop {
            let agent = *rng.pick(&non_leads);
            if agent != night_agent {
                break agent;
            }
        };
        let night_day = day_of(self.days - 3);
        steps.push((day_start(night_day) + 51 * MINUTE, Step::NightReads { agent: night_agent }));
        let burst_day = day_of(self.days - 6);
        steps.push((day_start(burst_day) + 4 * HOUR + 12 * MINUTE, Step::LoginBurst));
        let vip_day = (first_day..self.until).rev().find(|day| is_weekday(*day)).unwrap_or(self.until - 1);
        let vip_customer = customers
            .iter()
            .position(|c| c.tier == "vip" && c.created.is_none())
            .expect("the customer list has a VIP who was there from the start");
        let vip_time = day_start(vip_day) + 14 * HOUR + 37 * MINUTE + rng.between(0, 60 * SECOND);
        steps.push((vip_time, Step::VipRead { agent: vip_agent, customer: vip_customer }));
        let export_day = (self.days / 2..self.days).map(day_of).find(|d| is_weekday(*d)).unwrap_or(day_of(0));
        steps.push((day_start(export_day) + 16 * HOUR + 20 * MINUTE, Step::Export { agent: 1, list: 1 }));
        let deletion_customer = (11..customers.len())
            .find(|&c| customers[c].tier == "standard" && customers[c].created.is_none())
            .expect("the customer list has standard customers from the start");
        let request_at = day_start(day_of(self.days / 3)) + 19 * HOUR + 40 * MINUTE;
        customers[deletion_customer].frozen_from = Some(request_at);
        steps.push((request_at, Step::DeletionRequest { customer: deletion_customer }));
        let deleted_at = if self.days / 3 + 2 < self.days {
            day_start(day_of(self.days / 3 + 2)) + 10 * HOUR + 15 * MINUTE
        } else {
            request_at + HOUR
        };
        steps.push((deleted_at, Step::Deletion { agent: 0, customer: deletion_customer }));
        steps.sort_by_key(|(time, _)| *time);

        let mut world = World {
            rng,
            customers,
            tickets: Vec::new(),
            open: Vec::new(),
            sessions: vec![String::new(); AGENTS.len()],
            events: Vec::new(),
        };
        let mut night = None;
        let mut burst = None;
        for (time, step) in steps {
            match step {
                Step::Login { agent, failed_first } => world.login(agent, time, failed_first),
                Step::Logout { agent } => world.logout(agent, time),
                Step::Ticket { agent } => world.ticket(agent, time),
                Step::Signup { customer } => world.signup(customer, time),
                Step::Export { agent, list } => world.export(agent, list, time),
                Step::DeletionRequest { customer } => world.deletion_request(customer, time),
                Step::Deletion { agent, customer } => world.deletion(agent, customer, time),
                Step::NightReads { agent } => night = Some(world.night_reads(agent, time)),
                Step::LoginBurst => burst = Some(world.login_burst(time)),
                Step::VipRead { agent, customer } => world.view(agent, customer, time, None),
            }
        }

        let story = story::play(&mut world, self.seed, first_day, self.until);

        // Ids in time order, derived from the flags: the same flags give the same ids.
        let mut events = world.events;
        events.sort_by_key(|(time, order, _)| (*time, *order));
        let prefix =
            format!("demo-{}-{}-{}c-{}d", self.seed, day_text(self.until), self.customers, self.days);
        let events = events
            .into_iter()
            .enumerate()
            .map(|(n, (time, _, mut event))| {
                event["id"] = json!(format!("{prefix}-{n:05}"));
                event["time"] = json!(local_time(time));
                event
            })
            .collect();
        History {
            events,
            night: night.expect("the night is planned"),
            burst: burst.expect("the burst is planned"),
            vip_read: VipRead {
                actor: AGENTS[vip_agent].0,
                subject: world.customers[vip_customer].id.clone(),
                time: vip_time,
            },
            deletion_subject: world.customers[deletion_customer].id.clone(),
            contacts: story.contacts,
        }
    }

    fn customers(&self, rng: &mut Rng, first_day: i64) -> Vec<Customer> {
        (0..self.customers)
            .map(|index| {
                let first = *rng.pick(FIRST_NAMES);
                let last = *rng.pick(LAST_NAMES);
                // Every 25th customer is a VIP (the first at index 6), one in five gold.
                let tier = if index % 25 == 6 {
                    "vip"
                } else if rng.chance(0.2) {
                    "gold"
                } else {
                    "standard"
                };
                let created = (tier != "vip" && index > 10 && rng.chance(0.08)).then(|| {
                    day_start(first_day + rng.between(0, self.days)) + rng.between(8 * HOUR, 22 * HOUR)
                });
                Customer {
                    id: format!("cus_{:05}", index + 1),
                    name: format!("{first} {last}"),
                    email: email(first, last, rng),
                    phone: phone(rng),
                    address: address(rng),
                    tier,
                    created,
                    frozen_from: None,
                    busy_until: i64::MIN,
                }
            })
            .collect()
    }

    /// One day of shifts: who logs in when, works how many tickets, and logs out.
    fn plan_day(&self, rng: &mut Rng, day: i64, steps: &mut Vec<(i64, Step)>) {
        let start = day_start(day);
        let weekend = !(1..=5).contains(&weekday(day));
        let on_duty: Vec<usize> = if weekend {
            // A rota of two agents (not leads) at weekends.
            let n = (AGENTS.len() - LEADS) as i64;
            let first = LEADS + (2 * day).rem_euclid(n) as usize;
            let second = LEADS + (2 * day + 1).rem_euclid(n) as usize;
            vec![first, second]
        } else {
            (0..AGENTS.len()).collect()
        };
        for agent in on_duty {
            let lead = agent < LEADS;
            let (begin, end) = if weekend {
                (9 * HOUR, 17 * HOUR)
            } else if agent % 2 == 0 {
                (7 * HOUR, 15 * HOUR + 30 * MINUTE)
            } else {
                (11 * HOUR + 30 * MINUTE, 20 * HOUR)
            };
            let login = start + begin + rng.between(0, 20 * MINUTE);
            let logout = start + end + rng.between(0, 25 * MINUTE);
            steps.push((login, Step::Login { agent, failed_first: rng.chance(0.07) }));
            let tickets = if weekend {
                rng.between(4, 8)
            } else if lead {
                rng.between(3, 6)
            } else {
                rng.between(9, 14)
            };
            let (work_from, work_to) = (login + 5 * MINUTE, logout - 30 * MINUTE);
            let slot = (work_to - work_from) / tickets;
            for n in 0..tickets {
                steps.push((work_from + n * slot + rng.between(0, slot / 2), Step::Ticket { agent }));
            }
            steps.push((logout, Step::Logout { agent }));
        }
        if weekday(day) == 1 {
            steps.push((start + 10 * HOUR + 5 * MINUTE, Step::Export { agent: 0, list: 0 }));
        }
    }
}

fn ascii_lower(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c {
            'ü' => Some('u'),
            'í' | 'ı' => Some('i'),
            'ó' => Some('o'),
            'è' | 'é' => Some('e'),
            c if c.is_ascii_alphabetic() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn email(first: &str, last: &str, rng: &mut Rng) -> String {
    let tld = rng.pick(&["com", "org", "net"]);
    format!("{}.{}{}@example.{tld}", ascii_lower(first), ascii_lower(last), rng.below(100))
}

/// UK numbers of the range set aside for drama (07700 900000 to 900999).
fn phone(rng: &mut Rng) -> String {
    format!("+44 7700 900{:03}", rng.below(1000))
}

fn address(rng: &mut Rng) -> String {
    let (city, district) = rng.pick(CITIES);
    let letters: String = (0..2).map(|_| char::from(b'A' + rng.below(26) as u8)).collect();
    format!("{} {}, {city} {district} {}{letters}", 1 + rng.below(180), rng.pick(STREETS), 1 + rng.below(9))
}

/// Customers, tickets and sessions as the history unfolds, and the events so far.
struct World {
    rng: Rng,
    customers: Vec<Customer>,
    tickets: Vec<Ticket>,
    /// Tickets not solved yet.
    open: Vec<usize>,
    /// Each agent's current session.
    sessions: Vec<String>,
    /// (time, order made, event without id and time).
    events: Vec<(i64, usize, Value)>,
}

impl World {
    fn push(&mut self, time: i64, event: Value) {
        let order = self.events.len();
        self.events.push((time, order, event));
    }

    fn agent_actor(&self, agent: usize) -> Value {
        let (id, name) = AGENTS[agent];
        json!({"id": id, "type": "user", "display": name, "session": self.sessions[agent]})
    }

    fn office_origin(&self, agent: usize, service: &str) -> Value {
        json!({
            "ip": format!("198.51.100.{}", 20 + agent),
            "user_agent": DESKTOP_AGENTS[agent % DESKTOP_AGENTS.len()],
            "service": service,
        })
    }

    fn customer_target(&self, customer: usize) -> Value {
        let c = &self.customers[customer];
        json!({"type": "customer", "id": c.id, "display": c.name})
    }

    /// Whether a customer may be the subject of new work at `time`.
    fn available(&self, customer: usize, time: i64) -> bool {
        let c = &self.customers[customer];
        c.created.is_none_or(|created| created < time)
            && c.frozen_from.is_none_or(|frozen| time + 30 * MINUTE < frozen)
            && c.busy_until < time
    }

    fn new_session(&mut self, agent: usize) {
        self.sessions[agent] = format!("ses_{:012x}", self.rng.next() >> 16);
    }

    fn login(&mut self, agent: usize, time: i64, failed_first: bool) {
        let (id, name) = AGENTS[agent];
        if failed_first {
            let event = json!({
                "source": SSO, "type": "auth.login.failed", "action": "login",
                "actor": {"id": id, "type": "user", "display": name, "auth": {"method": "password"}},
                "targets": [{"type": "service", "id": "support-desk"}],
                "outcome": "failure", "reason": "bad_password",
                "origin": self.office_origin(agent, "sso"),
            });
            let tried_at = time - self.rng.between(20 * SECOND, 90 * SECOND);
            self.push(tried_at, event);
        }
        self.new_session(agent);
        self.signed_in(agent, time, self.office_origin(agent, "sso"));
    }

    fn signed_in(&mut self, agent: usize, time: i64, origin: Value) {
        let mut actor = self.agent_actor(agent);
        actor["auth"] = json!({"method": "password+totp", "mfa": true});
        let event = json!({
            "source": SSO, "type": "auth.login.succeeded", "action": "login", "actor": actor,
            "targets": [{"type": "service", "id": "support-desk"}], "outcome": "success", "origin": origin,
        });
        self.push(time, event);
    }

    fn logout(&mut self, agent: usize, time: i64) {
        let event = json!({
            "source": SSO, "type": "auth.logout", "action": "logout", "actor": self.agent_actor(agent),
            "targets": [{"type": "service", "id": "support-desk"}], "outcome": "success",
            "origin": self.office_origin(agent, "sso"),
        });
        self.push(time, event);
    }

    /// An available customer at `time`, most often one of the busier first third.
    fn some_customer(&mut self, time: i64) -> Option<usize> {
        let n = self.customers.len();
        (0..20).find_map(|_| {
            let customer = if self.rng.chance(0.5) { self.rng.below(n / 3) } else { self.rng.below(n) };
            self.available(customer, time).then_some(customer)
        })
    }

    /// An agent works one ticket: a new one or a follow-up on an open one. The customer's
    /// record is read (and sometimes edited) with the ticket as the reason.
    fn ticket(&mut self, agent: usize, time: i64) {
        let follow_up = if !self.open.is_empty() && self.rng.chance(0.4) {
            (0..5).find_map(|_| {
                let at = self.rng.below(self.open.len());
                self.available(self.tickets[self.open[at]].customer, time).then(|| self.open.swap_remove(at))
            })
        } else {
            None
        };
        let mut at = time;
        let ticket = match follow_up {
            Some(ticket) => ticket,
            None => {
                let Some(customer) = self.some_customer(time) else { return };
                self.tickets.push(Ticket {
                    id: format!("TCK-{}", 10_001 + self.tickets.len()),
                    customer,
                    status: "open",
                    assignee: agent,
                });
                let ticket = self.tickets.len() - 1;
                let changes = json!([
                    {"field": "/status", "after": "open"},
                    {"field": "/priority", "after": *self.rng.pick(PRIORITIES)},
                    {"field": "/category", "after": *self.rng.pick(CATEGORIES)},
                    {"field": "/assignee", "after": AGENTS[agent].0},
                ]);
                let mut event = self.ticket_event("support.ticket.created", "create", agent, ticket, changes);
                event["metadata"] = json!({"channel": *self.rng.pick(CHANNELS)});
                self.push(at, event);
                ticket
            }
        };
        let customer = self.tickets[ticket].customer;
        let reason = format!("ticket {}", self.tickets[ticket].id);
        at += self.rng.between(40 * SECOND, 240 * SECOND);
        self.view(agent, customer, at, Some(&reason));
        if self.rng.chance(0.28) {
            at += self.rng.between(60 * SECOND, 400 * SECOND);
            self.edit(agent, customer, at, &reason);
        }
        if self.rng.chance(0.15) {
            at += self.rng.between(30 * SECOND, 300 * SECOND);
            self.view(agent, customer, at, Some(&reason));
        }
        at += self.rng.between(30 * SECOND, 600 * SECOND);
        let before = self.tickets[ticket].status;
        let after = match before {
            "open" if self.rng.chance(0.4) => "pending",
            "pending" if self.rng.chance(0.3) => "open",
            _ => "solved",
        };
        let mut changes = vec![json!({"field": "/status", "before": before, "after": after})];
        let previous = self.tickets[ticket].assignee;
        if previous != agent {
            changes
                .push(json!({"field": "/assignee", "before": AGENTS[previous].0, "after": AGENTS[agent].0}));
        }
        self.tickets[ticket].status = after;
        self.tickets[ticket].assignee = agent;
        let event = self.ticket_event("support.ticket.updated", "update", agent, ticket, json!(changes));
        self.push(at, event);
        if after != "solved" {
            self.open.push(ticket);
        }
        self.customers[customer].busy_until = at + 5 * MINUTE;
    }

    fn ticket_event(
        &self,
        event_type: &str,
        action: &str,
        agent: usize,
        ticket: usize,
        changes: Value,
    ) -> Value {
        let t = &self.tickets[ticket];
        json!({
            "source": CRM, "type": event_type, "action": action, "actor": self.agent_actor(agent),
            "subject": self.customers[t.customer].id,
            "targets": [{"type": "ticket", "id": t.id}, self.customer_target(t.customer)],
            "outcome": "success", "changes": changes,
            "origin": self.office_origin(agent, "support-desk"),
            "correlation": {"correlation_id": t.id},
        })
    }

    /// A read of a customer record (personal data); `reason` is the purpose, absent only where
    /// planted.
    fn view(&mut self, agent: usize, customer: usize, time: i64, reason: Option<&str>) {
        let mut event = json!({
            "source": CRM, "type": "customer.record.viewed", "action": "read",
            "actor": self.agent_actor(agent), "subject": self.customers[customer].id,
            "targets": [self.customer_target(customer)], "outcome": "success",
            "origin": self.office_origin(agent, "support-desk"), "data_classes": ["pii"],
        });
        if let Some(reason) = reason {
            event["reason"] = json!(reason);
            if let Some(ticket) = reason.strip_prefix("ticket ") {
                event["correlation"] = json!({"correlation_id": ticket});
            }
        }
        self.push(time, event);
    }

    /// An edit of one field of a customer record, with the value before and after.
    fn edit(&mut self, agent: usize, customer: usize, time: i64, reason: &str) {
        let roll = self.rng.below(100);
        let c = &self.customers[customer];
        let (field, before, after) = if roll < 35 {
            let first = c.name.split(' ').next().unwrap_or("customer").to_owned();
            let last = c.name.rsplit(' ').next().unwrap_or("customer").to_owned();
            let email = email(&first, &last, &mut self.rng);
            ("email", std::mem::replace(&mut self.customers[customer].email, email.clone()), email)
        } else if roll < 65 {
            let phone = phone(&mut self.rng);
            ("phone", std::mem::replace(&mut self.customers[customer].phone, phone.clone()), phone)
        } else if roll < 90 || c.tier == "vip" {
            let address = address(&mut self.rng);
            ("address", std::mem::replace(&mut self.customers[customer].address, address.clone()), address)
        } else {
            let tier = if c.tier == "gold" { "standard" } else { "gold" };
            ("tier", std::mem::replace(&mut self.customers[customer].tier, tier).to_owned(), tier.to_owned())
        };
        let event = json!({
            "source": CRM, "type": "customer.record.updated", "action": "update",
            "actor": self.agent_actor(agent), "subject": self.customers[customer].id,
            "targets": [self.customer_target(customer)], "outcome": "success", "reason": reason,
            "changes": [{"field": format!("/{field}"), "before": before, "after": after}],
            "origin": self.office_origin(agent, "support-desk"), "data_classes": ["pii"],
            "correlation": {"correlation_id": reason.trim_start_matches("ticket ")},
        });
        self.push(time, event);
    }

    fn record_values(&self, customer: usize) -> [(&'static str, String); 5] {
        let c = &self.customers[customer];
        [
            ("/name", c.name.clone()),
            ("/email", c.email.clone()),
            ("/phone", c.phone.clone()),
            ("/address", c.address.clone()),
            ("/tier", c.tier.to_owned()),
        ]
    }

    fn customer_origin(&mut self) -> Value {
        json!({
            "ip": format!("203.0.113.{}", 100 + self.rng.below(100)),
            "user_agent": *self.rng.pick(MOBILE_AGENTS),
            "service": "shop",
        })
    }

    /// A customer signs up in the shop: the record is created.
    fn signup(&mut self, customer: usize, time: i64) {
        let changes: Vec<Value> = self
            .record_values(customer)
            .into_iter()
            .map(|(field, value)| json!({"field": field, "after": value}))
            .collect();
        let event = json!({
            "source": SHOP, "type": "customer.record.created", "action": "create",
            "actor": {"id": "svc_signup", "type": "service"}, "subject": self.customers[customer].id,
            "targets": [self.customer_target(customer)], "outcome": "success", "changes": changes,
            "origin": self.customer_origin(), "data_classes": ["pii"],
        });
        self.push(time, event);
    }

    /// A team lead exports a list of customers.
    fn export(&mut self, agent: usize, list: usize, time: i64) {
        let (list_id, reason) = EXPORTS[list];
        let tier = if list == 0 { "vip" } else { "gold" };
        let rows = (0..self.customers.len())
            .filter(|&c| self.customers[c].tier == tier && self.customers[c].created.is_none_or(|t| t < time))
            .count();
        let event = json!({
            "source": CRM, "type": "customer.list.exported", "action": "export",
            "actor": self.agent_actor(agent), "targets": [{"type": "customer_list", "id": list_id}],
            "outcome": "success", "reason": reason, "data_classes": ["pii"],
            "metadata": {"format": "csv", "rows": rows.to_string()},
            "origin": self.office_origin(agent, "support-desk"),
        });
        self.push(time, event);
    }

    /// A customer asks, in the shop, for their data to be erased (GDPR Art. 17).
    fn deletion_request(&mut self, customer: usize, time: i64) {
        let c = &self.customers[customer];
        let event = json!({
            "source": SHOP, "type": "customer.deletion.requested", "action": "other",
            "actor": {"id": c.id, "type": "user", "display": c.name}, "subject": c.id,
            "targets": [self.customer_target(customer)], "outcome": "success",
            "reason": "the customer asked for their data to be erased (GDPR Art. 17)",
            "metadata": {"request_id": DELETION_REQUEST}, "origin": self.customer_origin(),
            "correlation": {"correlation_id": DELETION_REQUEST},
        });
        self.push(time, event);
    }

    /// A team lead carries out the erasure request: the record is deleted.
    fn deletion(&mut self, agent: usize, customer: usize, time: i64) {
        let changes: Vec<Value> = self
            .record_values(customer)
            .into_iter()
            .map(|(field, value)| json!({"field": field, "before": value}))
            .collect();
        let event = json!({
            "source": CRM, "type": "customer.record.deleted", "action": "delete",
            "actor": self.agent_actor(agent), "subject": self.customers[customer].id,
            "targets": [self.customer_target(customer)], "outcome": "success",
            "reason": format!("erasure request {DELETION_REQUEST}"), "changes": changes,
            "origin": self.office_origin(agent, "support-desk"), "data_classes": ["pii"],
            "correlation": {"correlation_id": DELETION_REQUEST},
        });
        self.push(time, event);
    }

    /// Planted: an agent signs in from home just before 01:00 and reads 300 or more distinct
    /// customers (all of them, if there are fewer) between 01:00 and 03:00, without a ticket.
    fn night_reads(&mut self, agent: usize, login_at: i64) -> NightReads {
        let midnight = login_at - 51 * MINUTE;
        let (from, to) = (midnight + HOUR, midnight + 3 * HOUR);
        let origin = json!({
            "ip": NIGHT_IP,
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "service": "support-desk",
        });
        self.new_session(agent);
        let mut sso_origin = origin.clone();
        sso_origin["service"] = json!("sso");
        self.signed_in(agent, login_at, sso_origin);
        let mut candidates: Vec<usize> = (0..self.customers.len())
            .filter(|&c| {
                let c = &self.customers[c];
                c.created.is_none_or(|t| t < from) && c.frozen_from.is_none_or(|t| t > to)
            })
            .collect();
        self.rng.shuffle(&mut candidates);
        let reads = candidates.len().min(300 + self.rng.below(40));
        let (start, span) = (from + 2 * MINUTE, 116 * MINUTE);
        let step = span / reads.max(1) as i64;
        for (n, &customer) in candidates[..reads].iter().enumerate() {
            let time = start + n as i64 * step + self.rng.between(0, step / 2 + 1);
            let event = json!({
                "source": CRM, "type": "customer.record.viewed", "action": "read",
                "actor": self.agent_actor(agent), "subject": self.customers[customer].id,
                "targets": [self.customer_target(customer)], "outcome": "success",
                "reason": "account review", "origin": origin, "data_classes": ["pii"],
            });
            self.push(time, event);
        }
        let logout = json!({
            "source": SSO, "type": "auth.logout", "action": "logout", "actor": self.agent_actor(agent),
            "targets": [{"type": "service", "id": "support-desk"}], "outcome": "success",
            "origin": {"ip": NIGHT_IP, "service": "sso"},
        });
        self.push(to + 5 * MINUTE, logout);
        NightReads { actor: AGENTS[agent].0, from, to, reads }
    }

    /// Planted: 40 failed logins from one address within five minutes, trying agents' and
    /// common user names.
    fn login_burst(&mut self, start: i64) -> Burst {
        let mut last = start;
        for n in 0..BURST_ATTEMPTS {
            let username = BURST_USERNAMES[n % BURST_USERNAMES.len()];
            let known = AGENTS.iter().any(|(id, _)| *id == username);
            last = start + n as i64 * 6 * SECOND + self.rng.between(0, 900_000);
            let event = json!({
                "source": SSO, "type": "auth.login.failed", "action": "login",
                "actor": {"id": username, "type": if known { "user" } else { "anonymous" },
                          "auth": {"method": "password"}},
                "targets": [{"type": "service", "id": "support-desk"}], "outcome": "failure",
                "reason": if known { "bad_password" } else { "unknown_user" },
                "origin": {"ip": BURST_IP, "user_agent": "python-requests/2.31.0", "service": "sso"},
            });
            self.push(last, event);
        }
        debug_assert!(last < start + 5 * MINUTE);
        Burst { ip: BURST_IP, from: start, to: start + 5 * MINUTE, attempts: BURST_ATTEMPTS }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seed: u64) -> Plan {
        Plan { seed, customers: 400, days: 14, until: parse_day("2026-11-26").unwrap() }
    }

    #[test]
    fn dates() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(day_text(parse_day("2024-02-29").unwrap()), "2024-02-29");
        assert_eq!(parse_day("2023-02-29"), None);
        assert_eq!(parse_day("tomorrow"), None);
        assert_eq!(weekday(parse_day("2026-11-26").unwrap()), 4); // a Thursday
        let noon = Micros::parse_rfc3339("2026-11-26T11:00:00Z").unwrap().0;
        assert_eq!(local_time(noon), "2026-11-26T12:00:00.000+01:00");
        assert_eq!(day_start(parse_day("2026-11-26").unwrap()), noon - 12 * HOUR);
    }

    #[test]
    fn the_same_flags_make_the_same_history() {
        let (a, b) = (plan(7).generate(), plan(7).generate());
        assert_eq!(a.events, b.events);
        assert_ne!(a.events, plan(8).generate().events);
    }

    #[test]
    fn every_event_is_valid_and_the_patterns_are_there() {
        let history = plan(1).generate();
        let n = history.events.len();
        assert!((5_000..=10_000).contains(&n), "{n} events");
        let policy = evident_core::event::TenantPolicy::default();
        let mut ids = std::collections::BTreeSet::new();
        for event in &history.events {
            if let Err(errors) = evident_core::validate::validate_event(event, &policy) {
                panic!("{event}: {errors:?}");
            }
            assert!(ids.insert(event["id"].as_str().unwrap().to_owned()));
        }
        let time = |e: &Value| Micros::parse_rfc3339(e["time"].as_str().unwrap()).unwrap().0;
        let night: std::collections::BTreeSet<&str> = history
            .events
            .iter()
            .filter(|e| e["actor"]["id"] == history.night.actor && e["action"] == "read")
            .filter(|e| (history.night.from..history.night.to).contains(&time(e)))
            .map(|e| e["subject"].as_str().unwrap())
            .collect();
        assert!(night.len() >= 300, "{} customers read at night", night.len());
        let burst = history
            .events
            .iter()
            .filter(|e| e["type"] == "auth.login.failed")
            .filter(|e| (history.burst.from..history.burst.from + 5 * MINUTE).contains(&time(e)))
            .count();
        assert_eq!(burst, BURST_ATTEMPTS);
        let unexplained: Vec<&Value> =
            history.events.iter().filter(|e| e["action"] == "read" && e.get("reason").is_none()).collect();
        assert_eq!(unexplained.len(), 1);
        assert_eq!(unexplained[0]["subject"], history.vip_read.subject.as_str());
    }

    #[test]
    fn every_before_is_the_previous_after() {
        let history = plan(3).generate();
        let mut state: BTreeMap<(String, String), Value> = BTreeMap::new();
        for event in history.events.iter().filter(|e| e["type"] == "customer.record.updated") {
            let change = &event["changes"][0];
            let key =
                (event["subject"].as_str().unwrap().to_owned(), change["field"].as_str().unwrap().to_owned());
            if let Some(previous) = state.get(&key) {
                assert_eq!(previous, &change["before"], "{event}");
            }
            state.insert(key, change["after"].clone());
        }
        assert!(state.len() > 100);
    }
}
