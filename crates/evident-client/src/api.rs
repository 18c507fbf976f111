//! The API's endpoints as [`Client`] methods, one each, with the requests and answers of
//! `evident_wire::api`. The paths of `/v1/...` are spelled here and nowhere else in the client.

use std::time::Duration;

use evident_wire::api::{
    ConsistencyParams, ConsistencyProof, CreateKey, CreateTenant, EventPage, EventView, Health, History,
    HistoryParams, IngestResponse, KeyInfo, KeyList, NewKey, PageParams, SearchParams, Tenant, TenantList,
};
use reqwest::Url;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Client, Error, Result, error_chain};

/// `?purpose=` of a single read.
#[derive(Serialize)]
struct Purpose<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'a str>,
}

impl Client {
    /// `POST /v1/events`: a batch in `content_type` (`application/json` or
    /// `application/x-ndjson`); answers the status (200, or 207 when some events were not stored)
    /// and a receipt per event, in the order sent.
    pub fn post_events(&self, content_type: &str, body: Vec<u8>) -> Result<(u16, IngestResponse)> {
        let url = self.endpoint(&["v1", "events"])?;
        let builder =
            self.http.post(url.clone()).header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        let response = self.send(url.as_str(), builder)?;
        let status = response.status().as_u16();
        Ok((status, Client::read_json(url.as_str(), response)?))
    }

    /// `GET /v1/events`: one page of a search.
    pub fn search(&self, params: &SearchParams) -> Result<EventPage> {
        self.get(self.endpoint(&["v1", "events"])?, params)
    }

    /// `GET /v1/events/{event_id}`; with a purpose, investigators see personal values.
    pub fn event(&self, event_id: &str, purpose: Option<&str>) -> Result<EventView> {
        self.get(self.endpoint(&["v1", "events", event_id])?, &Purpose { purpose })
    }

    /// `GET /v1/events/{event_id}/entry`: the exact entry bytes the log committed to.
    pub fn entry(&self, event_id: &str) -> Result<Vec<u8>> {
        self.get_bytes(self.endpoint(&["v1", "events", event_id, "entry"])?)
    }

    /// `GET /v1/events/{event_id}/proof`: the event's `c2sp.org/tlog-proof@v1` receipt.
    pub fn receipt(&self, event_id: &str) -> Result<String> {
        self.get_text(self.endpoint(&["v1", "events", event_id, "proof"])?)
    }

    /// `GET /v1/subjects/{subject}/timeline`.
    pub fn timeline(&self, subject: &str, params: &PageParams) -> Result<EventPage> {
        self.get(self.endpoint(&["v1", "subjects", subject, "timeline"])?, params)
    }

    /// `GET /v1/records/{record_type}/{record_id}/history`.
    pub fn history(&self, record_type: &str, record_id: &str, params: &HistoryParams) -> Result<History> {
        self.get(self.endpoint(&["v1", "records", record_type, record_id, "history"])?, params)
    }

    /// `GET /v1/export`: streams the bundle of a search into `out` as it arrives; answers the bytes
    /// copied. `timeout` bounds the whole transfer (the client's default of a minute is for short
    /// calls). An export takes no `cursor`, `limit` or `order`: the server refuses them.
    pub fn export_to_writer(
        &self,
        params: &SearchParams,
        timeout: Duration,
        out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        let url = self.endpoint(&["v1", "export"])?;
        let builder = self.http.get(url.clone()).query(params).timeout(timeout);
        let mut response = self.send(url.as_str(), builder)?;
        response
            .copy_to(out)
            .map_err(|err| Error::Protocol { url: url.to_string(), reason: error_chain(&err) })
    }

    /// `GET /v1/logs/{tenant}/checkpoint`: the latest signed checkpoint (a C2SP signed note).
    pub fn checkpoint(&self, tenant: &str) -> Result<String> {
        self.get_text(self.endpoint(&["v1", "logs", tenant, "checkpoint"])?)
    }

    /// `GET /v1/logs/{tenant}/vkeys`: the verifier keys of the log, one per line as served.
    pub fn vkeys(&self, tenant: &str) -> Result<Vec<String>> {
        let text = self.get_text(self.endpoint(&["v1", "logs", tenant, "vkeys"])?)?;
        Ok(text.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned).collect())
    }

    /// `GET /v1/logs/{tenant}/consistency`: a proof that tree size `from` is a prefix of `to`.
    pub fn consistency(&self, tenant: &str, from: u64, to: u64) -> Result<ConsistencyProof> {
        self.get(self.endpoint(&["v1", "logs", tenant, "consistency"])?, &ConsistencyParams { from, to })
    }

    /// `POST /v1/tenants`: creates a tenant, or answers the existing one (`created` false).
    pub fn create_tenant(&self, request: &CreateTenant) -> Result<Tenant> {
        self.post(self.endpoint(&["v1", "tenants"])?, request)
    }

    /// `GET /v1/tenants`.
    pub fn list_tenants(&self) -> Result<TenantList> {
        self.get(self.endpoint(&["v1", "tenants"])?, &())
    }

    /// `POST /v1/keys`: the new key, shown this once.
    pub fn create_key(&self, request: &CreateKey) -> Result<NewKey> {
        self.post(self.endpoint(&["v1", "keys"])?, request)
    }

    /// `GET /v1/keys`.
    pub fn list_keys(&self) -> Result<KeyList> {
        self.get(self.endpoint(&["v1", "keys"])?, &())
    }

    /// `DELETE /v1/keys/{key_id}`: answers the key as revoked.
    pub fn revoke_key(&self, key_id: &str) -> Result<KeyInfo> {
        let url = self.endpoint(&["v1", "keys", key_id])?;
        let response = self.send(url.as_str(), self.http.delete(url.clone()))?;
        Client::read_json(url.as_str(), response)
    }

    /// `POST /v1/subjects/{subject}/erasure`: destroys the subject's data key (privacy role or admin).
    pub fn erase(
        &self,
        subject: &str,
        request: &evident_wire::privacy::EraseRequest,
    ) -> Result<evident_wire::privacy::Erasure> {
        self.post(self.endpoint(&["v1", "subjects", subject, "erasure"])?, request)
    }

    /// `POST /v1/holds`: places a legal hold.
    pub fn create_hold(
        &self,
        request: &evident_wire::privacy::CreateHold,
    ) -> Result<evident_wire::privacy::HoldView> {
        self.post(self.endpoint(&["v1", "holds"])?, request)
    }

    /// `GET /v1/holds`: every hold of the tenant, active and released.
    pub fn list_holds(&self) -> Result<evident_wire::privacy::HoldList> {
        self.get(self.endpoint(&["v1", "holds"])?, &())
    }

    /// `DELETE /v1/holds/{id}`: releases a hold, saying why.
    pub fn release_hold(&self, id: &str, reason: &str) -> Result<evident_wire::privacy::HoldView> {
        let url = self.endpoint(&["v1", "holds", id])?;
        let body = evident_wire::privacy::ReleaseHold { reason: reason.to_owned() };
        let response = self.send(url.as_str(), self.http.delete(url.clone()).json(&body))?;
        Client::read_json(url.as_str(), response)
    }

    /// `GET /v1/subjects/{subject}/report?kind=`: a report about a subject, as JSON or (with
    /// `html`) a printable HTML page; the bytes as served.
    pub fn report(&self, subject: &str, kind: &str, html: bool) -> Result<Vec<u8>> {
        let url = self.endpoint(&["v1", "subjects", subject, "report"])?;
        let accept = if html { "text/html" } else { "application/json" };
        let builder =
            self.http.get(url.clone()).query(&[("kind", kind)]).header(reqwest::header::ACCEPT, accept);
        let response = self.send(url.as_str(), builder)?;
        let bytes = response
            .bytes()
            .map_err(|err| Error::Protocol { url: url.to_string(), reason: error_chain(&err) })?;
        Ok(bytes.to_vec())
    }

    /// `POST /v1/personal-search`: events whose personal field equals a value (investigators).
    pub fn personal_search(&self, request: &evident_wire::privacy::PersonalSearch) -> Result<EventPage> {
        self.post(self.endpoint(&["v1", "personal-search"])?, request)
    }

    /// `GET /healthz`: a node that is not healthy answers 503 with the same body, so that is an
    /// answer here too (`status` is not `ok`, `problems` say why).
    pub fn health(&self) -> Result<Health> {
        let url = self.endpoint(&["healthz"])?;
        let response = self.answer(url.as_str(), self.http.get(url.clone()))?;
        if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return Client::read_json(url.as_str(), response);
        }
        let response = self.checked(response)?;
        Client::read_json(url.as_str(), response)
    }

    fn get<T: DeserializeOwned>(&self, url: Url, query: &impl Serialize) -> Result<T> {
        let response = self.send(url.as_str(), self.http.get(url.clone()).query(query))?;
        Client::read_json(url.as_str(), response)
    }

    fn post<T: DeserializeOwned>(&self, url: Url, body: &impl Serialize) -> Result<T> {
        let response = self.send(url.as_str(), self.http.post(url.clone()).json(body))?;
        Client::read_json(url.as_str(), response)
    }

    fn get_bytes(&self, url: Url) -> Result<Vec<u8>> {
        let response = self.send(url.as_str(), self.http.get(url.clone()))?;
        let bytes = response
            .bytes()
            .map_err(|err| Error::Protocol { url: url.to_string(), reason: error_chain(&err) })?;
        Ok(bytes.to_vec())
    }

    fn get_text(&self, url: Url) -> Result<String> {
        let bytes = self.get_bytes(url.clone())?;
        String::from_utf8(bytes)
            .map_err(|err| Error::Protocol { url: url.to_string(), reason: err.to_string() })
    }
}
