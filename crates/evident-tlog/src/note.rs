//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 (signature type 0x01), and witness
//! cosignatures (c2sp.org/tlog-cosignature, `cosignature/v1`, type 0x04).
//!
//! Key texts are the ones Go's `golang.org/x/mod/sumdb/note` reads and writes: the verifier key
//! ("vkey") `<name>+<key id hex>+<base64(type || public key)>` and the signer key
//! `PRIVATE+KEY+<name>+<key id hex>+<base64(type || seed)>`. Opening a note follows Go's
//! `note.Open`: signatures by unknown keys are kept aside and ignored, any bad signature by a known
//! key fails the whole note, and at least one known signature must be present.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Signature type of Ed25519 note signatures.
pub const ALG_ED25519: u8 = 0x01;
/// Signature type of Ed25519 `cosignature/v1` witness cosignatures.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// At most this many signature lines are looked at (as in Go's `note.Open`).
const MAX_SIGNATURES: usize = 100;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// A key name: non-empty, no Unicode white space, no `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(char::is_whitespace) && !name.contains('+')
}

/// The 32-bit key id: the first four bytes of `SHA-256(name || "\n" || type || public key)`.
pub fn key_id(name: &str, alg: u8, public_key: &[u8]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([alg]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A note signer with an Ed25519 key.
#[derive(Clone)]
pub struct Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({}+{:08x}, secret redacted)", self.name, self.key_id)
    }
}

impl Signer {
    /// A signer from a 32-byte Ed25519 seed; the caller supplies the randomness.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Signer> {
        if !is_valid_key_name(name) {
            return Err(Error::malformed("key name", format!("{name:?} is empty or holds white space or +")));
        }
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(name, ALG_ED25519, key.verifying_key().as_bytes());
        Ok(Signer { name: name.to_owned(), key_id, key })
    }

    /// Parses Go's signer key text `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`.
    pub fn parse(text: &str) -> Result<Signer> {
        let (name, id, seed) = PrivateKeyText::parse(text, "signer key", ALG_ED25519, |alg| {
            format!("unsupported signature type {alg:#04x}")
        })?;
        let signer = Signer::from_seed(name, seed)?;
        if signer.key_id != id {
            return Err(Error::malformed("signer key", "key id does not match the key".to_owned()));
        }
        Ok(signer)
    }

    /// Go's signer key text. It holds the secret: write it only where secrets belong.
    pub fn to_text(&self) -> String {
        PrivateKeyText::render(&self.name, self.key_id, ALG_ED25519, &self.key)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            alg: ALG_ED25519,
            key: self.key.verifying_key(),
        }
    }

    /// One signature line (with its trailing newline) over `text`.
    fn signature_line(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut bytes = self.key_id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&signature.to_bytes());
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(bytes))
    }
}

/// A public key that checks note signatures (type 0x01) or witness cosignatures (type 0x04).
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: u32,
    alg: u8,
    key: VerifyingKey,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({})", self.to_vkey())
    }
}

impl Verifier {
    /// Parses a vkey `<name>+<key id>+<base64(type || public key)>` of type 0x01 or 0x04.
    pub fn parse(vkey: &str) -> Result<Verifier> {
        let bad = |reason: &str| Error::malformed("verifier key", format!("{vkey:?}: {reason}"));
        let (name, rest) = vkey.split_once('+').ok_or_else(|| bad("no key id"))?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or_else(|| bad("no key material"))?;
        if !is_valid_key_name(name) {
            return Err(bad("invalid key name"));
        }
        let id = parse_key_id(id_hex).ok_or_else(|| bad("key id is not 8 hex digits"))?;
        let bytes = BASE64.decode(key_b64).map_err(|_| bad("key material is not base64"))?;
        let (alg, public) = bytes.split_first().ok_or_else(|| bad("empty key material"))?;
        if *alg != ALG_ED25519 && *alg != ALG_COSIGNATURE_V1 {
            return Err(bad(&format!("unsupported signature type {alg:#04x}")));
        }
        let public: [u8; 32] = public.try_into().map_err(|_| bad("Ed25519 public key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| bad("not an Ed25519 public key"))?;
        if key_id(name, *alg, &public) != id {
            return Err(bad("key id does not match the key"));
        }
        Ok(Verifier { name: name.to_owned(), key_id: id, alg: *alg, key })
    }

    /// A witness cosigner's verifier (`cosignature/v1`).
    pub fn cosigner(name: &str, public_key: [u8; 32]) -> Result<Verifier> {
        if !is_valid_key_name(name) {
            return Err(Error::malformed("key name", format!("{name:?} is empty or holds white space or +")));
        }
        let key = VerifyingKey::from_bytes(&public_key)
            .map_err(|_| Error::malformed("verifier key", "not an Ed25519 public key"))?;
        let key_id = key_id(name, ALG_COSIGNATURE_V1, &public_key);
        Ok(Verifier { name: name.to_owned(), key_id, alg: ALG_COSIGNATURE_V1, key })
    }

    pub fn to_vkey(&self) -> String {
        let mut material = vec![self.alg];
        material.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(material))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature type: [`ALG_ED25519`] or [`ALG_COSIGNATURE_V1`].
    pub fn alg(&self) -> u8 {
        self.alg
    }

    /// Checks `signature` (without its key id) over the note text.
    fn verify(&self, text: &str, signature: &[u8]) -> bool {
        match self.alg {
            ALG_COSIGNATURE_V1 => {
                // c2sp.org/tlog-cosignature: u64 timestamp || Ed25519 signature over
                // "cosignature/v1\ntime <timestamp>\n" || the note text.
                let Some((time, sig)) = signature.split_first_chunk::<8>() else { return false };
                let time = u64::from_be_bytes(*time);
                if time > i64::MAX as u64 {
                    return false;
                }
                let message = format!("cosignature/v1\ntime {time}\n{text}");
                self.check(message.as_bytes(), sig)
            }
            _ => self.check(text.as_bytes(), signature),
        }
    }

    fn check(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = Signature::from_slice(signature) else { return false };
        self.key.verify_strict(message, &signature).is_ok()
    }
}

fn parse_key_id(hex: &str) -> Option<u32> {
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// The signature bytes after the key id.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// For a `cosignature/v1` signature, the time the witness claims to have signed at.
    pub fn cosignature_time(&self) -> Option<u64> {
        (self.signature.len() == 72)
            .then(|| u64::from_be_bytes(self.signature[..8].try_into().expect("8 bytes")))
    }
}

/// An opened note: its text, the signatures that verified and those by unknown keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub verified: Vec<NoteSignature>,
    pub unverified: Vec<NoteSignature>,
}

fn check_text(text: &str) -> Result<()> {
    if !text.ends_with('\n') {
        return Err(Error::malformed("note", "text does not end with a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(Error::malformed("note", "text holds a control character"));
    }
    Ok(())
}

/// Signs `text` (which must end with a newline and hold no blank line) with every signer.
pub fn sign_note(text: &str, signers: &[&Signer]) -> Result<String> {
    check_text(text)?;
    if text.starts_with('\n') || text.contains("\n\n") {
        return Err(Error::malformed("note", "text holds a blank line"));
    }
    if signers.is_empty() {
        return Err(Error::malformed("note", "no signer"));
    }
    let mut note = format!("{text}\n");
    for signer in signers {
        note.push_str(&signer.signature_line(text));
    }
    Ok(note)
}

/// Opens a signed note: splits text from signatures and checks the signatures of known keys.
///
/// Fails on a malformed note, on any signature by a known key that does not verify
/// ([`Error::BadSignature`]), and when no known key signed ([`Error::NoKnownSignature`]).
pub fn open_note(message: &str, verifiers: &[Verifier]) -> Result<Note> {
    if message.chars().any(|c| c < ' ' && c != '\n') {
        return Err(Error::malformed("note", "holds a control character"));
    }
    let split = message
        .rfind("\n\n")
        .ok_or_else(|| Error::malformed("note", "no blank line before the signatures"))?;
    let (text, signatures) = (&message[..split + 1], &message[split + 2..]);
    if signatures.is_empty() || !signatures.ends_with('\n') {
        return Err(Error::malformed("note", "signature block is empty or does not end with a newline"));
    }
    let mut note = Note { text: text.to_owned(), verified: Vec::new(), unverified: Vec::new() };
    for (n, line) in signatures[..signatures.len() - 1].split('\n').enumerate() {
        if n >= MAX_SIGNATURES {
            return Err(Error::malformed("note", "more than 100 signatures"));
        }
        let line = line.strip_prefix(SIGNATURE_PREFIX).ok_or_else(|| {
            Error::malformed("note", "signature line does not start with an em dash and a space")
        })?;
        let (name, b64) = line
            .split_once(' ')
            .ok_or_else(|| Error::malformed("note", "signature line has no signature"))?;
        let bytes = BASE64.decode(b64).ok().filter(|bytes| bytes.len() >= 5 && is_valid_key_name(name));
        let Some(bytes) = bytes else {
            return Err(Error::malformed("note", format!("bad signature line for {name:?}")));
        };
        let signature = NoteSignature {
            name: name.to_owned(),
            key_id: u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")),
            signature: bytes[4..].to_vec(),
        };
        let known = verifiers.iter().find(|v| v.name == signature.name && v.key_id == signature.key_id);
        match known {
            None => {
                if !note.unverified.contains(&signature) {
                    note.unverified.push(signature);
                }
            }
            Some(verifier) => {
                if note.verified.iter().any(|s| s.name == signature.name && s.key_id == signature.key_id) {
                    continue; // Go drops repeated signatures by one key after the first
                }
                if !verifier.verify(text, &signature.signature) {
                    return Err(Error::BadSignature(format!("{}+{:08x}", signature.name, signature.key_id)));
                }
                note.verified.push(signature);
            }
        }
    }
    if note.verified.is_empty() {
        return Err(Error::NoKnownSignature);
    }
    Ok(note)
}

/// Appends signature lines (for example a witness's cosignatures) to a signed note, dropping
/// lines it already carries.
pub fn add_signature_lines(note: &str, lines: &str) -> Result<String> {
    if !note.ends_with('\n') || !note.contains("\n\n") {
        return Err(Error::malformed("note", "not a signed note"));
    }
    let mut out = note.to_owned();
    for line in lines.lines() {
        if !line.starts_with(SIGNATURE_PREFIX) {
            return Err(Error::malformed("note", "not a signature line"));
        }
        let existing = out[out.rfind("\n\n").expect("checked") + 2..].lines().any(|l| l == line);
        if !existing {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// A witness that cosigns checkpoints with `cosignature/v1` (c2sp.org/tlog-cosignature).
#[derive(Clone)]
pub struct Cosigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cosigner({}+{:08x}, secret redacted)", self.name, self.key_id)
    }
}

impl Cosigner {
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Cosigner> {
        if !is_valid_key_name(name) {
            return Err(Error::malformed("key name", format!("{name:?} is empty or holds white space or +")));
        }
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(name, ALG_COSIGNATURE_V1, key.verifying_key().as_bytes());
        Ok(Cosigner { name: name.to_owned(), key_id, key })
    }

    /// Parses the cosigner key text [`Cosigner::to_text`] writes.
    pub fn parse(text: &str) -> Result<Cosigner> {
        let (name, id, seed) = PrivateKeyText::parse(text, "cosigner key", ALG_COSIGNATURE_V1, |alg| {
            format!("signature type {alg:#04x} is not cosignature/v1")
        })?;
        let cosigner = Cosigner::from_seed(name, seed)?;
        if cosigner.key_id != id {
            return Err(Error::malformed("cosigner key", "key id does not match the key".to_owned()));
        }
        Ok(cosigner)
    }

    /// The key text, shaped like Go's signer keys with signature type 0x04:
    /// `PRIVATE+KEY+<name>+<key id>+<base64(0x04 || seed)>`. It holds the secret.
    pub fn to_text(&self) -> String {
        PrivateKeyText::render(&self.name, self.key_id, ALG_COSIGNATURE_V1, &self.key)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            alg: ALG_COSIGNATURE_V1,
            key: self.key.verifying_key(),
        }
    }

    /// The cosignature line (with its newline) over a checkpoint's note text at `time` (POSIX
    /// seconds), to be appended to the note with [`add_signature_lines`].
    pub fn cosign(&self, text: &str, time: u64) -> Result<String> {
        check_text(text)?;
        if time > i64::MAX as u64 {
            return Err(Error::malformed("cosignature", "timestamp above 2^63 - 1"));
        }
        let message = format!("cosignature/v1\ntime {time}\n{text}");
        let signature = self.key.sign(message.as_bytes());
        let mut bytes = self.key_id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&time.to_be_bytes());
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(format!("{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(bytes)))
    }
}

/// Go's private key text `PRIVATE+KEY+<name>+<key id>+<base64(alg || seed)>`, shared by signers
/// (0x01) and cosigners (0x04).
struct PrivateKeyText;

impl PrivateKeyText {
    /// The name, key id and seed of a key text of signature type `alg`; `what` names the key in
    /// errors, `wrong_alg` says why another type is refused.
    fn parse<'a>(
        text: &'a str,
        what: &'static str,
        alg: u8,
        wrong_alg: impl Fn(u8) -> String,
    ) -> Result<(&'a str, u32, [u8; 32])> {
        let bad = |reason: &str| Error::malformed(what, reason.to_owned());
        let rest =
            text.strip_prefix("PRIVATE+KEY+").ok_or_else(|| bad("does not start with PRIVATE+KEY+"))?;
        let (name, rest) = rest.split_once('+').ok_or_else(|| bad("no key id"))?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or_else(|| bad("no key material"))?;
        let id = parse_key_id(id_hex).ok_or_else(|| bad("key id is not 8 hex digits"))?;
        let bytes = BASE64.decode(key_b64).map_err(|_| bad("key material is not base64"))?;
        let seed: [u8; 32] = match bytes.split_first() {
            Some((&found, seed)) if found == alg => {
                seed.try_into().map_err(|_| bad("Ed25519 seed is not 32 bytes"))?
            }
            Some((&found, _)) => return Err(bad(&wrong_alg(found))),
            None => return Err(bad("empty key material")),
        };
        Ok((name, id, seed))
    }

    fn render(name: &str, key_id: u32, alg: u8, key: &SigningKey) -> String {
        let mut material = vec![alg];
        material.extend_from_slice(&key.to_bytes());
        format!("PRIVATE+KEY+{name}+{key_id:08x}+{}", BASE64.encode(material))
    }
}
