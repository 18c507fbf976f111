//! `evident console-link`: asks the server for a one-time sign-in link to the web console for
//! the given key and prints it (the token rides in the URL's fragment, never sent to a server).

use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow};

use crate::ClientArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let answer = args.client.client().console_link().context("cannot make a sign-in link")?;
    let path = answer["path"].as_str().ok_or_else(|| anyhow!("the server answered no link path"))?;
    println!("{}{path}", args.client.url.trim_end_matches('/'));
    eprintln!("usable once, for {} s", answer["expires_in"].as_u64().unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}
