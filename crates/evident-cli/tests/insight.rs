//! Customer insight end to end (issue 15): a real `evident serve` on each store (SQLite and
//! PostgreSQL) holding a small constructed contact-centre history, asked for trends, funnels,
//! journeys, cohorts and measures over HTTP and through `evident insights`, with the exact numbers
//! worked out by hand below; readers get cells of fewer than k customers suppressed, investigators
//! do not; every query is self-audited; bad parameters are refused naming the parameter.
//!
//! The history (minutes after 2026-10-05T10:00Z; `o` opened, `v` verified, `r` resolved):
//!
//! | customer | channel | team | events                                             |
//! | cus-1..4 | phone   | blue | o at 10(n-1), v +5, r +60n (agt_c)                  |
//! | cus-5    | phone   | blue | o 40, v 45, r ten days later (agt_c)                |
//! | cus-6    | phone   | blue | o 50, v 55 failed                                   |
//! | cus-7    | email   | red  | o 60, v 65 (agt_b), r two days after o (agt_c)      |
//! | cus-8    | email   | blue | o 70 (agt_b)                                        |
//! | cus-2    | phone   | blue | back: o at 1570 (a day after its resolution)        |
//! | cus-9    | phone   | blue | one `account.viewed` on 2026-10-03 (before)         |
//!
//! Phone opens and verifications are by agt_a.

mod common;
#[path = "common/insight_history.rs"]
mod insight_history;

use common::{EVIDENT, Schema, Serve, client, database_url, json_lines};
use insight_history::history;
use serde_json::{Value, json};

/// The server with the history stored, and a reader's and an investigator's key.
struct Fixture {
    serve: Serve,
    reader: String,
    investigator: String,
}

fn fixture(serve: Serve) -> Fixture {
    let producer = serve.key("producer");
    let (status, body) = serve.post(&producer, "/v1/events", &json!(history()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["receipts"].as_array().unwrap().len(), 23);
    Fixture { reader: serve.key("reader"), investigator: serve.key("investigator"), serve }
}

fn get(serve: &Serve, key: &str, path: &str) -> (u16, Value) {
    let response = client().get(serve.url(path)).bearer_auth(key).send().expect("GET");
    let status = response.status().as_u16();
    (status, response.json().expect("JSON"))
}

fn ok(f: &Fixture, key: &str, path: &str) -> Value {
    let (status, body) = get(&f.serve, key, path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

const TREND: &str =
    "/v1/insights/trend?by=channel&bucket=day&from=2026-10-05T00:00:00Z&to=2026-10-08T00:00:00Z";

fn trend(f: &Fixture) {
    let all = ok(f, &f.investigator, TREND);
    assert_eq!(all["min_customers"], 0);
    let phone = &all["series"][0];
    assert_eq!(phone["key"], "phone");
    assert_eq!(
        phone["total"],
        json!({"events": 17, "customers": 6, "actors": 2, "failures": 1, "failure_rate": 1.0 / 17.0})
    );
    assert_eq!(phone["previous"]["events"], 1);
    let events = |series: &Value| -> Vec<Value> {
        series["points"].as_array().unwrap().iter().map(|p| p["events"].clone()).collect()
    };
    assert_eq!(events(phone), [json!(16), json!(1), json!(0)]);
    let email = &all["series"][1];
    assert_eq!(
        (email["key"].clone(), email["total"]["events"].clone(), email["total"]["customers"].clone()),
        (json!("email"), json!(4), json!(2))
    );
    assert_eq!(events(email), [json!(3), json!(0), json!(1)]);
    assert_eq!(all["series"][0]["points"][0]["start"], "2026-10-05T00:00:00.000000Z");

    // Readers: email (2 customers) is hidden, and so is what would give it away (phone's total
    // and first day, next to the trend without `by`); phone's second day (1 customer) is hidden,
    // and so its first (or its total would give the second away).
    let read = ok(f, &f.reader, TREND);
    assert_eq!(read["min_customers"], 5);
    let hidden = json!({"suppressed": true});
    assert_eq!(
        (&read["series"][0]["total"], &read["series"][0]["previous"], &read["series"][1]["total"]),
        (&hidden, &hidden, &hidden)
    );
    let day = |s: usize, d: usize| read["series"][s]["points"][d].clone();
    assert_eq!(day(0, 0), json!({"start": "2026-10-05T00:00:00.000000Z", "suppressed": true}));
    assert_eq!(day(0, 1), json!({"start": "2026-10-06T00:00:00.000000Z", "suppressed": true}));
    assert_eq!(day(0, 2)["events"], 0, "an empty cell is shown");
    assert_eq!((day(1, 0)["suppressed"].clone(), day(1, 1)["events"].clone()), (json!(true), json!(0)));
    let all = ok(f, &f.reader, &TREND.replace("by=channel&", ""));
    assert_eq!(
        all["series"][0]["total"],
        json!({"events": 21, "customers": 8, "actors": 3, "failures": 1, "failure_rate": 1.0 / 21.0})
    );
    assert_eq!(
        all["series"][0]["points"][1],
        json!({"start": "2026-10-06T00:00:00.000000Z", "suppressed": true})
    );

    let shifted = ok(f, &f.investigator, &format!("{TREND}&tz=%2B14:00"));
    assert_eq!(shifted["series"][0]["points"][0]["start"], "2026-10-04T10:00:00.000000Z");
}

const STEPS: &str = "steps=type:contact.opened;type:contact.verified%20outcome:success;type:contact.resolved";
const RANGE: &str = "from=2026-10-05T00:00:00Z&to=2026-10-06T00:00:00Z";

fn customers(answer: &Value, path: &str) -> Vec<Value> {
    answer.pointer(path).unwrap().as_array().unwrap().iter().map(|s| s["customers"].clone()).collect()
}

fn funnel(f: &Fixture) {
    let path = format!("/v1/insights/funnel?{STEPS}&{RANGE}&by=channel");
    let all = ok(f, &f.investigator, &path);
    assert_eq!(customers(&all, "/steps"), [json!(8), json!(6), json!(5)]);
    assert_eq!(all["steps"][1]["dropped"], 2);
    assert_eq!(all["steps"][2]["conversion"], 5.0 / 8.0);
    assert_eq!(
        all["time_to_convert"],
        json!({"customers": 5, "median_seconds": 10800.0, "p90_seconds": 172800.0})
    );
    assert_eq!(all["breakdown"][0]["key"], "email");
    assert_eq!(customers(&all, "/breakdown/0/steps"), [json!(2), json!(1), json!(1)]);
    assert_eq!(customers(&all, "/breakdown/1/steps"), [json!(6), json!(5), json!(4)]);

    // Readers: 2 dropped at step 2 and 3 by step 3, fewer than k, so steps 2 and 3 are hidden
    // (8 and 6 shown would give the 2 away); in the groups email is hidden, phone's step 2 for its
    // drop of 1, and phone's step 1 as the total minus email's.
    let read = ok(f, &f.reader, &path);
    assert_eq!(customers(&read, "/steps"), [json!(8), Value::Null, Value::Null]);
    assert_eq!(read["steps"][1]["dropped"], Value::Null, "2 dropped: fewer than k");
    assert_eq!(read["time_to_convert"], json!({}));
    assert_eq!(customers(&read, "/breakdown/0/steps"), [Value::Null, Value::Null, Value::Null]);
    assert_eq!(customers(&read, "/breakdown/1/steps"), [Value::Null, Value::Null, Value::Null]);
    assert_eq!(read["breakdown"][0]["time_to_convert"], json!({}));
    let whole = ok(f, &f.reader, &format!("/v1/insights/funnel?{STEPS}&{RANGE}&within=3h"));
    assert_eq!(customers(&whole, "/steps"), [json!(8), Value::Null, Value::Null]);

    let narrow = ok(f, &f.investigator, &format!("/v1/insights/funnel?{STEPS}&{RANGE}&within=3h"));
    assert_eq!(customers(&narrow, "/steps"), [json!(8), json!(6), json!(3)]);
    let dropped = ok(f, &f.investigator, &format!("/v1/insights/funnel?{STEPS}&{RANGE}&dropped_at=2"));
    assert_eq!(dropped["dropped_subjects"], json!(["cus-6", "cus-8"]));
    let (status, body) =
        get(&f.serve, &f.reader, &format!("/v1/insights/funnel?{STEPS}&{RANGE}&dropped_at=2"));
    assert_eq!(status, 403, "{body}");
    let by_team = ok(
        f,
        &f.investigator,
        &format!(
            "/v1/insights/funnel?steps=type:contact.opened;type:contact.resolved%20metadata.team:red&{RANGE}"
        ),
    );
    assert_eq!(customers(&by_team, "/steps"), [json!(8), json!(1)]);
}

const WEEKS: &str = "from=2026-10-05T00:00:00Z&to=2026-10-16T00:00:00Z";

fn journeys(f: &Fixture) {
    let path = format!("/v1/insights/journeys?{WEEKS}&resolved=type:contact.resolved");
    let all = ok(f, &f.investigator, &path);
    assert_eq!((all["sessions"].clone(), all["customers"].clone()), (json!(15), json!(8)));
    let paths: Vec<(Value, Value, Value)> = all["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].clone(), p["sessions"].clone(), p["customers"].clone()))
        .collect();
    assert_eq!(
        paths,
        [
            (json!(["contact.opened", "contact.verified"]), json!(7), json!(7)),
            (json!(["contact.resolved"]), json!(6), json!(6)),
            (json!(["contact.opened"]), json!(2), json!(2)),
        ]
    );
    let links: Vec<(Value, Value, Value, Value)> = all["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["depth"].clone(), l["from"].clone(), l["to"].clone(), l["sessions"].clone()))
        .collect();
    assert_eq!(
        links,
        [
            (json!(1), json!("contact.opened"), json!("(end)"), json!(2)),
            (json!(1), json!("contact.opened"), json!("contact.verified"), json!(7)),
            (json!(1), json!("contact.resolved"), json!("(end)"), json!(6)),
            (json!(2), json!("contact.verified"), json!("(end)"), json!(7)),
        ]
    );
    assert_eq!(
        all["repeats"],
        json!({"resolved": "type:contact.resolved", "within_seconds": 604800, "resolved_customers": 6,
               "repeat_customers": 1, "repeat_rate": 1.0 / 6.0})
    );
    let only = ok(f, &f.investigator, &format!("/v1/insights/journeys?{WEEKS}&only=type:contact.resolved"));
    assert_eq!((only["sessions"].clone(), only["customers"].clone()), (json!(6), json!(6)));
    // Readers: the path of 2 customers is hidden and so the next smallest (15 sessions minus the
    // listed ones would give it away); the link of 2 and every link the flow through a step
    // would give it away with; 1 repeat of 6 resolved.
    let read = ok(f, &f.reader, &path);
    assert_eq!((read["sessions"].clone(), read["customers"].clone()), (json!(15), json!(8)));
    assert_eq!(
        read["paths"],
        json!([{"path": ["contact.opened", "contact.verified"], "sessions": 7, "customers": 7}])
    );
    assert_eq!(read["suppressed_paths"], 2);
    assert_eq!(read["links"], json!([]));
    assert_eq!(read["repeats"]["suppressed"], true);
    assert_eq!(read["repeats"]["resolved_customers"], 6);
    assert_eq!(read["repeats"]["repeat_customers"], Value::Null);
}

const COHORTS: &str = "/v1/insights/cohorts?period=week&from=2026-09-28T00:00:00Z&to=2026-10-19T00:00:00Z";

fn cohorts(f: &Fixture) {
    let all = ok(f, &f.investigator, COHORTS);
    let rows: Vec<(Value, Value, Value)> = all["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["start"].clone(), c["customers"].clone(), c["active"].clone()))
        .collect();
    assert_eq!(
        rows,
        [
            (json!("2026-09-28T00:00:00.000000Z"), json!(1), json!([1, 0, 0])),
            (json!("2026-10-05T00:00:00.000000Z"), json!(8), json!([8, 1])),
            (json!("2026-10-12T00:00:00.000000Z"), json!(0), json!([0])),
        ]
    );
    let read = ok(f, &f.reader, COHORTS);
    assert_eq!(
        read["cohorts"][0],
        json!({"start": "2026-09-28T00:00:00.000000Z", "active": [null, null, null], "suppressed": true})
    );
    assert_eq!(read["cohorts"][1]["active"], json!([8, null]));
    let opened = ok(f, &f.investigator, &format!("{COHORTS}&activity=type:contact.resolved"));
    assert_eq!(opened["cohorts"][1]["customers"], 5, "cus-1..4 and cus-7 resolved first that week");
    assert_eq!(opened["cohorts"][1]["active"], json!([5, 0]));
    assert_eq!(opened["cohorts"][2]["customers"], 1, "cus-5 resolved first the week after");
}

fn rows(answer: &Value, fields: &[&str]) -> Vec<Vec<Value>> {
    answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| fields.iter().map(|f| r[*f].clone()).collect())
        .collect()
}

fn measures(f: &Fixture) {
    let path = format!(
        "/v1/insights/measure?first=type:contact.opened&last=type:contact.resolved&by=channel&{WEEKS}"
    );
    let all = ok(f, &f.investigator, &path);
    assert_eq!(
        rows(&all, &["key", "count", "customers", "median_seconds", "p90_seconds"]),
        [
            vec![json!("phone"), json!(5), json!(5), json!(10800.0), json!(864000.0)],
            vec![json!("email"), json!(1), json!(1), json!(172800.0), json!(172800.0)],
        ]
    );
    // Readers: email (1 customer) is hidden, and phone, the measure without `by` minus email.
    let read = ok(f, &f.reader, &path);
    assert_eq!(
        read["rows"],
        json!([{"key": "email", "suppressed": true}, {"key": "phone", "suppressed": true}])
    );

    let workload = ok(f, &f.investigator, &format!("/v1/insights/measure?kind=workload&{WEEKS}"));
    assert_eq!(
        rows(&workload, &["key", "count", "customers"]),
        [
            vec![json!("agt_a"), json!(13), json!(6)],
            vec![json!("agt_c"), json!(6), json!(6)],
            vec![json!("agt_b"), json!(3), json!(2)],
        ]
    );
    let coverage =
        ok(f, &f.investigator, &format!("/v1/insights/measure?kind=coverage&by=metadata.team&top=1&{WEEKS}"));
    assert_eq!(
        rows(&coverage, &["key", "actor", "count", "customers"]),
        [
            vec![json!("blue"), json!("agt_a"), json!(13), json!(6)],
            vec![json!("red"), json!("agt_b"), json!(2), json!(1)]
        ]
    );
}

/// Bad parameters: 400 naming the parameter; settings only by admins.
fn refusals(f: &Fixture) {
    for (path, name) in [
        ("/v1/insights/trend?by=subject", "by"),
        ("/v1/insights/trend?bucket=year", "bucket"),
        ("/v1/insights/trend?tz=Mars", "tz"),
        ("/v1/insights/trend?from=2026-10-05T00:00:00Z&to=2026-10-01T00:00:00Z", "from"),
        ("/v1/insights/trend?from=yesterday", "from"),
        ("/v1/insights/funnel?steps=type:a", "steps"),
        ("/v1/insights/funnel?steps=type:a;colour:red", "steps"),
        ("/v1/insights/funnel?steps=type:a;type:b&within=soon", "within"),
        ("/v1/insights/funnel?steps=type:a;type:b&dropped_at=1", "dropped_at"),
        ("/v1/insights/journeys?depth=0", "depth"),
        ("/v1/insights/journeys?gap=0s", "gap"),
        ("/v1/insights/cohorts?period=day", "period"),
        ("/v1/insights/measure", "first"),
        ("/v1/insights/measure?kind=coverage", "by"),
        ("/v1/insights/measure?kind=speed", "kind"),
    ] {
        let (status, body) = get(&f.serve, &f.reader, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["invalid-params"][0]["name"], name, "{path}: {body}");
    }
    let (status, _) = get(&f.serve, &f.reader, "/v1/insights/trend?bucket=minute&from=2020-01-01T00:00:00Z");
    assert_eq!(status, 400, "too many buckets");
    let (status, _) = get(&f.serve, &f.reader, "/v1/insights/funnel");
    assert_eq!(status, 400, "steps are required");
    let put = |key: &str, body: &str| {
        let response = client()
            .put(f.serve.url("/v1/insights/settings"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .expect("PUT");
        (response.status().as_u16(), response.json::<Value>().expect("JSON"))
    };
    assert_eq!(put(&f.reader, r#"{"min_customers":1}"#).0, 403);
    let (status, body) = put(&f.serve.admin, r#"{"min_customers":0}"#);
    assert_eq!((status, body["invalid-params"][0]["name"].clone()), (400, json!("min_customers")));
    assert_eq!(put(&f.serve.admin, r#"{"min_customers":"five"}"#).0, 400);
    assert_eq!(put(&f.serve.admin, r#"{"min_customers":2}"#), (200, json!({"min_customers": 2})));
    let read = ok(f, &f.reader, TREND);
    assert_eq!(read["series"][1]["total"]["customers"], 2, "k = 2 shows the email series");
    assert_eq!(put(&f.serve.admin, r#"{"min_customers":5}"#).0, 200);
}

/// Each query above left an `evident.audit.insight` record naming the insight.
fn audited(f: &Fixture) {
    let page = ok(f, &f.serve.admin, "/v1/events?type=evident.audit.insight&limit=1000");
    let kinds: std::collections::BTreeSet<String> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["metadata"]["insight"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["cohorts", "funnel", "journeys", "measure", "trend"].map(String::from).into());
    let settings = ok(f, &f.serve.admin, "/v1/events?type=evident.insight.settings_set");
    assert_eq!(settings["events"].as_array().unwrap().len(), 2);
}

/// `evident insights` as scripts use it: JSON lines.
fn cli(f: &Fixture) {
    let run = |args: &[&str]| json_lines(&common::evident(&f.serve.base, &f.investigator, args));
    let steps = run(&[&insight_history::FUNNEL_ARGS[..], &["--to", "2026-10-06", "--json"]].concat());
    let pairs: Vec<(Value, Value)> =
        steps.iter().map(|s| (s["step"].clone(), s["customers"].clone())).collect();
    let [first, second, third] = insight_history::FUNNEL_CUSTOMERS;
    assert_eq!(pairs, [(json!(1), json!(first)), (json!(2), json!(second)), (json!(3), json!(third))]);
    let series = run(&[
        "insights",
        "trend",
        "--by",
        "channel",
        "--from",
        "2026-10-05",
        "--to",
        "2026-10-08",
        "--json",
    ]);
    assert_eq!(series.iter().map(|s| s["key"].clone()).collect::<Vec<_>>(), [json!("phone"), json!("email")]);
    let paths = run(&["insights", "journeys", "--from", "2026-10-05", "--to", "2026-10-16", "--json"]);
    assert_eq!(paths[0]["sessions"], 7);
    let cohorts = run(&["insights", "cohorts", "--from", "2026-09-28", "--to", "2026-10-19", "--json"]);
    assert_eq!(cohorts.len(), 3);
    let workload =
        run(&["insights", "measure", "--kind", "workload", "--from", "2026-10-05", "--to", "2026-10-16"]);
    assert_eq!(workload[0], json!({"key": "agt_a", "count": 13, "customers": 6}));
    let refused = std::process::Command::new(EVIDENT)
        .args(["insights", "trend", "--by", "subject", "--url", &f.serve.base, "--key", &f.reader])
        .output()
        .expect("evident runs");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("never a dimension"), "{refused:?}");
}

/// A reader must not work out a hidden cell from what the answers show: a total minus the shown
/// cells, two shown steps of a funnel, or the same question without its breakdown (issue 15,
/// item 6). The attacks below are the ones the history above made possible before complementary
/// suppression.
fn hidden_cells_stay_hidden(f: &Fixture) {
    let k = 5;
    let shown = |v: &Value| v.as_u64();
    // Trend: a series' total minus its shown points, per series and per bucket across series.
    let by = ok(f, &f.reader, TREND);
    let all = ok(f, &f.reader, TREND.replace("by=channel&", "").as_str());
    for series in by["series"].as_array().unwrap() {
        let points = series["points"].as_array().unwrap();
        let hidden = points.iter().filter(|p| p["suppressed"] == true).count();
        if shown(&series["total"]["events"]).is_some() {
            assert_ne!(hidden, 1, "the one hidden point of {} is its total minus the others", series["key"]);
        }
    }
    for (i, point) in all["series"][0]["points"].as_array().unwrap().iter().enumerate() {
        let hidden = by["series"].as_array().unwrap().iter().filter(|s| s["points"][i]["suppressed"] == true);
        if shown(&point["events"]).is_some() {
            assert_ne!(
                hidden.count(),
                1,
                "bucket {i}: the one hidden series is the trend without by minus the rest"
            );
        }
    }
    // Funnel: drop-offs between shown steps, groups against the totals, conversion counts.
    let funnel = ok(f, &f.reader, &format!("/v1/insights/funnel?{STEPS}&{RANGE}&by=channel"));
    let mut tables = vec![funnel.clone()];
    tables.extend(funnel["breakdown"].as_array().unwrap().iter().cloned());
    for table in &tables {
        let steps = table["steps"].as_array().unwrap();
        for pair in steps.windows(2) {
            if let (Some(a), Some(b)) = (shown(&pair[0]["customers"]), shown(&pair[1]["customers"])) {
                assert!(a - b == 0 || a - b >= k, "a drop-off of {} customers: {table}", a - b);
            }
        }
        let last = steps.last().unwrap();
        if last["suppressed"] == true {
            assert_eq!(table["time_to_convert"]["customers"], Value::Null, "{table}");
        }
    }
    for step in 0..3 {
        let hidden =
            funnel["breakdown"].as_array().unwrap().iter().filter(|g| g["steps"][step]["suppressed"] == true);
        if shown(&funnel["steps"][step]["customers"]).is_some() {
            assert_ne!(hidden.count(), 1, "step {step}: the one hidden group is the total minus the rest");
        }
    }
    // Journeys: the sessions of the paths and of the first links add up to the total.
    let path = format!("/v1/insights/journeys?{WEEKS}&resolved=type:contact.resolved");
    let (read, everything) = (ok(f, &f.reader, &path), ok(f, &f.investigator, &path));
    if let Some(total) = shown(&read["sessions"]) {
        let listed: u64 =
            read["paths"].as_array().unwrap().iter().filter_map(|p| shown(&p["sessions"])).sum();
        assert!(
            read["suppressed_paths"] != 1 || listed == total,
            "the one hidden path has {} sessions",
            total - listed
        );
        let first = |answer: &Value| -> Vec<Value> {
            answer["links"].as_array().unwrap().iter().filter(|l| l["depth"] == 1).cloned().collect()
        };
        let hidden = first(&everything).len() - first(&read).len();
        assert_ne!(hidden, 1, "the one hidden first link is the total minus the others");
    }
    if let Some(resolved) = shown(&read["repeats"]["resolved_customers"]) {
        assert!(resolved == 0 || resolved >= k, "{resolved} resolved customers shown");
    }
}

/// Buckets in a named time zone across Berlin's daylight-saving changes of 2026 (03-29: 02:00
/// CET becomes 03:00 CEST; 10-25: 03:00 CEST becomes 02:00 CET), one customer per event, asked
/// by an investigator (no suppression): days of 23 and 25 hours, the doubled 02:00 one bucket.
fn time_zones(f: &Fixture) {
    let visits = [
        "2026-03-29T00:30:00+01:00",
        "2026-03-29T23:30:00+02:00",
        "2026-10-24T23:30:00+02:00",
        "2026-10-25T00:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T23:30:00+01:00",
        "2026-10-26T00:30:00+01:00",
    ];
    let events: Vec<Value> = visits
        .iter()
        .enumerate()
        .map(|(n, time)| {
            json!({"id": format!("dst-{n}"), "source": "//dst.test", "type": "visit.logged", "action": "read",
                   "time": time, "actor": {"id": "agt_d", "type": "user"}, "subject": format!("dst-{n}"),
                   "targets": [{"type": "page", "id": "p"}], "outcome": "success", "origin": {"service": "web"}})
        })
        .collect();
    let producer = f.serve.key("producer");
    assert_eq!(f.serve.post(&producer, "/v1/events", &json!(events)).0, 200);
    let points = |query: &str| -> Vec<(Value, Value)> {
        let answer = ok(f, &f.investigator, &format!("/v1/insights/trend?{query}"));
        let points = answer["series"][0]["points"].as_array().unwrap().clone();
        points.iter().map(|p| (p["start"].clone(), p["events"].clone())).collect()
    };
    let at = |start: &str, events: u64| (json!(start), json!(events));
    let autumn = "from=2026-10-23T22:00:00Z&to=2026-10-26T23:00:00Z&bucket=day";
    assert_eq!(
        points(&format!("{autumn}&tz=Europe/Berlin")),
        [
            at("2026-10-23T22:00:00.000000Z", 1),
            at("2026-10-24T22:00:00.000000Z", 4), // 25 hours
            at("2026-10-25T23:00:00.000000Z", 1),
        ]
    );
    assert_eq!(
        points(&format!("{autumn}&tz=%2B02:00")),
        [
            at("2026-10-23T22:00:00.000000Z", 1),
            at("2026-10-24T22:00:00.000000Z", 3),
            at("2026-10-25T22:00:00.000000Z", 2),
            at("2026-10-26T22:00:00.000000Z", 0), // the fixed offset's day ends an hour early
        ]
    );
    assert_eq!(
        points("from=2026-10-25T00:00:00Z&to=2026-10-25T03:00:00Z&bucket=hour&tz=Europe/Berlin"),
        [at("2026-10-25T00:00:00.000000Z", 2), at("2026-10-25T02:00:00.000000Z", 0)]
    );
    assert_eq!(
        points("from=2026-03-28T23:00:00Z&to=2026-03-30T22:00:00Z&bucket=day&tz=Europe/Berlin"),
        [at("2026-03-28T23:00:00.000000Z", 2), at("2026-03-29T22:00:00.000000Z", 0)] // 23 hours
    );
    let (status, body) = get(&f.serve, &f.reader, "/v1/insights/trend?tz=Europe/Atlantis");
    assert_eq!((status, body["invalid-params"][0]["name"].clone()), (400, json!("tz")), "{body}");
    let cli = json_lines(&common::evident(
        &f.serve.base,
        &f.investigator,
        &[
            "insights",
            "trend",
            "--bucket",
            "day",
            "--tz",
            "Europe/Berlin",
            "--from",
            "2026-10-24T00:00:00+02:00",
            "--to",
            "2026-10-27T00:00:00+01:00",
            "--json",
        ],
    ));
    let events: Vec<Value> =
        cli[0]["points"].as_array().unwrap().iter().map(|p| p["events"].clone()).collect();
    assert_eq!(events, [json!(1), json!(4), json!(1)]);
}

fn every_insight(f: &Fixture) {
    hidden_cells_stay_hidden(f);
    trend(f);
    funnel(f);
    journeys(f);
    cohorts(f);
    measures(f);
    refusals(f);
    audited(f);
    cli(f);
    time_zones(f);
}

#[test]
fn insights_on_sqlite() {
    every_insight(&fixture(Serve::fresh()));
}

#[test]
fn insights_on_postgres() {
    let schema = Schema::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = database_url();
    let env = [("EVIDENT_DATABASE_URL", url.as_str()), ("EVIDENT_DATABASE_SCHEMA", schema.0.as_str())];
    every_insight(&fixture(Serve::first_start_with(&dir.path().join("keys"), &env)));
}
