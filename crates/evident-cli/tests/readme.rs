//! The README's `sh` blocks run as they stand when pasted: `scripts/readme-check` runs them in
//! order in one shell against a fresh `evident serve` (this test's binary), and fails at the
//! first command that fails. Needs curl, jq, go (with Debian's golang.org/x/mod) and python3,
//! which `scripts/test` installs; without them it fails loudly.

use std::path::Path;
use std::process::Command;

#[test]
fn every_sh_block_of_the_readme_runs_when_pasted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new("bash")
        .arg(root.join("scripts/readme-check"))
        .env("EVIDENT", env!("CARGO_BIN_EXE_evident"))
        .output()
        .expect("bash runs scripts/readme-check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "scripts/readme-check failed ({}):\n{stderr}\n{stdout}", output.status);
    assert!(stdout.contains("sh blocks of README.md ran"), "{stdout}");
    // What the walkthrough promises, seen in its output (cus_00007: 23 events of the support desk
    // and one contact of the contact-centre story, 4 events).
    assert!(stdout.contains("bundle verifies: 27 events (events.jsonl and events.csv agree)"), "{stdout}");
    assert!(stdout.contains("\"id\":\"operator:"), "the break-glass key is recorded: {stdout}");
}
