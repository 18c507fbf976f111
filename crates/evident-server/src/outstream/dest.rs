//! Where a stream delivers: syslog over TCP (RFC 6587 octet counting) or TLS (RFC 5425), HTTP
//! batches (Splunk HEC-compatible, or a plain JSON array), and a NATS JetStream subject (publish
//! with ack, `Nats-Msg-Id` = event id so JetStream drops a redelivered duplicate).
//!
//! Every connection goes to an address the outbound rules allow (`outbound.rs`), resolved and
//! checked at connect time; TLS trusts the system roots plus the operator's extra CA file
//! (`EVIDENT_OUTBOUND_CA_FILE`). A batch counts as delivered when the destination acknowledged it
//! (HTTP 2xx, JetStream ack) or, for syslog, when it was written and flushed to the connection:
//! the cursor moves only then, so a crash before that delivers the batch again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

use super::render::{Entry, Format, Rendered, rfc5424};
use crate::outbound::{self, Refused};

/// A parsed destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Syslog { host: String, port: u16, tls: bool },
    Http { url: url::Url, hec: bool },
    Nats { host: String, port: u16, subject: String },
}

/// What the destination field must be.
pub const DESTINATION_RULE: &str =
    "syslog+tls://HOST:PORT, syslog+tcp://HOST:PORT, https://... or nats://HOST:PORT/SUBJECT";

impl Destination {
    /// Parses a destination URL; `http://` only when private destinations are allowed (receivers
    /// on premises and tests).
    pub fn parse(text: &str, allow_private: bool) -> Result<Destination, String> {
        let url = url::Url::parse(text).map_err(|_| format!("not a URL; expected {DESTINATION_RULE}"))?;
        let host = url_host(&url).ok_or("the destination has no host")?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "credentials do not belong in the destination URL (a HEC token goes in \"token\")".into()
            );
        }
        match url.scheme() {
            "syslog+tcp" | "syslog+tls" => {
                let port = url.port().ok_or("a syslog destination needs its port")?;
                if !matches!(url.path(), "" | "/") {
                    return Err("a syslog destination has no path".into());
                }
                Ok(Destination::Syslog { host, port, tls: url.scheme() == "syslog+tls" })
            }
            "https" => Ok(Destination::Http { hec: is_hec(&url), url }),
            "http" if allow_private => Ok(Destination::Http { hec: is_hec(&url), url }),
            "http" => Err(format!("plain http is refused; use https ({})", outbound::ALLOW_HINT)),
            "nats" => {
                let subject = url.path().trim_start_matches('/');
                let valid = !subject.is_empty()
                    && subject.len() <= 256
                    && subject.split('.').all(|t| !t.is_empty())
                    && !subject.chars().any(|c| c.is_whitespace() || c == '*' || c == '>');
                if !valid {
                    return Err("a NATS destination names one subject: nats://HOST:PORT/SUBJECT".into());
                }
                Ok(Destination::Nats { host, port: url.port().unwrap_or(4222), subject: subject.to_owned() })
            }
            other => Err(format!("unknown scheme {other:?}; expected {DESTINATION_RULE}")),
        }
    }

    /// The destination without what a URL may carry besides where it goes (query, fragment).
    pub fn display(&self) -> String {
        match self {
            Destination::Syslog { host, port, tls } => {
                format!("syslog+{}://{}:{port}", if *tls { "tls" } else { "tcp" }, bracket(host))
            }
            Destination::Http { url, .. } => {
                format!("{}://{}{}", url.scheme(), url.host_str().unwrap_or(""), port_suffix(url))
                    + url.path()
            }
            Destination::Nats { host, port, subject } => format!("nats://{}:{port}/{subject}", bracket(host)),
        }
    }

    /// The host to resolve (an IPv6 literal without its brackets).
    pub fn host(&self) -> String {
        match self {
            Destination::Syslog { host, .. } | Destination::Nats { host, .. } => host.clone(),
            Destination::Http { url, .. } => url_host(url).unwrap_or_default(),
        }
    }
}

/// A URL's host as a resolver takes it.
fn url_host(url: &url::Url) -> Option<String> {
    match url.host()? {
        url::Host::Domain(name) => Some(name.to_owned()),
        url::Host::Ipv4(ip) => Some(ip.to_string()),
        url::Host::Ipv6(ip) => Some(ip.to_string()),
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}

fn port_suffix(url: &url::Url) -> String {
    url.port().map(|p| format!(":{p}")).unwrap_or_default()
}

/// A Splunk HTTP Event Collector endpoint (`/services/collector` or `.../event`).
fn is_hec(url: &url::Url) -> bool {
    let path = url.path().trim_end_matches('/');
    path.ends_with("/services/collector") || path.ends_with("/services/collector/event")
}

/// The addresses of `host:port`, each allowed by the outbound rules (checked now, at connect time).
pub async fn checked_addresses(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, Refused> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| Refused(format!("the host {host:?} does not resolve")))?
        .collect();
    outbound::judge_addresses(&addresses, allow_private, &format!("the host {host:?}"))?;
    Ok(addresses)
}

/// TLS settings of outbound connections: system roots plus an extra CA file.
pub fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        for cert in extra_cas(path)? {
            roots.add(cert).map_err(|err| format!("{}: {err}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates of a PEM file.
pub fn extra_cas(path: &std::path::Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|err| format!("cannot read the CA file {}: {err}", path.display()))?
        .collect();
    let certs = certs.map_err(|err| format!("the CA file {} is not PEM: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("the CA file {} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// What connections need: the outbound rules, TLS, the HTTP client.
#[derive(Clone)]
pub struct Outbound {
    pub allow_private: bool,
    pub tls: Arc<rustls::ClientConfig>,
    pub http: reqwest::Client,
    pub timeout: Duration,
}

/// One event ready to send.
pub struct Item {
    pub event_id: String,
    pub rendered: Rendered,
    /// The syslog framing of it (an RFC 5424 message).
    pub syslog: String,
    /// Event time as seconds since the epoch (HEC `time`).
    pub time_secs: f64,
    pub host: String,
}

impl Item {
    pub fn new(format: Format, entry: &Entry<'_>) -> Item {
        let rendered = super::render::render(format, entry);
        let syslog = match (&rendered, format) {
            (Rendered::Text(text), Format::Rfc5424) => text.clone(),
            (rendered, _) => rfc5424(entry, Some(&String::from_utf8_lossy(&rendered.to_bytes()))),
        };
        Item {
            event_id: entry.event_id().to_owned(),
            rendered,
            syslog,
            time_secs: entry.recorded_at().0 as f64 / 1e6,
            host: entry.host().to_owned(),
        }
    }
}

/// An open connection of a stream, kept between batches and dropped on any failure.
pub enum Connection {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Nats(async_nats::jetstream::Context),
}

async fn connect_tcp(host: &str, port: u16, outbound: &Outbound) -> Result<TcpStream, String> {
    let addresses = checked_addresses(host, port, outbound.allow_private).await.map_err(|r| r.0)?;
    let connect = TcpStream::connect(&addresses[..]);
    let stream = tokio::time::timeout(outbound.timeout, connect)
        .await
        .map_err(|_| format!("connecting to {host}:{port} timed out"))?
        .map_err(|err| format!("cannot connect to {host}:{port}: {err}"))?;
    stream.set_nodelay(true).ok();
    Ok(stream)
}

async fn connect(destination: &Destination, outbound: &Outbound) -> Result<Connection, String> {
    match destination {
        Destination::Syslog { host, port, tls: false } => {
            Ok(Connection::Tcp(connect_tcp(host, *port, outbound).await?))
        }
        Destination::Syslog { host, port, tls: true } => {
            let tcp = connect_tcp(host, *port, outbound).await?;
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|_| format!("{host:?} is not a TLS server name"))?;
            let handshake = TlsConnector::from(Arc::clone(&outbound.tls)).connect(name, tcp);
            let tls = tokio::time::timeout(outbound.timeout, handshake)
                .await
                .map_err(|_| "the TLS handshake timed out".to_owned())?
                .map_err(|err| format!("TLS with {host}:{port} failed: {err}"))?;
            Ok(Connection::Tls(Box::new(tls)))
        }
        Destination::Nats { host, port, .. } => {
            // Connect to an address checked here, never to a name the client resolves again.
            let addresses = checked_addresses(host, *port, outbound.allow_private).await.map_err(|r| r.0)?;
            let options = async_nats::ConnectOptions::new()
                .connection_timeout(outbound.timeout)
                .request_timeout(Some(outbound.timeout));
            let server: async_nats::ServerAddr =
                format!("nats://{}", addresses[0]).parse().map_err(|err| format!("{err}"))?;
            let client = options
                .connect(server)
                .await
                .map_err(|err| format!("cannot connect to NATS at {host}:{port}: {err}"))?;
            Ok(Connection::Nats(async_nats::jetstream::new(client)))
        }
        Destination::Http { .. } => Err("HTTP destinations keep no connection".into()),
    }
}

/// Sends a batch; `connection` is opened when missing and dropped on failure.
pub async fn send(
    destination: &Destination,
    token: Option<&str>,
    format: Format,
    items: &[Item],
    connection: &mut Option<Connection>,
    outbound: &Outbound,
) -> Result<(), String> {
    if items.is_empty() {
        return Ok(());
    }
    if let Destination::Http { url, hec } = destination {
        return send_http(url, *hec, token, format, items, outbound).await;
    }
    if connection.is_none() {
        *connection = Some(connect(destination, outbound).await?);
    }
    let result = match (connection.as_mut().expect("connected"), destination) {
        (Connection::Tcp(stream), _) => write_syslog(stream, items, outbound.timeout).await,
        (Connection::Tls(stream), _) => write_syslog(stream.as_mut(), items, outbound.timeout).await,
        (Connection::Nats(jetstream), Destination::Nats { subject, .. }) => {
            publish_nats(jetstream, subject, format, items).await
        }
        (Connection::Nats(_), _) => Err("a NATS connection for another destination".into()),
    };
    if result.is_err() {
        *connection = None;
    }
    result
}

/// RFC 6587 §3.4.1 octet counting: `MSG-LEN SP SYSLOG-MSG`, written whole then flushed.
pub fn octet_counted(message: &str) -> Vec<u8> {
    let mut frame = format!("{} ", message.len()).into_bytes();
    frame.extend_from_slice(message.as_bytes());
    frame
}

async fn write_syslog<S: AsyncWrite + Unpin>(
    stream: &mut S,
    items: &[Item],
    timeout: Duration,
) -> Result<(), String> {
    let mut bytes = Vec::new();
    for item in items {
        bytes.extend(octet_counted(&item.syslog));
    }
    let write = async {
        stream.write_all(&bytes).await?;
        stream.flush().await
    };
    tokio::time::timeout(timeout, write)
        .await
        .map_err(|_| "writing to the syslog receiver timed out".to_owned())?
        .map_err(|err| format!("writing to the syslog receiver failed: {err}"))
}

async fn publish_nats(
    jetstream: &async_nats::jetstream::Context,
    subject: &str,
    format: Format,
    items: &[Item],
) -> Result<(), String> {
    let mut acks = Vec::with_capacity(items.len());
    for item in items {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", item.event_id.as_str());
        headers.insert("Content-Type", format.content_type());
        let publish =
            jetstream.publish_with_headers(subject.to_owned(), headers, item.rendered.to_bytes().into());
        acks.push(publish.await.map_err(|err| format!("publishing to {subject} failed: {err}"))?);
    }
    for ack in acks {
        ack.await.map_err(|err| format!("JetStream did not acknowledge on {subject}: {err}"))?;
    }
    Ok(())
}

/// A HEC batch (events one after another, each `{"time", "host", "source", "sourcetype", "event"}`)
/// or a JSON array of the renderings.
pub fn http_body(hec: bool, format: Format, items: &[Item]) -> Vec<u8> {
    if !hec {
        let array: Vec<Value> = items.iter().map(|item| item.rendered.to_value()).collect();
        return serde_json::to_vec(&array).expect("JSON serialises");
    }
    let mut body = Vec::new();
    for item in items {
        let event = json!({
            "time": item.time_secs,
            "host": item.host,
            "source": "evident",
            "sourcetype": format!("evident:{}", format.as_str()),
            "event": item.rendered.to_value(),
        });
        body.extend(serde_json::to_vec(&event).expect("JSON serialises"));
        body.push(b'\n');
    }
    body
}

async fn send_http(
    url: &url::Url,
    hec: bool,
    token: Option<&str>,
    format: Format,
    items: &[Item],
    outbound: &Outbound,
) -> Result<(), String> {
    outbound::check_literal(url, outbound.allow_private).map_err(|r| r.0)?;
    let mut request = outbound
        .http
        .post(url.clone())
        .header("Content-Type", "application/json")
        .body(http_body(hec, format, items));
    if let Some(token) = token {
        let scheme = if hec { "Splunk" } else { "Bearer" };
        request = request.header("Authorization", format!("{scheme} {token}"));
    }
    let answer = request.send().await.map_err(|err| match outbound::refusal(&err) {
        Some(refused) => refused.0,
        None => format!("the request failed: {}", without_url(&err)),
    })?;
    let status = answer.status();
    if status.is_success() { Ok(()) } else { Err(format!("the receiver answered {status}")) }
}

/// A client error's text without its URL (which may carry a secret in its query).
fn without_url(err: &reqwest::Error) -> String {
    let mut err_text = err.to_string();
    if let Some(url) = err.url() {
        err_text = err_text.replace(url.as_str(), "the destination");
    }
    err_text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_and_show_without_credentials() {
        let parse = |text: &str| Destination::parse(text, false);
        assert_eq!(
            parse("syslog+tls://siem.example.com:6514"),
            Ok(Destination::Syslog { host: "siem.example.com".into(), port: 6514, tls: true })
        );
        assert_eq!(
            parse("nats://[2001:db8::1]/audit.events").map(|d| (d.host(), d.display())),
            Ok(("2001:db8::1".into(), "nats://[2001:db8::1]:4222/audit.events".into()))
        );
        let hec = parse("https://[2001:db8::2]:8088/services/collector/event?x=1").unwrap();
        assert!(matches!(hec, Destination::Http { hec: true, .. }));
        assert_eq!(
            (hec.host(), hec.display()),
            ("2001:db8::2".into(), "https://[2001:db8::2]:8088/services/collector/event".into())
        );
        assert!(matches!(parse("https://example.com/ingest"), Ok(Destination::Http { hec: false, .. })));
        for refused in [
            "syslog+tcp://example.com",
            "syslog+tcp://example.com:514/path",
            "nats://example.com:4222/",
            "nats://example.com:4222/a..b",
            "nats://example.com:4222/a.*",
            "https://user:secret@example.com/",
            "http://example.com/",
            "ftp://example.com/",
            "not a url",
        ] {
            assert!(parse(refused).is_err(), "{refused}");
        }
        assert!(Destination::parse("http://example.com/", true).is_ok());
    }

    #[test]
    fn octet_counting_frames_by_bytes() {
        assert_eq!(octet_counted("<110>1 é"), b"9 <110>1 \xc3\xa9".to_vec());
    }
}
