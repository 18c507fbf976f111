//! `evident rules`, `evident findings` and `evident webhooks`: detection over the API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::ClientArgs;
use crate::output;
use crate::search::{client, explain};

#[derive(clap::Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// The tenant's rules.
    List,
    /// The templates, with their default parameters.
    Templates,
    /// Create a rule from a JSON file (`-` for stdin) or from flags.
    Create {
        /// A rule as JSON: {"id", "template", "params", "severity", "enabled", "description"}.
        #[arg(long, conflicts_with_all = ["id", "template"])]
        file: Option<PathBuf>,
        /// The new rule's id (without --file).
        #[arg(long)]
        id: Option<String>,
        /// The template it instantiates (`evident rules templates` lists them).
        #[arg(long)]
        template: Option<String>,
        /// The parameters as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        /// The severity of its findings: info, low, medium, high or critical.
        #[arg(long, default_value = "medium")]
        severity: String,
        /// What the rule is for, shown with its findings.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a rule.
    Delete { rule_id: String },
    /// Run one of the tenant's rules (or one from a file) over a past range; records nothing.
    Backtest {
        /// The id of one of the tenant's rules.
        #[arg(long, conflicts_with = "file")]
        rule: Option<String>,
        /// A rule as JSON.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Start of the range: RFC 3339, a day (2026-11-20) or an age (7d ago).
        #[arg(long, value_name = "TIME", value_parser = crate::timearg::parse)]
        from: String,
        /// End of the range (same forms as --from).
        #[arg(long, value_name = "TIME", value_parser = crate::timearg::parse)]
        to: String,
    },
}

#[derive(clap::Args)]
pub struct FindingsArgs {
    #[command(subcommand)]
    command: FindingsCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum FindingsCommand {
    /// Findings, newest first.
    List {
        /// open, acknowledged, resolved or false_positive.
        #[arg(long)]
        status: Option<String>,
        /// This severity or higher: info, low, medium, high or critical.
        #[arg(long)]
        severity: Option<String>,
        /// The id of the rule that opened them.
        #[arg(long)]
        rule: Option<String>,
        /// The actor the findings are about.
        #[arg(long)]
        actor: Option<String>,
        /// Findings whose last trigger is at or after this time: RFC 3339, a day (2026-11-20) or
        /// an age (7d ago).
        #[arg(long, value_name = "TIME", value_parser = crate::timearg::parse)]
        from: Option<String>,
        /// Findings whose last trigger is before this time (same forms as --from).
        #[arg(long, value_name = "TIME", value_parser = crate::timearg::parse)]
        to: Option<String>,
        /// Print at most this many findings.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print a table even when stdout is not a terminal.
        #[arg(long, conflicts_with = "json")]
        table: bool,
    },
    /// One finding with its workflow.
    Show { finding_id: String },
    /// Acknowledge a finding.
    Ack {
        finding_id: String,
        /// A note recorded with the acknowledgement.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Resolve a finding (a comment is required).
    Resolve {
        finding_id: String,
        /// How it was resolved (recorded).
        #[arg(long)]
        comment: String,
    },
    /// Dismiss a finding as a false positive (a comment is required).
    FalsePositive {
        finding_id: String,
        /// Why it is a false positive (recorded).
        #[arg(long)]
        comment: String,
    },
}

#[derive(clap::Args)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    command: WebhooksCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Register a webhook; its signing secret is printed this once.
    Create {
        /// Where deliveries are POSTed (http:// or https://).
        #[arg(value_name = "URL")]
        endpoint: String,
        /// Findings below this severity are not sent.
        #[arg(long, default_value = "low")]
        min_severity: String,
        /// What the webhook is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// The tenant's webhooks.
    List,
    /// Delete a webhook.
    Delete { webhook_id: String },
    /// Deliveries that failed every attempt.
    DeadLetters,
    /// Deliver a dead letter again.
    Redeliver { delivery_id: String },
}

fn read_json(path: &PathBuf) -> Result<Value> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn print_json(value: &Value) {
    crate::outln!("{value}");
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn rules(args: RulesArgs) -> Result<ExitCode> {
    let api = client(&args.client)?;
    let json = output::json_wanted(args.client.json);
    match args.command {
        RulesCommand::List => {
            let answer = api.get_json("/v1/rules", &[]).map_err(explain)?;
            let rules = answer["rules"].as_array().cloned().unwrap_or_default();
            if json {
                rules.iter().for_each(print_json);
            } else {
                let rows: Vec<Vec<String>> = rules
                    .iter()
                    .map(|r| {
                        ["id", "template", "severity", "enabled", "description"]
                            .iter()
                            .map(|f| text(&r[*f]))
                            .collect()
                    })
                    .collect();
                output::table(&["ID", "TEMPLATE", "SEVERITY", "ENABLED", "DESCRIPTION"], &rows);
            }
        }
        RulesCommand::Templates => {
            let answer = api.get_json("/v1/rules/templates", &[]).map_err(explain)?;
            let templates = answer["templates"].as_array().cloned().unwrap_or_default();
            if json {
                templates.iter().for_each(print_json);
            } else {
                let rows: Vec<Vec<String>> = templates
                    .iter()
                    .map(|t| vec![text(&t["template"]), text(&t["finds"]), t["params"].to_string()])
                    .collect();
                output::table(&["TEMPLATE", "FINDS", "DEFAULT PARAMS"], &rows);
            }
        }
        RulesCommand::Create { file, id, template, params, severity, description } => {
            let rule = match file {
                Some(path) => read_json(&path)?,
                None => {
                    let params: Value = serde_json::from_str(&params).context("--params is not JSON")?;
                    json!({
                        "id": id.ok_or_else(|| anyhow!("--id is required (or --file)"))?,
                        "template": template.ok_or_else(|| anyhow!("--template is required (or --file)"))?,
                        "params": params, "severity": severity, "description": description,
                    })
                }
            };
            let (_, answer) = api.post_json("/v1/rules", &rule).map_err(explain)?;
            if json {
                print_json(&answer);
            } else {
                crate::outln!("created rule {}", text(&answer["id"]));
            }
        }
        RulesCommand::Delete { rule_id } => {
            api.delete(&format!("/v1/rules/{rule_id}")).map_err(explain)?;
            if !json {
                crate::outln!("deleted rule {rule_id}");
            }
        }
        RulesCommand::Backtest { rule, file, from, to } => {
            let mut request = json!({"from": from, "to": to});
            match (rule, file) {
                (Some(id), None) => request["rule_id"] = json!(id),
                (None, Some(path)) => request["rule"] = read_json(&path)?,
                _ => return Err(anyhow!("give --rule ID or --file RULE.json")),
            }
            let (_, report) = api.post_json("/v1/rules/backtest", &request).map_err(explain)?;
            if json {
                print_json(&report);
            } else {
                let findings = report["findings"].as_array().cloned().unwrap_or_default();
                crate::outln!("{} events read, {} would-be findings", report["events"], findings.len());
                print_findings(&findings);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A finding's time as the API states it (RFC 3339), shortened to the second like `search`'s.
fn finding_time(value: &Value) -> String {
    match value {
        Value::String(time) => match evident_wire::Micros::parse_rfc3339(time) {
            Some(micros) => {
                let full = micros.to_rfc3339();
                format!("{}Z", full.get(..19).unwrap_or(&full))
            }
            None => time.clone(),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn print_findings(findings: &[Value]) {
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            let time = finding_time(&f["time"]);
            vec![
                text(&f["id"]),
                text(&f["status"]),
                text(&f["severity"]),
                text(&f["rule"]),
                time,
                text(&f["explanation"]),
            ]
        })
        .collect();
    output::table(&["ID", "STATUS", "SEVERITY", "RULE", "TIME", "EXPLANATION"], &rows);
}

pub fn findings(args: FindingsArgs) -> Result<ExitCode> {
    let api = client(&args.client)?;
    let json = output::json_wanted(args.client.json);
    let status = |id: &str, status: &str, comment: Option<String>| -> Result<Value> {
        let mut body = json!({"status": status});
        if let Some(comment) = comment {
            body["comment"] = json!(comment);
        }
        let (_, answer) = api.post_json(&format!("/v1/findings/{id}/status"), &body).map_err(explain)?;
        Ok(answer)
    };
    let answer = match args.command {
        FindingsCommand::List { status, severity, rule, actor, from, to, limit, table } => {
            let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            for (name, value) in [
                ("status", status),
                ("severity", severity),
                ("rule", rule),
                ("actor", actor),
                ("from", from),
                ("to", to),
            ] {
                if let Some(value) = value {
                    query.push((name, value));
                }
            }
            let page = api.get_json("/v1/findings", &query).map_err(explain)?;
            let findings = page["findings"].as_array().cloned().unwrap_or_default();
            if json && !table {
                findings.iter().for_each(print_json);
            } else {
                print_findings(&findings);
            }
            return Ok(ExitCode::SUCCESS);
        }
        FindingsCommand::Show { finding_id } => {
            api.get_json(&format!("/v1/findings/{finding_id}"), &[]).map_err(explain)?
        }
        FindingsCommand::Ack { finding_id, comment } => status(&finding_id, "acknowledged", comment)?,
        FindingsCommand::Resolve { finding_id, comment } => status(&finding_id, "resolved", Some(comment))?,
        FindingsCommand::FalsePositive { finding_id, comment } => {
            status(&finding_id, "false_positive", Some(comment))?
        }
    };
    if json {
        print_json(&answer);
    } else {
        crate::outln!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn webhooks(args: WebhooksArgs) -> Result<ExitCode> {
    let api = client(&args.client)?;
    let json = output::json_wanted(args.client.json);
    match args.command {
        WebhooksCommand::Create { endpoint, min_severity, description } => {
            let mut body = json!({"url": endpoint, "min_severity": min_severity});
            if let Some(description) = description {
                body["description"] = json!(description);
            }
            let (_, answer) = api.post_json("/v1/webhooks", &body).map_err(explain)?;
            if json {
                print_json(&answer);
            } else {
                crate::outln!("webhook {} created", text(&answer["id"]));
                crate::outln!(
                    "secret: {} (shown only now; verify deliveries with it)",
                    text(&answer["secret"])
                );
            }
        }
        WebhooksCommand::List => {
            let answer = api.get_json("/v1/webhooks", &[]).map_err(explain)?;
            let hooks = answer["webhooks"].as_array().cloned().unwrap_or_default();
            if json {
                hooks.iter().for_each(print_json);
            } else {
                let rows: Vec<Vec<String>> = hooks
                    .iter()
                    .map(|w| {
                        ["id", "url", "min_severity", "created_at"].iter().map(|f| text(&w[*f])).collect()
                    })
                    .collect();
                output::table(&["ID", "URL", "MIN SEVERITY", "CREATED"], &rows);
            }
        }
        WebhooksCommand::Delete { webhook_id } => {
            api.delete(&format!("/v1/webhooks/{webhook_id}")).map_err(explain)?;
            if !json {
                crate::outln!("deleted webhook {webhook_id}");
            }
        }
        WebhooksCommand::DeadLetters => {
            let answer = api.get_json("/v1/webhooks/dead-letters", &[]).map_err(explain)?;
            let letters = answer["dead_letters"].as_array().cloned().unwrap_or_default();
            if json {
                letters.iter().for_each(print_json);
            } else {
                let rows: Vec<Vec<String>> = letters
                    .iter()
                    .map(|d| {
                        ["id", "webhook", "finding", "attempts", "last_error", "failed_at"]
                            .iter()
                            .map(|f| text(&d[*f]))
                            .collect()
                    })
                    .collect();
                output::table(&["DELIVERY", "WEBHOOK", "FINDING", "ATTEMPTS", "LAST ERROR", "FAILED"], &rows);
            }
        }
        WebhooksCommand::Redeliver { delivery_id } => {
            let (_, answer) = api
                .post_json(&format!("/v1/webhooks/dead-letters/{delivery_id}/redeliver"), &json!({}))
                .map_err(explain)?;
            if json {
                print_json(&answer);
            } else {
                crate::outln!("redelivering {delivery_id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
