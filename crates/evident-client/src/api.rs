//! The API's endpoints, one each, with the requests and answers of `evident_wire::api`. The table
//! in `endpoints!` below is the one definition of every endpoint: its path (spelled here and
//! nowhere else in the client), its parameters and its answer. From it come a [`Request`] builder
//! on [`Target`], the blocking method on [`Client`] and the async method on [`AsyncClient`]; both
//! clients send a `Request` the same way, so no method body exists twice.

use std::marker::PhantomData;
use std::time::Duration;

use evident_wire::api::{
    ConsistencyParams, ConsistencyProof, CreateKey, CreateTenant, EventPage, EventView, Health, History,
    HistoryParams, IngestResponse, KeyInfo, KeyList, NewKey, PageParams, SearchParams, Tenant, TenantList,
};
use evident_wire::detect::{
    BacktestReport, BacktestRequest, CreateWebhook, DeadLetterList, Deleted, FindingPage, FindingParams,
    FindingRecord, NewWebhook, Redelivering, Rule, RuleList, StatusRequest, TemplateList, WebhookList,
};
use evident_wire::insight::{
    Cohorts, CohortsParams, Funnel, FunnelParams, InsightSettings, Journeys, JourneysParams, Measure,
    MeasureParams, Trend, TrendParams,
};
use evident_wire::privacy::{
    CreateHold, EraseRequest, Erasure, HoldList, HoldView, PersonalSearch, PrivacySettings, ReleaseHold,
};
use evident_wire::streams::{CreateStream, Position, StreamList, StreamView};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{AsyncClient, Client, Error, Result};

/// `?purpose=` of a single read.
#[derive(Serialize)]
struct Purpose<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'a str>,
}

/// The body `{}`.
#[derive(Serialize)]
struct Empty {}

/// Turns an answer's status and body into the method's answer.
type Decode<T> = fn(url: &str, status: u16, body: &[u8]) -> Result<T>;

/// One call of the API, built once, sent by either client.
pub struct Request<T> {
    pub(crate) method: Method,
    pub(crate) url: Url,
    /// Content type and bytes.
    pub(crate) body: Option<(&'static str, Vec<u8>)>,
    /// A status other than 2xx whose body is still the answer (`/healthz` answers 503 when unhealthy).
    pub(crate) also_answer: Option<u16>,
    /// The `Accept` header, when the endpoint serves more than one representation.
    pub(crate) accept: Option<&'static str>,
    pub(crate) decode: Decode<T>,
    answer: PhantomData<fn() -> T>,
}

fn json<T: DeserializeOwned>(url: &str, _status: u16, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|err| Error::Protocol { url: url.to_owned(), reason: err.to_string() })
}

fn with_status<T: DeserializeOwned>(url: &str, status: u16, body: &[u8]) -> Result<(u16, T)> {
    Ok((status, json(url, status, body)?))
}

fn text(url: &str, _status: u16, body: &[u8]) -> Result<String> {
    String::from_utf8(body.to_vec())
        .map_err(|err| Error::Protocol { url: url.to_owned(), reason: err.to_string() })
}

fn bytes(_url: &str, _status: u16, body: &[u8]) -> Result<Vec<u8>> {
    Ok(body.to_vec())
}

fn lines(url: &str, status: u16, body: &[u8]) -> Result<Vec<String>> {
    let text = text(url, status, body)?;
    Ok(text.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned).collect())
}

/// Where requests go: the server's base URL. Both clients build their requests here.
#[derive(Clone, Debug)]
pub struct Target {
    pub(crate) base: String,
}

impl Target {
    /// The URL of the path made of `segments`, each percent-encoded (an id may hold `/`).
    pub(crate) fn endpoint(&self, segments: &[&str]) -> Result<Url> {
        let unusable =
            |reason: &str| Error::Unreachable { url: self.base.clone(), reason: reason.to_owned() };
        let mut url = Url::parse(&self.base).map_err(|err| unusable(&err.to_string()))?;
        url.path_segments_mut().map_err(|()| unusable("not a base URL"))?.pop_if_empty().extend(segments);
        Ok(url)
    }

    fn request<T>(&self, method: Method, segments: &[&str], decode: Decode<T>) -> Result<Request<T>> {
        let url = self.endpoint(segments)?;
        Ok(Request { method, url, body: None, also_answer: None, accept: None, decode, answer: PhantomData })
    }

    fn get<T: DeserializeOwned>(&self, segments: &[&str], query: &impl Serialize) -> Result<Request<T>> {
        self.request(Method::GET, segments, json)?.query(query)
    }

    fn post<T: DeserializeOwned>(&self, segments: &[&str], body: &impl Serialize) -> Result<Request<T>> {
        self.with_json(Method::POST, segments, body)
    }

    fn with_json<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: &impl Serialize,
    ) -> Result<Request<T>> {
        let body = serde_json::to_vec(body).expect("request types serialize");
        Ok(self.request(method, segments, json)?.body("application/json", body))
    }
}

impl<T> Request<T> {
    fn query(mut self, query: &impl Serialize) -> Result<Request<T>> {
        let encoded = serde_urlencoded::to_string(query)
            .map_err(|err| Error::Protocol { url: self.url.to_string(), reason: err.to_string() })?;
        self.url.set_query((!encoded.is_empty()).then_some(encoded.as_str()));
        Ok(self)
    }

    fn body(mut self, content_type: &'static str, body: Vec<u8>) -> Request<T> {
        self.body = Some((content_type, body));
        self
    }
}

/// The endpoint table: `fn name(target, args...) -> Answer = request;` makes the request builder
/// `Target::name`, the blocking `Client::name` and the async `AsyncClient::name`.
macro_rules! endpoints {
    ($( $(#[$doc:meta])* fn $name:ident($target:ident $(, $arg:ident: $type:ty)*) -> $answer:ty = $build:expr; )*) => {
        impl Target {
            $( $(#[$doc])* pub fn $name(&self $(, $arg: $type)*) -> Result<Request<$answer>> {
                let $target = self;
                $build
            } )*
        }
        impl Client {
            $( $(#[$doc])* pub fn $name(&self $(, $arg: $type)*) -> Result<$answer> {
                self.call(self.target.$name($($arg),*)?)
            } )*
        }
        impl AsyncClient {
            $( $(#[$doc])* pub async fn $name(&self $(, $arg: $type)*) -> Result<$answer> {
                self.call(self.target.$name($($arg),*)?).await
            } )*
        }
    };
}

endpoints! {
    /// `POST /v1/events`: a batch in `content_type` (`application/json` or
    /// `application/x-ndjson`); answers the status (200, or 207 when some events were not stored)
    /// and a receipt per event, in the order sent.
    fn post_events(target, content_type: &'static str, body: Vec<u8>) -> (u16, IngestResponse) =
        Ok(target.request(Method::POST, &["v1", "events"], with_status)?.body(content_type, body));

    /// `GET /v1/events`: one page of a search.
    fn search(target, params: &SearchParams) -> EventPage = target.get(&["v1", "events"], params);

    /// `GET /v1/events/{event_id}`; with a purpose, investigators see personal values.
    fn event(target, event_id: &str, purpose: Option<&str>) -> EventView =
        target.get(&["v1", "events", event_id], &Purpose { purpose });

    /// `GET /v1/events/{event_id}/entry`: the exact entry bytes the log committed to.
    fn entry(target, event_id: &str) -> Vec<u8> =
        target.request(Method::GET, &["v1", "events", event_id, "entry"], bytes);

    /// `GET /v1/events/{event_id}/proof`: the event's `c2sp.org/tlog-proof@v1` receipt.
    fn receipt(target, event_id: &str) -> String =
        target.request(Method::GET, &["v1", "events", event_id, "proof"], text);

    /// `GET /v1/subjects/{subject}/timeline`.
    fn timeline(target, subject: &str, params: &PageParams) -> EventPage =
        target.get(&["v1", "subjects", subject, "timeline"], params);

    /// `GET /v1/records/{record_type}/{record_id}/history`.
    fn history(target, record_type: &str, record_id: &str, params: &HistoryParams) -> History =
        target.get(&["v1", "records", record_type, record_id, "history"], params);

    /// `GET /v1/logs/{tenant}/checkpoint`: the latest signed checkpoint (a C2SP signed note).
    fn checkpoint(target, tenant: &str) -> String =
        target.request(Method::GET, &["v1", "logs", tenant, "checkpoint"], text);

    /// `GET /v1/logs/{tenant}/vkeys`: the verifier keys of the log, one per line as served.
    fn vkeys(target, tenant: &str) -> Vec<String> =
        target.request(Method::GET, &["v1", "logs", tenant, "vkeys"], lines);

    /// `GET /v1/logs/{tenant}/timestamps/{size}`: the TSA's RFC 3161 reply (DER) for the
    /// checkpoint at `size` (404 when there is none; see [`crate::timestamp`]).
    fn timestamp(target, tenant: &str, size: u64) -> Vec<u8> =
        target.request(Method::GET, &["v1", "logs", tenant, "timestamps", &size.to_string()], bytes);

    /// `GET /v1/logs/{tenant}/consistency`: a proof that tree size `from` is a prefix of `to`.
    fn consistency(target, tenant: &str, from: u64, to: u64) -> ConsistencyProof =
        target.get(&["v1", "logs", tenant, "consistency"], &ConsistencyParams { from, to });

    /// `POST /v1/tenants`: creates a tenant, or answers the existing one (`created` false).
    fn create_tenant(target, request: &CreateTenant) -> Tenant = target.post(&["v1", "tenants"], request);

    /// `GET /v1/tenants`.
    fn list_tenants(target) -> TenantList = target.get(&["v1", "tenants"], &());

    /// `POST /v1/keys`: the new key, shown this once.
    fn create_key(target, request: &CreateKey) -> NewKey = target.post(&["v1", "keys"], request);

    /// `GET /v1/keys`.
    fn list_keys(target) -> KeyList = target.get(&["v1", "keys"], &());

    /// `DELETE /v1/keys/{key_id}`: answers the key as revoked.
    fn revoke_key(target, key_id: &str) -> KeyInfo = target.request(Method::DELETE, &["v1", "keys", key_id], json);

    /// `GET /v1/rules`: the tenant's detection rules.
    fn rules(target) -> RuleList = target.get(&["v1", "rules"], &());

    /// `GET /v1/rules/templates`: the templates rules are made from, with default parameters.
    fn rule_templates(target) -> TemplateList = target.get(&["v1", "rules", "templates"], &());

    /// `GET /v1/rules/{rule_id}`.
    fn rule(target, rule_id: &str) -> Rule = target.get(&["v1", "rules", rule_id], &());

    /// `POST /v1/rules`: creates a rule; answers it as stored.
    fn create_rule(target, rule: &Rule) -> Rule = target.post(&["v1", "rules"], rule);

    /// `PUT /v1/rules/{rule_id}`: replaces a rule.
    fn replace_rule(target, rule_id: &str, rule: &Rule) -> Rule =
        target.with_json(Method::PUT, &["v1", "rules", rule_id], rule);

    /// `DELETE /v1/rules/{rule_id}`.
    fn delete_rule(target, rule_id: &str) -> Deleted =
        target.request(Method::DELETE, &["v1", "rules", rule_id], json);

    /// `POST /v1/rules/backtest`: what a rule would have found over a past range.
    fn backtest(target, request: &BacktestRequest) -> BacktestReport =
        target.post(&["v1", "rules", "backtest"], request);

    /// `GET /v1/findings`: one page, newest first.
    fn findings(target, params: &FindingParams) -> FindingPage = target.get(&["v1", "findings"], params);

    /// `GET /v1/findings/{finding_id}`.
    fn finding(target, finding_id: &str) -> FindingRecord = target.get(&["v1", "findings", finding_id], &());

    /// `POST /console/links`: a one-time sign-in link to the web console for this key
    /// (`{"path": "/#/link/...", "expires_in": seconds}`).
    fn console_link(target) -> serde_json::Value = target.post(&["console", "links"], &());

    /// `POST /v1/findings/{finding_id}/status`: a step of the workflow; answers the finding.
    fn set_finding_status(target, finding_id: &str, request: &StatusRequest) -> FindingRecord =
        target.post(&["v1", "findings", finding_id, "status"], request);

    /// `POST /v1/webhooks`: the webhook and its signing secret, shown this once.
    fn create_webhook(target, request: &CreateWebhook) -> NewWebhook = target.post(&["v1", "webhooks"], request);

    /// `GET /v1/webhooks`.
    fn webhooks(target) -> WebhookList = target.get(&["v1", "webhooks"], &());

    /// `DELETE /v1/webhooks/{webhook_id}`.
    fn delete_webhook(target, webhook_id: &str) -> Deleted =
        target.request(Method::DELETE, &["v1", "webhooks", webhook_id], json);

    /// `GET /v1/webhooks/dead-letters`: deliveries that failed every attempt.
    fn dead_letters(target) -> DeadLetterList = target.get(&["v1", "webhooks", "dead-letters"], &());

    /// `POST /v1/webhooks/dead-letters/{delivery_id}/redeliver`.
    fn redeliver(target, delivery_id: &str) -> Redelivering =
        target.post(&["v1", "webhooks", "dead-letters", delivery_id, "redeliver"], &Empty {});

    /// `POST /v1/streams`: a stream out to a SIEM (admins).
    fn create_stream(target, request: &CreateStream) -> StreamView = target.post(&["v1", "streams"], request);

    /// `GET /v1/streams`: the tenant's streams, their cursors, lag and last error.
    fn streams(target) -> StreamList = target.get(&["v1", "streams"], &());

    /// `POST /v1/streams/{stream_id}/position`: the next entry the stream delivers.
    fn position_stream(target, stream_id: &str, position: &Position) -> StreamView =
        target.post(&["v1", "streams", stream_id, "position"], position);

    /// `DELETE /v1/streams/{stream_id}`.
    fn delete_stream(target, stream_id: &str) -> Deleted =
        target.request(Method::DELETE, &["v1", "streams", stream_id], json);

    /// `POST /v1/subjects/{subject}/erasure`: destroys the subject's data keys (the roles the
    /// tenant's `erasure_roles` allows: privacy, admin or both).
    fn erase(target, subject: &str, request: &EraseRequest) -> Erasure =
        target.post(&["v1", "subjects", subject, "erasure"], request);

    /// `GET /v1/privacy/settings`: which roles may erase.
    fn privacy_settings(target) -> PrivacySettings = target.get(&["v1", "privacy", "settings"], &());

    /// `PUT /v1/privacy/settings`: sets which roles may erase (admins only).
    fn put_privacy_settings(target, settings: &PrivacySettings) -> PrivacySettings =
        target.with_json(Method::PUT, &["v1", "privacy", "settings"], settings);

    /// `POST /v1/holds`: places a legal hold.
    fn create_hold(target, request: &CreateHold) -> HoldView = target.post(&["v1", "holds"], request);

    /// `GET /v1/holds`: every hold of the tenant, active and released.
    fn list_holds(target) -> HoldList = target.get(&["v1", "holds"], &());

    /// `DELETE /v1/holds/{id}`: releases a hold, saying why.
    fn release_hold(target, id: &str, reason: &str) -> HoldView =
        target.with_json(Method::DELETE, &["v1", "holds", id], &ReleaseHold { reason: reason.to_owned() });

    /// `GET /v1/subjects/{subject}/report?kind=`: a report about a subject, as JSON or (with
    /// `html`) a printable HTML page; the bytes as served.
    fn report(target, subject: &str, kind: &str, html: bool) -> Vec<u8> = {
        let mut request =
            target.request(Method::GET, &["v1", "subjects", subject, "report"], bytes)?.query(&[("kind", kind)])?;
        request.accept = Some(if html { "text/html" } else { "application/json" });
        Ok(request)
    };

    /// `POST /v1/personal-search`: events whose personal field equals a value (investigators).
    fn personal_search(target, request: &PersonalSearch) -> EventPage =
        target.post(&["v1", "personal-search"], request);

    /// `GET /healthz`: a node that is not healthy answers 503 with the same body, so that is an
    /// answer here too (`status` is not `ok`, `problems` say why).
    fn health(target) -> Health = {
        let mut request = target.request(Method::GET, &["healthz"], json)?;
        request.also_answer = Some(503);
        Ok(request)
    };

    /// `GET /v1/insights/trend`: counts over time by a dimension, with the previous period.
    fn insight_trend(target, params: &TrendParams) -> Trend = target.get(&["v1", "insights", "trend"], params);

    /// `GET /v1/insights/funnel`: customers per ordered step within a window.
    fn insight_funnel(target, params: &FunnelParams) -> Funnel = target.get(&["v1", "insights", "funnel"], params);

    /// `GET /v1/insights/journeys`: sessions, common paths, repeat contacts.
    fn insight_journeys(target, params: &JourneysParams) -> Journeys =
        target.get(&["v1", "insights", "journeys"], params);

    /// `GET /v1/insights/cohorts`: customers by first-seen period and their later activity.
    fn insight_cohorts(target, params: &CohortsParams) -> Cohorts = target.get(&["v1", "insights", "cohorts"], params);

    /// `GET /v1/insights/measure`: durations between steps, workload, coverage.
    fn insight_measure(target, params: &MeasureParams) -> Measure = target.get(&["v1", "insights", "measure"], params);

    /// `GET /v1/insights/settings`: the tenant's suppression threshold.
    fn insight_settings(target) -> InsightSettings = target.get(&["v1", "insights", "settings"], &());

    /// `PUT /v1/insights/settings`: sets the threshold (admins only).
    fn put_insight_settings(target, settings: &InsightSettings) -> InsightSettings =
        target.with_json(Method::PUT, &["v1", "insights", "settings"], settings);
}

impl Client {
    /// `GET /v1/export`: streams the bundle of a search into `out` as it arrives; answers the bytes
    /// copied. `timeout` bounds the whole transfer (the client's default of a minute is for short
    /// calls). An export takes no `cursor`, `limit` or `order`: the server refuses them. (Blocking
    /// only: it streams into a `std::io::Write`.)
    pub fn export_to_writer(
        &self,
        params: &SearchParams,
        timeout: Duration,
        out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        let url = self.target.endpoint(&["v1", "export"])?;
        let builder = self.http.get(url.clone()).query(params).timeout(timeout);
        let mut response = self.send(url.as_str(), builder)?;
        response
            .copy_to(out)
            .map_err(|err| Error::Protocol { url: url.to_string(), reason: crate::error_chain(&err) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target { base: "http://127.0.0.1:7411".into() }
    }

    #[test]
    fn requests_spell_paths_and_queries_once_for_both_clients() {
        let params =
            SearchParams { source: Some("//crm/a b".into()), limit: Some(5), ..SearchParams::default() };
        let request = target().search(&params).unwrap();
        assert_eq!(
            (request.method.as_str(), request.url.as_str()),
            ("GET", "http://127.0.0.1:7411/v1/events?source=%2F%2Fcrm%2Fa+b&limit=5")
        );
        let request = target().receipt("id/with slash").unwrap();
        assert_eq!(request.url.as_str(), "http://127.0.0.1:7411/v1/events/id%2Fwith%20slash/proof");
        let request = target().list_keys().unwrap();
        assert_eq!(request.url.query(), None);
        let request = target().post_events("application/x-ndjson", b"{}\n".to_vec()).unwrap();
        assert_eq!(request.body.as_ref().map(|(kind, _)| *kind), Some("application/x-ndjson"));
        assert_eq!(target().health().unwrap().also_answer, Some(503));
    }

    #[test]
    fn answers_that_break_the_contract_are_protocol_errors() {
        let request = target().list_keys().unwrap();
        let err = (request.decode)("http://x/v1/keys", 200, b"<html>").expect_err("not JSON");
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
        let request = target().checkpoint("default").unwrap();
        assert!((request.decode)("http://x", 200, &[0xff, 0xfe]).is_err(), "not UTF-8");
    }

    #[test]
    fn a_base_that_is_not_a_url_is_refused() {
        let err = Target { base: "not a url".into() }.list_keys().err().expect("refused");
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    }
}
