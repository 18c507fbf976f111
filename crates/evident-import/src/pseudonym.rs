//! Pseudonyms: what importers put in clear fields (an actor's or a target's `id`, a session, a
//! derived event `id`) where the source has only a personal value (a user name, an e-mail
//! address, an access key id) or no id at all.
//!
//! A pseudonym is `ps_` and the first 32 hex digits of HMAC-SHA256 under the importer's key
//! (32 random bytes in a key file, see [`Pseudonyms::load_or_create`]), so the same value always
//! gives the same pseudonym (searches and detection still group by person, re-imports are
//! idempotent) while nobody without the key can test a guess against it: the schema allows no
//! unsalted hash of a personal value in a leaf. The value itself goes where the schema seals it
//! (`actor.display`, `targets[].display`, `changes`), so erasing the subject erases it.
//!
//! The key is the importer's, not the server's: whoever imports the same logs must use the same
//! key file, or the same record becomes another event (a different derived id) or a conflict (the
//! same id, other pseudonyms). Losing it loses nothing stored; it only stops new imports from
//! matching old ones.

use std::io::Write as _;
use std::path::Path;

use evident_wire::signature::hmac_sha256;
use serde_json::Value;

use crate::{Error, Result};

/// The prefix of every pseudonym.
pub const PREFIX: &str = "ps_";

/// The key that makes pseudonyms.
#[derive(Clone)]
pub struct Pseudonyms {
    key: [u8; 32],
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonyms(..)")
    }
}

impl Pseudonyms {
    pub fn new(key: [u8; 32]) -> Pseudonyms {
        Pseudonyms { key }
    }

    /// The key in `path` (64 hex digits); when the file does not exist, a new random key written
    /// there (mode 0600, parent directories created). `true` when the key was created.
    pub fn load_or_create(path: &Path) -> Result<(Pseudonyms, bool)> {
        let name = path.display();
        if let Some(pseudonyms) = Pseudonyms::load(path)? {
            return Ok((pseudonyms, false));
        }
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key)
            .map_err(|err| Error::Input(format!("cannot make a pseudonym key: {err}")))?;
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(Error::io(format!("cannot create {}", parent.display())))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(path).and_then(|mut file| {
            file.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
            file.sync_all()
        });
        match written {
            Ok(()) => Ok((Pseudonyms::new(key), true)),
            // Another run created it meanwhile: use theirs.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Pseudonyms::load_or_create(path),
            Err(source) => Err(Error::Io { context: format!("cannot write the key file {name}"), source }),
        }
    }

    /// The key in `path`; `None` when there is no such file.
    pub fn load(path: &Path) -> Result<Option<Pseudonyms>> {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(Pseudonyms::parse(text.trim(), &name)?)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { context: format!("cannot read the key file {name}"), source }),
        }
    }

    /// A key from its text form (64 hex digits).
    fn parse(text: &str, name: &str) -> Result<Pseudonyms> {
        let bytes = hex::decode(text).ok().filter(|bytes| bytes.len() == 32).ok_or_else(|| {
            Error::Input(format!(
                "the key file {name} does not hold a pseudonym key (64 hex digits); give another file \
                 with --pseudonym-key, or move it away to make a new key"
            ))
        })?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(Pseudonyms::new(key))
    }

    /// The pseudonym of a personal value: `ps_` and 32 hex digits.
    pub fn of(&self, value: &str) -> String {
        let mac = hmac_sha256(&self.key, format!("value\0{}", value.trim()).as_bytes());
        format!("{PREFIX}{}", &hex::encode(mac)[..32])
    }

    /// A stable id for a source record that has none: `prefix` and 32 hex digits of the keyed hash
    /// of the record's canonical JSON (RFC 8785), so the same record always gets the same id.
    pub fn record_id(&self, prefix: &str, record: &Value) -> String {
        let mut message = b"record\0".to_vec();
        message.extend(evident_wire::jcs::to_vec(record));
        format!("{prefix}{}", &hex::encode(hmac_sha256(&self.key, &message))[..32])
    }
}

impl Pseudonyms {
    /// Free text from a source record (a failure message, an authorizer's reason) with its
    /// personal values replaced by their pseudonyms: each of `known` (the actor's name, the
    /// impersonated user's, ...; the longest first) and every e-mail address. The values
    /// themselves are sealed where the event keeps them, so the text stays readable and linkable
    /// without holding them in clear.
    pub fn redact(&self, text: &str, known: &[&str]) -> String {
        let mut known: Vec<&str> =
            known.iter().map(|value| value.trim()).filter(|value| value.chars().count() >= 2).collect();
        known.sort_by_key(|value| std::cmp::Reverse(value.len()));
        let mut text = text.to_owned();
        for value in known {
            if text.contains(value) {
                text = replace_words(&text, value, &self.of(value));
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some((start, end)) = email_at(rest) {
            out.push_str(&rest[..start]);
            out.push_str(&self.of(&rest[start..end]));
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }
}

/// `text` with each occurrence of `value` that is a whole word (not part of a longer name)
/// replaced by `with`.
fn replace_words(text: &str, value: &str, with: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || "_-.@".contains(c));
    let word_after = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || "_-@".contains(c));
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(at) = text[from..].find(value).map(|at| from + at) {
        let end = at + value.len();
        let before = text[..at].chars().next_back();
        let after = text[end..].chars().next();
        // A full stop ends a sentence unless a name goes on after it.
        let after = match after {
            Some('.') => text[end + 1..].chars().next(),
            other => other,
        };
        let whole = !word(before) && !word_after(after);
        out.push_str(&text[from..at]);
        out.push_str(if whole { with } else { value });
        from = end;
    }
    out.push_str(&text[from..]);
    out
}

/// The first e-mail address in `text` (`local@domain.tld`), as a byte range.
fn email_at(text: &str) -> Option<(usize, usize)> {
    let local = |c: char| c.is_alphanumeric() || "._%+-".contains(c);
    let domain = |c: char| c.is_alphanumeric() || ".-".contains(c);
    let mut from = 0;
    while let Some(at) = text[from..].find('@').map(|at| from + at) {
        let start = text[..at].char_indices().rev().take_while(|(_, c)| local(*c)).last().map(|(i, _)| i);
        let end = text[at + 1..]
            .char_indices()
            .take_while(|(_, c)| domain(*c))
            .last()
            .map(|(i, c)| at + 1 + i + c.len_utf8());
        if let (Some(start), Some(end)) = (start, end) {
            let domain_part = text[at + 1..end].trim_end_matches(['.', '-']);
            let end = at + 1 + domain_part.len();
            let dotted = domain_part.split('.').filter(|part| !part.is_empty()).count() >= 2;
            if dotted {
                return Some((start, end));
            }
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pseudonyms_are_stable_per_key_and_differ_between_keys() {
        let one = Pseudonyms::new([1; 32]);
        let two = Pseudonyms::new([2; 32]);
        assert_eq!(one.of("alice@example.com"), one.of(" alice@example.com "));
        assert_ne!(one.of("alice@example.com"), two.of("alice@example.com"));
        assert_ne!(one.of("alice"), one.of("bob"));
        assert!(one.of("alice").starts_with("ps_") && one.of("alice").len() == 35);
        let record = json!({"b": 1, "a": [1, 2]});
        let same = json!({"a": [1, 2], "b": 1});
        assert_eq!(one.record_id("gh_", &record), one.record_id("gh_", &same), "canonical JSON");
        assert_ne!(one.record_id("gh_", &record), one.record_id("gh_", &json!({"a": [2, 1], "b": 1})));
    }

    #[test]
    fn redaction_replaces_known_values_and_email_addresses() {
        let key = Pseudonyms::new([3; 32]);
        let text =
            r#"User "alice" cannot list pods; ask bob.smith@example.com (not bob@localhost) or @team."#;
        let redacted = key.redact(text, &["alice", "x"]);
        assert_eq!(
            redacted,
            format!(
                r#"User "{}" cannot list pods; ask {} (not bob@localhost) or @team."#,
                key.of("alice"),
                key.of("bob.smith@example.com")
            )
        );
        assert_eq!(key.redact("no personal values here", &[]), "no personal values here");
        assert_eq!(key.redact("internal al. al-x", &["al"]), format!("internal {}. al-x", key.of("al")));
    }

    #[test]
    fn key_files_are_created_once_and_bad_ones_refused() {
        let dir = std::env::temp_dir().join(format!("evident-pseudonym-{}", std::process::id()));
        let path = dir.join("sub/pseudonym.key");
        let (created, new) = Pseudonyms::load_or_create(&path).unwrap();
        assert!(new);
        let (loaded, new) = Pseudonyms::load_or_create(&path).unwrap();
        assert!(!new);
        assert_eq!(created.of("alice"), loaded.of("alice"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key\n").unwrap();
        let err = Pseudonyms::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("does not hold a pseudonym key (64 hex digits)"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
