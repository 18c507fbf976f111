//! HTTPS for `evident serve` (`--tls-cert FILE --tls-key FILE`): a listener that hands axum's
//! own `serve` connections that finished their TLS handshake (rustls, ring; no OpenSSL), so plain
//! and HTTPS serving share the same connection handling and graceful shutdown. Handshakes run in
//! their own tasks (a slow client holds up no one) with a time limit. SIGHUP reloads the
//! certificate and key: new connections get the new pair; a pair that does not load leaves the
//! old one in place and the log says why.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate chain and private key files (PEM).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The two settings, which go together.
    pub fn pair(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<TlsFiles>> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            _ => bail!(
                "--tls-cert and --tls-key go together (EVIDENT_TLS_CERT and EVIDENT_TLS_KEY, TOML [tls] \
                 cert and key): give both to serve HTTPS, or neither"
            ),
        }
    }

    /// The server configuration of the files as they are now.
    pub fn load(&self) -> Result<Arc<ServerConfig>> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .with_context(|| {
                format!("TLS certificate {}: not a readable PEM certificate chain", self.cert.display())
            })?;
        if chain.is_empty() {
            bail!("TLS certificate {}: holds no PEM certificate", self.cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("TLS key {}: not a readable PEM private key", self.key.display()))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .with_context(|| {
                format!("TLS key {} does not fit certificate {}", self.key.display(), self.cert.display())
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The configuration new connections get; replaced on SIGHUP.
type Current = Arc<RwLock<Arc<ServerConfig>>>;

/// A listener of TLS connections for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Serves `files` on `listener`, reloading them on SIGHUP; fails when they do not load now.
    pub fn start(listener: TcpListener, files: TlsFiles) -> Result<TlsListener> {
        let current: Current = Arc::new(RwLock::new(files.load()?));
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot handle SIGHUP")?;
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let reload = Arc::clone(&current);
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                reload_files(&files, &reload);
            }
        });
        tokio::spawn(accept_loop(listener, current, tx));
        Ok(TlsListener { ready, local })
    }
}

/// Loads `files` again: the new pair for new connections, or the old one kept and why.
fn reload_files(files: &TlsFiles, current: &Current) {
    match files.load() {
        Ok(config) => {
            *current.write().expect("not poisoned") = config;
            tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
        }
        Err(err) => {
            tracing::error!(
                error = format!("{err:#}"),
                "TLS reload failed; the previous certificate stays in use"
            );
            eprintln!("evident: TLS reload failed; the previous certificate stays in use: {err:#}");
        }
    }
}

/// Accepts connections until the listener is dropped, each handshake in its own task.
async fn accept_loop(
    listener: TcpListener,
    current: Current,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %err, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = TlsAcceptor::from(Arc::clone(&current.read().expect("not poisoned")));
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept loop ends only when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The API client of `url`, trusting also the CA certificates of `ca_file` (`--ca-file`,
/// `EVIDENT_CA_FILE`) for an https server.
pub fn client(
    url: &str,
    key: Option<String>,
    ca_file: Option<&std::path::Path>,
) -> Result<evident_client::Client> {
    let Some(path) = ca_file else { return Ok(evident_client::Client::new(url, key)) };
    let pem = std::fs::read(path).with_context(|| format!("--ca-file {}", path.display()))?;
    evident_client::Client::with_ca(url, key, &pem)
        .map_err(|why| anyhow::anyhow!("--ca-file {}: {why}", path.display()))
}

/// Warns loudly when `local` is reachable from other machines over plain HTTP.
pub fn warn_if_exposed(local: SocketAddr) {
    if local.ip().is_loopback() {
        return;
    }
    let risk = format!(
        "listening on {local} without TLS: API keys, events and personal data cross the network in clear \
         text; serve HTTPS with --tls-cert FILE --tls-key FILE (EVIDENT_TLS_CERT, EVIDENT_TLS_KEY), or listen \
         on 127.0.0.1 behind a TLS proxy"
    );
    tracing::warn!("{risk}");
    eprintln!("evident: WARNING: {risk}");
}
