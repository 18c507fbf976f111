//! C2SP tlog-checkpoint bodies (c2sp.org/tlog-checkpoint): origin, tree size, root hash and
//! optional extension lines, inside a signed note.

use crate::error::{Error, Result};
use crate::hash::{Hash, TreeSize};
use crate::note::{self, Note, Signer, Verifier};

/// The note text of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `evident.example.com/acme`.
    pub origin: String,
    pub size: TreeSize,
    pub root: Hash,
    /// Extension lines after the root, in order; each non-empty.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    pub fn new(origin: &str, size: TreeSize, root: Hash) -> Checkpoint {
        Checkpoint { origin: origin.to_owned(), size, root, extensions: Vec::new() }
    }

    /// The note text: `<origin>\n<size>\n<base64 root>\n[<extension>\n...]`.
    pub fn body(&self) -> String {
        let mut body = format!("{}\n{}\n{}\n", self.origin, self.size.0, self.root.to_base64());
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Parses a note text strictly: every line newline-terminated and non-empty, a size in
    /// canonical decimal, a root in canonical base64 of 32 bytes.
    pub fn parse(body: &str) -> Result<Checkpoint> {
        let bad = |reason: String| Error::malformed("checkpoint", reason);
        let lines = body.strip_suffix('\n').ok_or_else(|| bad("does not end with a newline".into()))?;
        let mut lines = lines.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(bad("empty origin line".into()));
        }
        let size_text = lines.next().ok_or_else(|| bad("no tree size line".into()))?;
        let size_ok = !size_text.is_empty()
            && size_text.bytes().all(|b| b.is_ascii_digit())
            && (size_text == "0" || !size_text.starts_with('0'));
        let size = size_ok
            .then(|| size_text.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| bad(format!("tree size {size_text:?} is not a canonical decimal u64")))?;
        let root_text = lines.next().ok_or_else(|| bad("no root hash line".into()))?;
        let root = Hash::from_base64(root_text).map_err(|err| bad(format!("root hash: {err}")))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("empty extension line".into()));
        }
        if body.chars().any(|c| c < ' ' && c != '\n') {
            return Err(bad("control character".into()));
        }
        Ok(Checkpoint { origin: origin.to_owned(), size: TreeSize(size), root, extensions })
    }

    /// The signed note of this checkpoint.
    pub fn sign(&self, signers: &[&Signer]) -> Result<String> {
        note::sign_note(&self.body(), signers)
    }

    /// Opens a signed checkpoint: the note must verify with `verifiers` and name `origin`.
    pub fn open(signed: &str, verifiers: &[Verifier], origin: &str) -> Result<(Checkpoint, Note)> {
        let note = note::open_note(signed, verifiers)?;
        let checkpoint = Checkpoint::parse(&note.text)?;
        if checkpoint.origin != origin {
            return Err(Error::WrongOrigin { expected: origin.to_owned(), found: checkpoint.origin });
        }
        Ok((checkpoint, note))
    }
}
