//! Export bundles: a query's events as of one checkpoint, in a form that verifies offline.
//!
//! # Format (`evident-export/v1`)
//!
//! The server answers `GET /v1/export?<search filters>[&purpose=...]` with NDJSON, which the CLI
//! writes unchanged as `bundle.ndjson` in the bundle directory:
//!
//! 1. A header line:
//!    `{"format":"evident-export/v1","origin":O,"tree_size":N,"checkpoint":C,"vkey":V,"query":Q}`,
//!    where `C` is the signed checkpoint note at size `N`, `V` the log's verifier key (informative:
//!    verification uses a key the verifier trusts), and `Q` the filters as a JSON object of strings.
//! 2. One line per event, in log order (increasing index):
//!    `{"index":I,"event_id":E,"entry":B,"proof":[H,...],"event":J,"personal":P}`, where `B` is
//!    the base64 of the exact entry bytes (the canonical skeleton), `H` the base64 hashes of its
//!    inclusion proof at size `N`, `J` the event as JSON (the skeleton, with personal values merged
//!    in when `P` is present), and `P`, only for keys allowed to see personal data,
//!    `{"salt":S,"part":X}`: the salt (base64) and the personal part (`{pointer: value}`) whose
//!    `SHA-256(salt || JCS(part))` must equal the entry's `pii_commitment`.
//! 3. A trailer line `{"manifest":M}`: a signed note by the log's key whose text is
//!
//!    ```text
//!    evident-export/v1
//!    <origin>
//!    <tree_size>
//!    <count>
//!    <base64 SHA-256 over the events, in order, of (8-byte big-endian index || leaf hash)>
//!    <JCS of the query object>
//!    ```
//!
//!    so that dropping, adding or reordering events, or changing the query, is caught.
