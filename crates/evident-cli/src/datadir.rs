//! The data directory: where the embedded store and the key files live, and how they are made on
//! first start.
//!
//! Layout: `evident.sqlite` (the store), `master.key` (the key that wraps data keys) and
//! `signing.key` (the Ed25519 seed that signs checkpoints), both base64 of 32 random bytes, created
//! with mode 0600 and never overwritten.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

pub const STORE_FILE: &str = "evident.sqlite";
pub const MASTER_KEY_FILE: &str = "master.key";
pub const SIGNING_KEY_FILE: &str = "signing.key";

/// A data directory.
pub struct DataDir {
    pub path: PathBuf,
}

impl DataDir {
    /// Opens a data directory, creating it (mode 0700) when `create` is set.
    pub fn open(path: &Path, create: bool) -> Result<DataDir> {
        if !path.is_dir() {
            if !create {
                bail!("no data directory at {}", path.display());
            }
            fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", path.display()))?;
        }
        Ok(DataDir { path: path.to_owned() })
    }

    pub fn store_path(&self) -> PathBuf {
        self.path.join(STORE_FILE)
    }

    /// Reads a 32-byte key file, or creates it with fresh random bytes when `create` is set.
    /// Answers the key and whether it was just created.
    pub fn key(&self, file: &str, create: bool) -> Result<([u8; 32], bool)> {
        read_or_create_key(&self.path.join(file), create)
    }
}

/// Reads a key file (base64 of 32 bytes), or creates one with mode 0600.
pub fn read_or_create_key(path: &Path, create: bool) -> Result<([u8; 32], bool)> {
    if path.exists() {
        let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let bytes =
            BASE64.decode(text.trim()).with_context(|| format!("{} is not base64", path.display()))?;
        let key: [u8; 32] =
            bytes.try_into().map_err(|_| anyhow::anyhow!("{} does not hold 32 bytes", path.display()))?;
        return Ok((key, false));
    }
    if !create {
        bail!("key file {} does not exist", path.display());
    }
    let key = evident_core::seal::random_32();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(format!("{}\n", BASE64.encode(key)).as_bytes())?;
    file.sync_all()?;
    Ok((key, true))
}
