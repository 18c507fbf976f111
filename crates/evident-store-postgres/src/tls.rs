//! TLS to PostgreSQL, set as libpq spells it in the connection string: `sslmode` (`disable`,
//! `prefer`, `require`, `verify-ca`, `verify-full`) and `sslrootcert` (a PEM file of CA
//! certificates, or `system` for the bundled web roots). tokio-postgres itself knows neither
//! `verify-*` nor `sslrootcert`, so [`split`] takes both out of the string before it is parsed, and
//! [`connector`] builds the rustls connector they ask for:
//!
//! - no `sslmode`, or `disable`: plain TCP (as before TLS existed here);
//! - `prefer`: TLS without certificate checks when the server offers it, else plain;
//! - `require`: TLS, without certificate checks unless `sslrootcert` is given (then as `verify-ca`,
//!   like libpq);
//! - `verify-ca`: TLS, the chain checked against `sslrootcert`;
//! - `verify-full`: `verify-ca` and the server's name (the URL's host) checked against the
//!   certificate.

use std::sync::Arc;

use evident_core::{Error, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The `sslmode` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(text: &str) -> Result<Mode> {
        Ok(match text {
            "disable" => Mode::Disable,
            "prefer" | "allow" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }

    /// What tokio-postgres is told: whether TLS is tried, and whether it is required.
    pub(crate) fn ssl_mode(self) -> SslMode {
        match self {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }
}

/// The TLS part of a connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tls {
    pub(crate) mode: Mode,
    pub(crate) root_cert: Option<String>,
}

/// Takes `sslmode` and `sslrootcert` out of `url` (a `postgres://` URL, or `key=value` words):
/// the rest, for tokio-postgres, and the TLS settings.
pub(crate) fn split(url: &str) -> Result<(String, Tls)> {
    let mut mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: String| -> Result<bool> {
        match key {
            "sslmode" => mode = Some(Mode::parse(&value)?),
            "sslrootcert" => root_cert = Some(value),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, percent_decode(value))? {
                kept.push(pair);
            }
        }
        if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            if !take(key, value.trim_matches('\'').to_owned())? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    Ok((rest, Tls { mode: mode.unwrap_or(Mode::Disable), root_cert }))
}

/// `%XX` escapes of a URL query value decoded (the rest kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A connection error's text, with what to check when the server's certificate did not verify.
pub(crate) fn explain(text: String) -> String {
    if text.contains("invalid peer certificate") {
        format!(
            "{text} (the server's certificate does not verify against sslrootcert in the database url; \
             check that file, and with sslmode=verify-full that the url's host is a name in the certificate)"
        )
    } else {
        text
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The connector `tls` asks for (unused when the mode is `disable`).
pub(crate) fn connector(tls: &Tls) -> Result<MakeRustlsConnect> {
    let provider = provider();
    let chain = match (tls.mode, &tls.root_cert) {
        (Mode::Disable | Mode::Prefer, _) | (Mode::Require, None) => None,
        (Mode::VerifyCa | Mode::VerifyFull, None) => {
            return Err(Error::InvalidArgument(
                "sslmode=verify-ca and verify-full need sslrootcert=FILE (the CA certificates, PEM) or \
                 sslrootcert=system in the database url"
                    .into(),
            ));
        }
        (_, Some(root_cert)) => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots(root_cert)?), Arc::clone(&provider))
                .build()
                .map_err(|err| Error::InvalidArgument(format!("sslrootcert={root_cert}: {err}")))?,
        ),
    };
    let verifier =
        Verifier { chain, check_name: tls.mode == Mode::VerifyFull, provider: Arc::clone(&provider) };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::InvalidArgument(format!("TLS: {err}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The CA certificates of `sslrootcert`: a PEM file, or `system` (the bundled web roots).
fn roots(root_cert: &str) -> Result<RootCertStore> {
    if root_cert == "system" {
        return Ok(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
    }
    let bad = |why: String| Error::InvalidArgument(format!("sslrootcert={root_cert}: {why}"));
    let certs = CertificateDer::pem_file_iter(root_cert)
        .map_err(|err| bad(format!("cannot read it: {err}")))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| bad(format!("not a PEM certificate file: {err}")))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad("holds no usable CA certificate".into()));
    }
    Ok(roots)
}

/// The server's certificate check of a mode: none (`require` without `sslrootcert`: encrypted,
/// the peer not authenticated, as libpq), the chain (`verify-ca`), or the chain and the name
/// (`verify-full`). The handshake signatures are checked in every mode, so the session is with
/// whoever holds the certificate's key.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_come_out_of_urls_and_key_value_strings() {
        let (rest, tls) = split(
            "postgres://u@db:5432/x?sslmode=verify-full&application_name=a&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .expect("valid");
        assert_eq!(rest, "postgres://u@db:5432/x?application_name=a");
        assert_eq!(tls, Tls { mode: Mode::VerifyFull, root_cert: Some("/tmp/ca.pem".into()) });
        let (rest, tls) = split("postgres://u@db/x?sslmode=require").expect("valid");
        assert_eq!((rest.as_str(), tls.mode, tls.root_cert), ("postgres://u@db/x", Mode::Require, None));
        let (rest, tls) = split("host=db user=u sslmode=verify-ca sslrootcert='/ca.pem'").expect("valid");
        assert_eq!(rest, "host=db user=u");
        assert_eq!(tls, Tls { mode: Mode::VerifyCa, root_cert: Some("/ca.pem".into()) });
        let (rest, tls) = split("postgres://u@db/x").expect("valid");
        assert_eq!((rest.as_str(), tls.mode), ("postgres://u@db/x", Mode::Disable));
        let err = split("postgres://u@db/x?sslmode=verify").expect_err("unknown mode");
        assert!(err.to_string().contains("sslmode=\"verify\" is not one of"), "{err}");
    }

    #[test]
    fn verification_needs_a_root_certificate() {
        let tls = Tls { mode: Mode::VerifyFull, root_cert: None };
        let err = connector(&tls).err().expect("refused");
        assert!(err.to_string().contains("need sslrootcert=FILE"), "{err}");
        let tls = Tls { mode: Mode::VerifyFull, root_cert: Some("/nonexistent/ca.pem".into()) };
        let err = connector(&tls).err().expect("refused");
        assert!(err.to_string().contains("sslrootcert=/nonexistent/ca.pem: cannot read it"), "{err}");
        assert!(connector(&Tls { mode: Mode::VerifyFull, root_cert: Some("system".into()) }).is_ok());
        assert!(connector(&Tls { mode: Mode::Require, root_cert: None }).is_ok());
    }
}
