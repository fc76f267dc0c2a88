//! `GET /metrics` and Nomad's `GET /v1/metrics`: the agent's Prometheus metrics. `/metrics`
//! and `/v1/metrics?format=prometheus` answer in Prometheus' text format; `/v1/metrics`
//! without `format` answers in the shape of Nomad's JSON (see [`Metrics::render_json`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, blocking, internal};
use crate::metrics::{ManifestsSample, Metrics, Sample, TEXT_CONTENT_TYPE};

/// Reads what the gauges show: grouped counts and the job summary from the store, the broker's queue sizes
/// and the manifests source's status.
pub fn sample(st: &AppState) -> Result<Sample, ApiError> {
    let jobs = st.server.store().job_summaries().map_err(internal)?;
    let counts = st.server.store().counts_with(&jobs).map_err(internal)?;
    let queue = st.server.broker().stats();
    let m = st.manifests.lock().unwrap_or_else(|e| e.into_inner());
    let files_error = m.files_in_error() as u64;
    let manifests = ManifestsSample {
        watched: m.dir.is_some(),
        files_ok: m.files.len() as u64 - files_error,
        files_error,
        errors_total: m.errors_total,
        last_successful_sync: m.last_successful_sync,
    };
    Ok(Sample {
        counts,
        queue,
        manifests,
        jobs,
    })
}

fn text(metrics: &Metrics, sample: &Sample) -> Response {
    let mut resp = metrics.render_text(sample).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(TEXT_CONTENT_TYPE),
    );
    resp
}

pub async fn prometheus(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    blocking(st, |st| {
        let sample = sample(st)?;
        Ok(text(st.server.metrics(), &sample))
    })
    .await
}

pub async fn nomad(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let format = q.get("format").cloned().unwrap_or_default();
    blocking(st, move |st| {
        let sample = sample(st)?;
        match format.as_str() {
            "prometheus" => Ok(text(st.server.metrics(), &sample)),
            "" | "json" => {
                let now = crate::structs::unix_nanos(std::time::SystemTime::now());
                let (utc, _) = crate::timefmt::utc_parts(now);
                // go-metrics' time format: "2006-01-02 15:04:05 +0000 UTC".
                let stamp = format!("{} +0000 UTC", utc.replace('T', " "));
                Ok(axum::Json(st.server.metrics().render_json(&sample, &stamp)).into_response())
            }
            other => Err(ApiError::BadRequest(format!(
                "unsupported metrics format {other:?}: expected prometheus, or none for JSON"
            ))),
        }
    })
    .await
}
