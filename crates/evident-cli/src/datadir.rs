//! The data directory: where the embedded store and the key files live, and how they are made on
//! first start.
//!
//! Layout: `evident.sqlite` (the store, with SQLite's `-wal` and `-shm` files), `master.key` (the
//! key that wraps data keys) and `signing.key` (the Ed25519 seed that signs checkpoints), both
//! base64 of 32 random bytes, and `evident.lock`: all created with mode 0600 (the directory 0700);
//! key files are never overwritten.
//!
//! One process at a time writes the embedded store: `serve` (and every command that appends to
//! the store directly) holds an exclusive `flock` on `evident.lock` while it runs, so a second one
//! is refused at start with a message saying so, instead of both starting and then failing each
//! other's commits. The lock goes with the process, however it ends.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

pub const STORE_FILE: &str = "evident.sqlite";
pub const LOCK_FILE: &str = "evident.lock";
pub const MASTER_KEY_FILE: &str = "master.key";
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// Next to a signing key file: the keys it replaced, oldest first, one base64 line each.
pub const RETIRED_SUFFIX: &str = ".retired";

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

    /// Takes the data directory's write lock for as long as the answered file is open; refuses
    /// when another process holds it.
    pub fn lock(&self) -> Result<fs::File> {
        let path = self.path.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        use std::os::fd::AsRawFd as _;
        // SAFETY: flock on a file descriptor this function owns; no memory is shared.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::WouldBlock {
                bail!(
                    "the data directory {} is in use by another process (an `evident serve`, or a command \
                     that writes to the store); stop it first, or give this one another --data-dir",
                    self.path.display()
                );
            }
            return Err(err).with_context(|| format!("cannot lock {}", path.display()));
        }
        Ok(file)
    }

    /// Opens the embedded store, creating its file with mode 0600 when there is none (SQLite gives
    /// its `-wal` and `-shm` files the mode of the database); files of an older start that are
    /// open to others are narrowed to 0600.
    pub fn open_store(&self) -> Result<evident_store_sqlite::SqliteStore> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.store_path();
        match fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err).with_context(|| format!("cannot create {}", path.display())),
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            if let Ok(metadata) = fs::metadata(&file)
                && metadata.permissions().mode() & 0o077 != 0
            {
                fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("cannot restrict {}", file.display()))?;
            }
        }
        Ok(evident_store_sqlite::SqliteStore::open(&path)?)
    }

    /// The signing key file: the configured one, or the data directory's.
    pub fn signing_key_path(&self, configured: &Option<PathBuf>) -> PathBuf {
        configured.clone().unwrap_or_else(|| self.path.join(SIGNING_KEY_FILE))
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

fn retired_path(signing_key: &Path) -> PathBuf {
    PathBuf::from(format!("{}{RETIRED_SUFFIX}", signing_key.display()))
}

/// The signing keys a rotation retired (their checkpoints must still verify); none if never rotated.
pub fn retired_signing_keys(signing_key: &Path) -> Result<Vec<[u8; 32]>> {
    let path = retired_path(signing_key);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            let bytes = BASE64
                .decode(line.trim())
                .with_context(|| format!("{} line {}: not base64", path.display(), n + 1))?;
            bytes.try_into().map_err(|_| anyhow::anyhow!("{} line {}: not 32 bytes", path.display(), n + 1))
        })
        .collect()
}

/// Replaces the signing key with a new random one and keeps the old one as retired, so that every
/// checkpoint signed so far still verifies. Both files are rewritten atomically with mode 0600.
pub fn rotate_signing_key(signing_key: &Path) -> Result<()> {
    let (current, _) = read_or_create_key(signing_key, false)?;
    let mut retired = retired_signing_keys(signing_key)?;
    retired.push(current);
    let retired_text: String = retired.iter().map(|key| format!("{}\n", BASE64.encode(key))).collect();
    write_atomically(&retired_path(signing_key), retired_text.as_bytes())?;
    let fresh = evident_core::seal::random_32();
    write_atomically(signing_key, format!("{}\n", BASE64.encode(fresh)).as_bytes())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = PathBuf::from(format!("{}.new", path.display()));
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path).with_context(|| format!("cannot replace {}", path.display()))?;
    if let Some(dir) = path.parent() {
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}
