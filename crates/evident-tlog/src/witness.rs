//! The C2SP witness protocol (c2sp.org/tlog-witness) as texts and decisions, pure: the
//! `add-checkpoint` request body, the checks a witness makes before it cosigns (each refusal with
//! the status code the protocol names), and witness policies (k of n cosigners) for verifiers.

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::hash::{Hash, TreeSize, empty_root};
use crate::note::{self, Verifier};
use crate::proof::verify_consistency;

/// The content type of a 409 answer's body (the witness's latest size).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// An `add-checkpoint` request body: `old <size>`, consistency proof lines, a blank line, and the
/// signed checkpoint note (c2sp.org/tlog-witness, "add-checkpoint").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: TreeSize,
    /// RFC 6962 §2.1.2 consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim (it may carry several signatures).
    pub checkpoint: String,
}

impl AddCheckpoint {
    pub fn to_text(&self) -> String {
        let mut out = format!("old {}\n", self.old_size.0);
        for hash in &self.proof {
            out.push_str(&hash.to_base64());
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses a request body strictly: canonical decimal old size, at most 63 proof lines, each a
    /// base64 hash, every line newline-terminated.
    pub fn parse(body: &str) -> Result<AddCheckpoint> {
        let bad = |reason: String| Error::malformed("add-checkpoint request", reason);
        let (head, checkpoint) =
            body.split_once("\n\n").ok_or_else(|| bad("no blank line before the checkpoint".into()))?;
        let mut lines = head.split('\n');
        let old = lines.next().unwrap_or_default();
        let old_text =
            old.strip_prefix("old ").ok_or_else(|| bad(format!("expected `old <size>`, got {old:?}")))?;
        let canonical = !old_text.is_empty()
            && old_text.bytes().all(|b| b.is_ascii_digit())
            && (old_text == "0" || !old_text.starts_with('0'));
        let old_size = canonical
            .then(|| old_text.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| bad(format!("old size {old_text:?} is not a canonical decimal u64")))?;
        let proof = lines
            .enumerate()
            .map(|(i, line)| {
                Hash::from_base64(line).map_err(|err| bad(format!("proof line {}: {err}", i + 1)))
            })
            .collect::<Result<Vec<_>>>()?;
        if proof.len() > 63 {
            return Err(bad(format!("{} proof lines, at most 63 are allowed", proof.len())));
        }
        if checkpoint.is_empty() {
            return Err(bad("no checkpoint after the blank line".into()));
        }
        Ok(AddCheckpoint { old_size: TreeSize(old_size), proof, checkpoint: checkpoint.to_owned() })
    }
}

/// Why a witness refuses to cosign, with the status code c2sp.org/tlog-witness gives each case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the request is malformed, or its old size is above the checkpoint's size.
    Malformed(String),
    /// 404: the witness follows no log of this origin.
    UnknownLog(String),
    /// 403: no signature by a key trusted for the origin, or one by such a key that fails.
    Forbidden(String),
    /// 409: the old size is not the size of the latest checkpoint the witness cosigned (its body
    /// is that size in decimal and a newline, as [`SIZE_CONTENT_TYPE`]).
    Conflict(TreeSize),
    /// 422: the proof does not verify, or roots disagree where they must be equal.
    Unprocessable(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) => 400,
            Refusal::Forbidden(_) => 403,
            Refusal::UnknownLog(_) => 404,
            Refusal::Conflict(_) => 409,
            Refusal::Unprocessable(_) => 422,
        }
    }

    /// The answer's body: the latest size for 409, a reason otherwise.
    pub fn body(&self) -> String {
        match self {
            Refusal::Conflict(size) => format!("{}\n", size.0),
            Refusal::Malformed(why) | Refusal::UnknownLog(why) | Refusal::Forbidden(why) => {
                format!("{why}\n")
            }
            Refusal::Unprocessable(why) => format!("{why}\n"),
        }
    }
}

/// The checkpoint text of a signed note, parsed, before any signature is checked (to find the
/// origin, and so the keys to check with).
pub fn peek_checkpoint(signed: &str) -> Result<Checkpoint> {
    let split = signed
        .rfind("\n\n")
        .ok_or_else(|| Error::malformed("note", "no blank line before the signatures"))?;
    Checkpoint::parse(&signed[..split + 1])
}

/// The checks a witness makes on an `add-checkpoint` request, in the order of c2sp.org/tlog-witness:
/// `log_keys` finds the keys trusted for an origin (`None`: unknown log) and `latest` is the
/// (size, root) the witness last cosigned for that origin. On success, the checkpoint to cosign;
/// the caller must compare-and-set its record from `latest` to it before answering.
pub fn check_add_checkpoint(
    request: &AddCheckpoint,
    log_keys: impl FnOnce(&str) -> Option<Vec<Verifier>>,
    latest: impl FnOnce(&str) -> Option<(TreeSize, Hash)>,
) -> Result<Checkpoint, Refusal> {
    let parsed = peek_checkpoint(&request.checkpoint).map_err(|err| Refusal::Malformed(err.to_string()))?;
    let Some(keys) = log_keys(&parsed.origin) else {
        return Err(Refusal::UnknownLog(format!("unknown log {:?}", parsed.origin)));
    };
    let (checkpoint, _) =
        Checkpoint::open(&request.checkpoint, &keys, &parsed.origin).map_err(|err| match err {
            Error::Malformed { .. } => Refusal::Malformed(err.to_string()),
            other => Refusal::Forbidden(other.to_string()),
        })?;
    let (old, new) = (request.old_size, checkpoint.size);
    if old > new {
        return Err(Refusal::Malformed(format!("old size {old} is above the checkpoint's size {new}")));
    }
    let (latest_size, latest_root) = latest(&checkpoint.origin).unwrap_or((TreeSize(0), empty_root()));
    if old != latest_size {
        return Err(Refusal::Conflict(latest_size));
    }
    if new.0 == 0 && checkpoint.root != empty_root() {
        return Err(Refusal::Unprocessable("a checkpoint of size 0 must have the empty tree's root".into()));
    }
    if old.0 == 0 {
        if !request.proof.is_empty() {
            return Err(Refusal::Unprocessable("old size 0 takes no consistency proof".into()));
        }
    } else if old == new {
        if checkpoint.root != latest_root {
            return Err(Refusal::Unprocessable(format!("root at size {new} differs from the one cosigned")));
        }
        if !request.proof.is_empty() {
            return Err(Refusal::Unprocessable("equal sizes take no consistency proof".into()));
        }
    } else {
        verify_consistency(old, new, &latest_root, &checkpoint.root, &request.proof)
            .map_err(|err| Refusal::Unprocessable(format!("consistency proof from size {old}: {err}")))?;
    }
    Ok(checkpoint)
}

/// Parses an `add-checkpoint` answer (signature lines) and keeps the cosignatures that
/// `witness` made over `signed`'s text; fails when none verifies or any by its key is bad.
pub fn cosignature_lines(signed: &str, answer: &str, witness: &Verifier) -> Result<String> {
    if answer.is_empty() || !answer.ends_with('\n') {
        return Err(Error::malformed("add-checkpoint answer", "empty or not newline-terminated"));
    }
    let split = signed.rfind("\n\n").ok_or_else(|| Error::malformed("note", "not a signed note"))?;
    let text = &signed[..split + 2];
    let prefix = format!("\u{2014} {} ", witness.name());
    let mut kept = String::new();
    for line in answer.lines() {
        if !line.starts_with('\u{2014}') {
            return Err(Error::malformed("add-checkpoint answer", "a line is not a signature line"));
        }
        if !line.starts_with(&prefix) {
            continue; // another key's: ignored, as the protocol says
        }
        match note::open_note(&format!("{text}{line}\n"), std::slice::from_ref(witness)) {
            Ok(_) => kept.push_str(&format!("{line}\n")),
            Err(Error::NoKnownSignature) => continue, // same name, another key id
            Err(err) => return Err(err),
        }
    }
    if kept.is_empty() {
        return Err(Error::NoKnownSignature);
    }
    Ok(kept)
}

/// Which of a policy's witnesses validly cosigned a checkpoint note.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyReport {
    /// `name+keyid` of each witness with a valid cosignature, and its time.
    pub signed: Vec<(String, u64)>,
    /// `name+keyid` of each witness without one.
    pub missing: Vec<String>,
    /// `name+keyid` of each witness whose signature line did not verify.
    pub bad: Vec<String>,
}

impl PolicyReport {
    pub fn met(&self, threshold: usize) -> bool {
        self.signed.len() >= threshold
    }
}

/// Checks each witness key of a policy against a (cosigned) checkpoint note.
pub fn witness_policy(signed: &str, witnesses: &[Verifier]) -> PolicyReport {
    let mut report = PolicyReport::default();
    for witness in witnesses {
        let id = format!("{}+{:08x}", witness.name(), witness.key_id());
        match note::open_note(signed, std::slice::from_ref(witness)) {
            Ok(opened) => {
                let time = opened.verified[0].cosignature_time().unwrap_or(0);
                report.signed.push((id, time));
            }
            Err(Error::BadSignature(_)) => report.bad.push(id),
            Err(_) => report.missing.push(id),
        }
    }
    report
}
