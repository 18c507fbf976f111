//! RFC 3161 timestamps of checkpoints, checked offline: the reply a Time-Stamping Authority gave
//! for the SHA-256 of a signed checkpoint note (`GET /v1/logs/{tenant}/timestamps/{size}`,
//! `checkpoint.tsr` in an export bundle), against the TSA's certificate, which the verifier gets
//! out of band (`evident verify --tsa-cert FILE`).
//!
//! [`verify`] checks that the TSA granted the token, that its message imprint is the SHA-256 of
//! exactly this checkpoint, that the CMS `SignedData` was signed by the given certificate (its
//! issuer and serial number), that the signed attributes' message digest is that of the
//! `TSTInfo`, and the signature over the signed attributes. Signers: ECDSA P-256 or RSA (PKCS #1
//! v1.5), with SHA-256. The certificate's own validity and chain are not checked: it is trusted
//! as given, like a pinned verifier key.

use cms::cert::x509::der::asn1::OctetString;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::oid::ObjectIdentifier;
use der::{Decode as _, DecodePem as _, Encode as _};
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_tsp::{TimeStampResp, TstInfo};

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// The reply for the bundle's checkpoint, next to `bundle.ndjson` in an export bundle (written by
/// `evident export` when the server has one; `openssl ts -reply -in checkpoint.tsr -text` reads it).
pub const BUNDLE_FILE: &str = "checkpoint.tsr";

/// What a valid token states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// The TSA's time (`genTime`), as it encodes it (`YYYY-MM-DDTHH:MM:SSZ`).
    pub time: String,
    /// The token's serial number, hex.
    pub serial: String,
}

/// The certificate of a TSA, from PEM or DER.
pub fn tsa_certificate(bytes: &[u8]) -> Result<Certificate, String> {
    Certificate::from_pem(bytes)
        .or_else(|_| Certificate::from_der(bytes))
        .map_err(|err| format!("not an X.509 certificate (PEM or DER): {err}"))
}

/// Checks `reply` (a `TimeStampResp`, or a bare token) for `checkpoint`, signed by `tsa`.
pub fn verify(reply: &[u8], checkpoint: &str, tsa: &Certificate) -> Result<Timestamp, String> {
    let token = token(reply)?;
    if token.content_type != ID_SIGNED_DATA {
        return Err("the token is not CMS SignedData".into());
    }
    let signed: SignedData =
        token.content.decode_as().map_err(|err| format!("the token's SignedData: {err}"))?;
    let content = &signed.encap_content_info;
    if content.econtent_type != ID_CT_TST_INFO {
        return Err("the token does not hold a TSTInfo".into());
    }
    let tst_der = content
        .econtent
        .as_ref()
        .ok_or("the token's TSTInfo is missing")?
        .decode_as::<OctetString>()
        .map_err(|err| format!("the token's TSTInfo: {err}"))?
        .into_bytes();
    let info = TstInfo::from_der(&tst_der).map_err(|err| format!("the token's TSTInfo: {err}"))?;
    let imprint = &info.message_imprint;
    if imprint.hash_algorithm.oid != ID_SHA256
        || imprint.hashed_message.as_bytes() != Sha256::digest(checkpoint.as_bytes()).as_slice()
    {
        return Err(
            "the token is for other data: its message imprint is not the SHA-256 of this checkpoint".into()
        );
    }
    let signer = signed.signer_infos.0.iter().next().ok_or("the token has no signer")?;
    check_signer(signer, &tst_der, tsa)?;
    Ok(Timestamp {
        time: info.gen_time.to_date_time().to_string(),
        serial: hex::encode(info.serial_number.as_bytes()),
    })
}

/// The token of a reply (a granted `TimeStampResp`), or `bytes` as a token itself.
fn token(bytes: &[u8]) -> Result<ContentInfo, String> {
    if let Ok(response) = TimeStampResp::from_der(bytes) {
        use cmpv2::status::PkiStatus;
        if !matches!(response.status.status, PkiStatus::Accepted | PkiStatus::GrantedWithMods) {
            return Err(format!("the TSA did not grant this token: {:?}", response.status.status));
        }
        return response.time_stamp_token.ok_or_else(|| "the reply holds no token".to_owned());
    }
    ContentInfo::from_der(bytes).map_err(|err| format!("not an RFC 3161 reply or token: {err}"))
}

/// The signer is `tsa`, its signed attributes carry the TSTInfo's digest, and they are signed.
fn check_signer(signer: &SignerInfo, tst_der: &[u8], tsa: &Certificate) -> Result<(), String> {
    let tbs = &tsa.tbs_certificate;
    match &signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(id)
            if id.issuer == tbs.issuer && id.serial_number == tbs.serial_number => {}
        _ => return Err("the token is signed by another certificate than the TSA certificate given".into()),
    }
    if signer.digest_alg.oid != ID_SHA256 {
        return Err(format!("unsupported digest {} (SHA-256 only)", signer.digest_alg.oid));
    }
    let attributes = signer.signed_attrs.as_ref().ok_or("the token has no signed attributes")?;
    let digest = attributes
        .iter()
        .find(|attribute| attribute.oid == ID_MESSAGE_DIGEST)
        .and_then(|attribute| attribute.values.iter().next())
        .and_then(|value| value.decode_as::<OctetString>().ok())
        .ok_or("the token's signed attributes have no message digest")?;
    if digest.as_bytes() != Sha256::digest(tst_der).as_slice() {
        return Err("the token was altered: its TSTInfo does not match the signed digest".into());
    }
    let signed_der = attributes.to_der().map_err(|err| format!("the signed attributes: {err}"))?;
    let valid = signature_verifies(tsa, signer, &Sha256::digest(&signed_der))?;
    if !valid {
        return Err("the token's signature does not verify with the TSA certificate".into());
    }
    Ok(())
}

/// Whether the signer's signature over `digest` (SHA-256 of the signed attributes) verifies with
/// the TSA certificate's key: ECDSA P-256 or RSA PKCS #1 v1.5, with SHA-256.
fn signature_verifies(tsa: &Certificate, signer: &SignerInfo, digest: &[u8]) -> Result<bool, String> {
    let spki = &tsa.tbs_certificate.subject_public_key_info;
    let (key, algorithm) = (spki.subject_public_key.raw_bytes(), signer.signature_algorithm.oid);
    let signature = signer.signature.as_bytes();
    match spki.algorithm.oid {
        ID_EC_PUBLIC_KEY if algorithm == ECDSA_WITH_SHA256 => {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                .map_err(|_| "the TSA certificate's key is not a P-256 key".to_owned())?;
            let Ok(signature) = p256::ecdsa::Signature::from_der(signature) else { return Ok(false) };
            Ok(key.verify_prehash(digest, &signature).is_ok())
        }
        RSA_ENCRYPTION if algorithm == RSA_ENCRYPTION || algorithm == SHA256_WITH_RSA => {
            use rsa::pkcs1::DecodeRsaPublicKey as _;
            let key = rsa::PublicKey::from_pkcs1_der(key)
                .map_err(|_| "the TSA certificate's RSA key does not parse".to_owned())?;
            let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature) else { return Ok(false) };
            Ok(rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key).verify_prehash(digest, &signature).is_ok())
        }
        key => Err(format!(
            "unsupported TSA signature {algorithm} with key {key} (ECDSA P-256 or RSA, with SHA-256)"
        )),
    }
}
