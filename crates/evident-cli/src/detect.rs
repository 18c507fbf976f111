//! `evident rules`, `evident findings` and `evident webhooks`: detection over the API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow};
use clap::Subcommand;
use evident_wire::detect::{
    BacktestRequest, CreateWebhook, Finding, FindingParams, FindingRecord, Rule, StatusRequest,
};
use serde::Serialize;

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

/// A rule from a JSON file (`-` for stdin).
fn read_rule(path: &PathBuf) -> Result<Rule> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not a rule", path.display()))
}

fn print_json(value: &impl Serialize) {
    crate::outln!("{}", serde_json::to_string(value).expect("answers serialize"));
}

pub fn rules(args: RulesArgs) -> Result<ExitCode> {
    let api = client(&args.client)?;
    let json = output::json_wanted(args.client.json);
    match args.command {
        RulesCommand::List => {
            let rules = api.rules().map_err(explain)?.rules;
            if json {
                rules.iter().for_each(print_json);
            } else {
                let rows: Vec<Vec<String>> = rules
                    .into_iter()
                    .map(|r| vec![r.id, r.template, r.severity, r.enabled.to_string(), r.description])
                    .collect();
                output::table(&["ID", "TEMPLATE", "SEVERITY", "ENABLED", "DESCRIPTION"], &rows);
            }
        }
        RulesCommand::Templates => {
            let templates = api.rule_templates().map_err(explain)?.templates;
            if json {
                templates.iter().for_each(print_json);
            } else {
                let rows: Vec<Vec<String>> =
                    templates.into_iter().map(|t| vec![t.template, t.finds, t.params.to_string()]).collect();
                output::table(&["TEMPLATE", "FINDS", "DEFAULT PARAMS"], &rows);
            }
        }
        RulesCommand::Create { file, id, template, params, severity, description } => {
            let rule = match file {
                Some(path) => read_rule(&path)?,
                None => Rule {
                    id: id.ok_or_else(|| anyhow!("--id is required (or --file)"))?,
                    template: template.ok_or_else(|| anyhow!("--template is required (or --file)"))?,
                    params: serde_json::from_str(&params).context("--params is not JSON")?,
                    severity,
                    enabled: true,
                    description,
                },
            };
            let created = api.create_rule(&rule).map_err(explain)?;
            if json {
                print_json(&created);
            } else {
                crate::outln!("created rule {}", created.id);
            }
        }
        RulesCommand::Delete { rule_id } => {
            api.delete_rule(&rule_id).map_err(explain)?;
            if !json {
                crate::outln!("deleted rule {rule_id}");
            }
        }
        RulesCommand::Backtest { rule, file, from, to } => {
            let (rule, rule_id) = match (rule, file) {
                (Some(id), None) => (None, Some(id)),
                (None, Some(path)) => (Some(read_rule(&path)?), None),
                _ => return Err(anyhow!("give --rule ID or --file RULE.json")),
            };
            let report = api.backtest(&BacktestRequest { rule, rule_id, from, to }).map_err(explain)?;
            if json {
                print_json(&report);
            } else {
                crate::outln!("{} events read, {} would-be findings", report.events, report.findings.len());
                print_findings(report.findings.iter().map(|f| (f, "")));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A table of findings, each with its status (empty for would-be findings).
fn print_findings<'a>(findings: impl Iterator<Item = (&'a Finding, &'a str)>) {
    let rows: Vec<Vec<String>> = findings
        .map(|(f, status)| {
            let row = [&f.id, status, &f.severity, &f.rule, &f.time, &f.explanation];
            row.iter().map(|cell| (*cell).to_owned()).collect()
        })
        .collect();
    output::table(&["ID", "STATUS", "SEVERITY", "RULE", "TIME", "EXPLANATION"], &rows);
}

pub fn findings(args: FindingsArgs) -> Result<ExitCode> {
    let api = client(&args.client)?;
    let json = output::json_wanted(args.client.json);
    let status = |id: &str, status: &str, comment: Option<String>| -> Result<FindingRecord> {
        let request = StatusRequest { status: status.to_owned(), comment };
        api.set_finding_status(id, &request).map_err(explain)
    };
    let answer = match args.command {
        FindingsCommand::List { status, severity, rule, actor, from, to, limit, table } => {
            let params =
                FindingParams { status, severity, rule, actor, from, to, cursor: None, limit: Some(limit) };
            let findings = api.findings(&params).map_err(explain)?.findings;
            if json && !table {
                findings.iter().for_each(print_json);
            } else {
                print_findings(findings.iter().map(|f| (&f.finding, f.status.as_str())));
            }
            return Ok(ExitCode::SUCCESS);
        }
        FindingsCommand::Show { finding_id } => api.finding(&finding_id).map_err(explain)?,
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
            let request = CreateWebhook { url: endpoint, min_severity: Some(min_severity), description };
            let created = api.create_webhook(&request).map_err(explain)?;
            if json {
                print_json(&created);
            } else {
                crate::outln!("webhook {} created", created.webhook.id);
                crate::outln!("secret: {} (shown only now; verify deliveries with it)", created.secret);
            }
        }
        WebhooksCommand::List => {
            let hooks = api.webhooks().map_err(explain)?.webhooks;
            if json {
                hooks.iter().for_each(print_json);
            } else {
                let rows: Vec<Vec<String>> =
                    hooks.into_iter().map(|w| vec![w.id, w.url, w.min_severity, w.created_at]).collect();
                output::table(&["ID", "URL", "MIN SEVERITY", "CREATED"], &rows);
            }
        }
        WebhooksCommand::Delete { webhook_id } => {
            api.delete_webhook(&webhook_id).map_err(explain)?;
            if !json {
                crate::outln!("deleted webhook {webhook_id}");
            }
        }
        WebhooksCommand::DeadLetters => {
            let letters = api.dead_letters().map_err(explain)?.dead_letters;
            if json {
                letters.iter().for_each(print_json);
            } else {
                let rows: Vec<Vec<String>> = letters
                    .into_iter()
                    .map(|d| {
                        vec![d.id, d.webhook, d.finding, d.attempts.to_string(), d.last_error, d.failed_at]
                    })
                    .collect();
                output::table(&["DELIVERY", "WEBHOOK", "FINDING", "ATTEMPTS", "LAST ERROR", "FAILED"], &rows);
            }
        }
        WebhooksCommand::Redeliver { delivery_id } => {
            let answer = api.redeliver(&delivery_id).map_err(explain)?;
            if json {
                print_json(&answer);
            } else {
                crate::outln!("redelivering {}", answer.redelivering);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
