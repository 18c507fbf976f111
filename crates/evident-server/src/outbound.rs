//! Where the server may connect on a tenant's behalf (webhook deliveries, streams out): only public addresses,
//! unless the operator allows private ones (`EVIDENT_ALLOW_PRIVATE_DESTINATIONS=true`, TOML
//! `[outbound] allow_private`) for receivers on premises.
//!
//! A destination is checked twice: when a webhook is registered (every address its host resolves
//! to must be public, [`check_destination`]), and at every connection, by the [`client`]'s own
//! resolver, which hands the connector only addresses it has checked, so a name that resolves to a
//! public address at registration and to an internal one later (DNS rebinding) is refused at
//! connect time. A URL whose host is an address literal is checked by [`check_literal`] before
//! each request (no resolver runs for it). Redirects are never followed and proxies never used.
//!
//! `https://` receivers are verified against the bundled web roots (webpki-roots, so a container
//! without a CA store behaves the same) plus, for receivers on premises with their own CA, the
//! certificates of `EVIDENT_OUTBOUND_CA_FILE` (TOML `[outbound] ca_file`, [`extra_roots`]). A
//! certificate that does not verify fails the delivery naming the TLS reason ([`tls_failure`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A CA certificate trusted for https receivers ([`extra_roots`]).
pub use reqwest::Certificate;

/// Why a destination is refused: names the kind of address, never the address a name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// What to tell an admin whose destination is refused.
pub const ALLOW_HINT: &str = "webhooks and streams reach only public addresses unless the server runs with EVIDENT_ALLOW_PRIVATE_DESTINATIONS=true";

/// The kind of a non-public address (loopback, private, link-local, multicast, unspecified and
/// other special-purpose ranges), or `None` for a public one. IPv6 forms that embed an IPv4
/// address (mapped, NAT64, 6to4) are judged by that address.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match () {
        () if ip.is_unspecified() || a == 0 => "an unspecified address",
        () if ip.is_loopback() => "a loopback address",
        () if ip.is_private() => "a private address",
        () if ip.is_link_local() => "a link-local address (cloud metadata lives there)",
        () if ip.is_multicast() => "a multicast address",
        () if ip.is_broadcast() || a >= 240 => "a reserved address",
        () if a == 100 && (64..128).contains(&b) => "a shared (carrier-grade NAT) address",
        () if a == 192 && b == 0 && c == 0 => "an IETF protocol address",
        () if a == 198 && (18..20).contains(&b) => "a benchmarking address",
        () => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    Some(match () {
        () if ip.is_unspecified() => "an unspecified address",
        () if ip.is_loopback() => "a loopback address",
        () if ip.is_multicast() => "a multicast address",
        () if s[0] & 0xfe00 == 0xfc00 => "a private (unique local) address",
        () if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 => "a link-local address",
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address inside.
        () if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] => return non_public_v4(embedded(s[6], s[7])),
        () if s[0] == 0x2002 => return non_public_v4(embedded(s[1], s[2])),
        // IPv4-compatible (::a.b.c.d, deprecated) likewise.
        () if s[..6] == [0; 6] => return non_public_v4(embedded(s[6], s[7])),
        () => return None,
    })
}

/// Refuses `addresses` unless every one is public (or private ones are allowed).
fn judge(addresses: &[SocketAddr], allow_private: bool, what: &str) -> Result<(), Refused> {
    if addresses.is_empty() {
        return Err(Refused(format!("{what} does not resolve to any address")));
    }
    if allow_private {
        return Ok(());
    }
    match addresses.iter().find_map(|a| non_public(a.ip())) {
        Some(kind) => Err(Refused(format!("{what} is {kind}; {ALLOW_HINT}"))),
        None => Ok(()),
    }
}

/// The address of a URL whose host is an IP literal, checked; `Ok` for a host name (the
/// [`client`]'s resolver checks those at connect time).
pub fn check_literal(url: &reqwest::Url, allow_private: bool) -> Result<(), Refused> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err(Refused("the URL has no host".into())),
    };
    judge(&[SocketAddr::new(ip, 0)], allow_private, "the destination")
}

/// The registration check: the URL's host, literal or resolved now, must be public.
pub async fn check_destination(url: &reqwest::Url, allow_private: bool) -> Result<(), Refused> {
    check_literal(url, allow_private)?;
    let Some(url::Host::Domain(name)) = url.host() else { return Ok(()) };
    let addresses =
        resolve(name).await.map_err(|_| Refused(format!("the host {name:?} does not resolve")))?;
    judge(&addresses, allow_private, &format!("the host {name:?}"))
}

async fn resolve(name: &str) -> std::io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host((name, 0)).await?.collect())
}

/// The resolver of the outbound [`client`]: answers a name's addresses only when all are allowed.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses = resolve(&host).await?;
            judge(&addresses, allow_private, &format!("the host {host:?}"))?;
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// The HTTP client for deliveries: checked resolution, no redirects, no proxies; https verified
/// against the web roots and `extra_roots` (see [`extra_roots`]).
pub fn client(
    timeout: Duration,
    allow_private: bool,
    extra_roots: &[reqwest::Certificate],
) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }));
    for root in extra_roots {
        builder = builder.add_root_certificate(root.clone());
    }
    builder.build().expect("an HTTP client")
}

/// The CA certificates of a PEM file (`EVIDENT_OUTBOUND_CA_FILE`), trusted for https receivers
/// besides the web roots; an error names what is wrong with the file.
pub fn extra_roots(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    let roots = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|err| format!("not a PEM certificate file: {err}"))?;
    if roots.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(roots)
}

/// Why the TLS handshake with a receiver failed (an untrusted or expired certificate, a name
/// it is not for), if that is why the request failed.
pub fn tls_failure(err: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = source {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(format!("TLS handshake failed: {tls}"));
        }
        // An I/O error's `source` skips the error it wraps (the source of that one is next).
        source = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner),
            None => err.source(),
        };
    }
    None
}

/// Refuses `addresses` (of a host named in `what`) unless every one is allowed: the check of
/// connections made without the HTTP [`client`] (syslog, NATS).
pub fn judge_addresses(addresses: &[SocketAddr], allow_private: bool, what: &str) -> Result<(), Refused> {
    judge(addresses, allow_private, what)
}

/// The refusal inside a client error, if the destination was refused.
pub fn refusal(err: &reqwest::Error) -> Option<Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        source = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_not_public() {
        for text in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "224.0.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "100.64.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::10.0.0.1",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = text.parse().expect("an address");
            assert!(non_public(ip).is_some(), "{text} must not count as public");
        }
        for text in ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "::ffff:1.1.1.1"] {
            let ip: IpAddr = text.parse().expect("an address");
            assert_eq!(non_public(ip), None, "{text} is public");
        }
    }
}
