//! Privacy commands over the API: `evident erase SUBJECT --reason TEXT --reference REF`.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use evident_wire::privacy::EraseRequest;

use crate::ClientArgs;
use crate::output;

#[derive(clap::Args)]
pub struct EraseArgs {
    /// The data subject's pseudonymous id, as events carry it in `subject`.
    subject: String,
    /// Why the subject is erased (for example the GDPR Art. 17 ground).
    #[arg(long)]
    reason: String,
    /// The request this answers: a ticket or case number.
    #[arg(long)]
    reference: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn erase(args: EraseArgs) -> Result<ExitCode> {
    let client = args.client.client();
    let request = EraseRequest { reason: args.reason, reference: args.reference };
    let erasure =
        client.erase(&args.subject, &request).with_context(|| format!("cannot erase {}", args.subject))?;
    if output::json_wanted(args.client.json) {
        println!("{}", serde_json::to_string(&erasure).expect("an API answer serialises"));
    } else {
        let what = if erasure.key_destroyed { "erased" } else { "nothing left to erase for" };
        println!(
            "{what} {} (recorded as event {} at index {})",
            erasure.subject, erasure.event_id, erasure.index
        );
        println!("other nodes stop using a cached key within {} s", erasure.cache_bound_secs);
    }
    Ok(ExitCode::SUCCESS)
}
