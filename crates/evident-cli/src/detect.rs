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
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        template: Option<String>,
        /// The parameters as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        #[arg(long, default_value = "medium")]
        severity: String,
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
        /// RFC 3339.
        #[arg(long)]
        from: String,
        /// RFC 3339.
        #[arg(long)]
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
        #[arg(long)]
        status: Option<String>,
        /// This severity or higher.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long)]
        rule: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One finding with its workflow.
    Show { finding_id: String },
    /// Acknowledge a finding.
    Ack {
        finding_id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Resolve a finding (a comment is required).
    Resolve {
        finding_id: String,
        #[arg(long)]
        comment: String,
    },
    /// Dismiss a finding as a false positive (a comment is required).
    FalsePositive {
        finding_id: String,
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
    println!("{value}");
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
                println!("created rule {}", text(&answer["id"]));
            }
        }
        RulesCommand::Delete { rule_id } => {
            api.delete(&format!("/v1/rules/{rule_id}")).map_err(explain)?;
            if !json {
                println!("deleted rule {rule_id}");
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
                println!("{} events read, {} would-be findings", report["events"], findings.len());
                print_findings(&findings);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_findings(findings: &[Value]) {
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            let time = evident_wire::Micros(f["time"].as_i64().unwrap_or(0)).to_rfc3339();
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
        FindingsCommand::List { status, severity, rule, actor, from, to, limit } => {
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
            if json {
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
        println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
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
                println!("webhook {} created", text(&answer["id"]));
                println!("secret: {} (shown only now; verify deliveries with it)", text(&answer["secret"]));
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
                println!("deleted webhook {webhook_id}");
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
                println!("redelivering {delivery_id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
