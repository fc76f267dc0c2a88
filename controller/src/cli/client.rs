//! The CLI's HTTP client for an agent's API (Nomad's paths and JSON). The address comes from
//! `-address`, then `DROVER_ADDR`, then `NOMAD_ADDR`, then `http://127.0.0.1:4646`; a token from
//! `-token`, `DROVER_TOKEN` or `NOMAD_TOKEN` is sent as `X-Nomad-Token`.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The agent's HTTP address (default: DROVER_ADDR, NOMAD_ADDR or http://127.0.0.1:4646).
    #[arg(long, value_name = "ADDR", global = true)]
    pub address: Option<String>,
    /// The API token, sent as X-Nomad-Token (default: DROVER_TOKEN or NOMAD_TOKEN).
    #[arg(long, value_name = "TOKEN", global = true)]
    pub token: Option<String>,
}

pub struct ApiClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// A non-2xx answer: the status and the agent's message.
#[derive(Debug, thiserror::Error)]
#[error("{message} (HTTP {status})")]
pub struct ApiStatusError {
    pub status: u16,
    pub message: String,
}

impl ApiClient {
    pub fn new(args: &ApiArgs) -> Self {
        let base = args
            .address
            .clone()
            .or_else(|| std::env::var("DROVER_ADDR").ok())
            .or_else(|| std::env::var("NOMAD_ADDR").ok())
            .unwrap_or_else(|| "http://127.0.0.1:4646".into());
        let base = if base.contains("://") {
            base
        } else {
            format!("http://{base}")
        };
        let token = args
            .token
            .clone()
            .or_else(|| std::env::var("DROVER_TOKEN").ok())
            .or_else(|| std::env::var("NOMAD_TOKEN").ok());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .build()
            .new_agent();
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn finish(
        &self,
        method: &str,
        path: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let resp = resp.with_context(|| {
            format!(
                "failed to reach the drover agent at {} ({method} {path}); is `drover agent` running? Set -address or DROVER_ADDR",
                self.base
            )
        })?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let mut body = String::new();
        let _ = resp
            .into_body()
            .into_reader()
            .take(64 * 1024)
            .read_to_string(&mut body);
        Err(ApiStatusError {
            status,
            message: body.trim().to_string(),
        }
        .into())
    }

    fn request(
        &self,
        method: &str,
        path: &str,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let url = self.url(path);
        let mut req = match method {
            "DELETE" => self.agent.delete(&url),
            _ => self.agent.get(&url),
        };
        if let Some(t) = &self.token {
            req = req.header("X-Nomad-Token", t);
        }
        req
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self.finish("GET", path, self.request("GET", path).call())?;
        resp.into_body()
            .read_json::<Value>()
            .with_context(|| format!("the agent's answer to GET {path} is not JSON"))
    }

    /// A GET whose answer is plain text (logs).
    pub fn get_text(
        &self,
        path: &str,
        timeout: Option<Duration>,
    ) -> anyhow::Result<Box<dyn Read + Send>> {
        let req = self
            .request("GET", path)
            .config()
            .timeout_global(timeout)
            .build();
        let resp = self.finish("GET", path, req.call())?;
        Ok(Box::new(resp.into_body().into_reader()))
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self.finish("DELETE", path, self.request("DELETE", path).call())?;
        resp.into_body()
            .read_json::<Value>()
            .with_context(|| format!("the agent's answer to DELETE {path} is not JSON"))
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let mut req = self.agent.post(&self.url(path));
        if let Some(t) = &self.token {
            req = req.header("X-Nomad-Token", t);
        }
        let resp = self.finish("POST", path, req.send_json(body))?;
        resp.into_body()
            .read_json::<Value>()
            .with_context(|| format!("the agent's answer to POST {path} is not JSON"))
    }

    pub fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let mut req = self.agent.put(&self.url(path));
        if let Some(t) = &self.token {
            req = req.header("X-Nomad-Token", t);
        }
        let resp = self.finish("PUT", path, req.send_json(body))?;
        resp.into_body()
            .read_json::<Value>()
            .with_context(|| format!("the agent's answer to PUT {path} is not JSON"))
    }

    /// Resolves an allocation ID prefix to the one full ID, as Nomad does.
    pub fn resolve_alloc(&self, prefix: &str) -> anyhow::Result<String> {
        if prefix.len() < 2 {
            bail!("the allocation ID prefix must be at least 2 characters");
        }
        let list = self.get(&format!("/v1/allocations?prefix={}", encode(prefix)))?;
        let ids: Vec<&str> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["ID"].as_str())
            .collect();
        match ids.as_slice() {
            [one] => Ok(one.to_string()),
            [] => bail!("no allocation(s) with prefix or id {prefix:?} found"),
            many => bail!(
                "prefix {prefix:?} matched multiple allocations:\n{}",
                many.iter()
                    .map(|i| format!("  {i}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    /// Resolves a node ID prefix (or a node name) to the full ID.
    pub fn resolve_node(&self, prefix: &str) -> anyhow::Result<String> {
        let list = self.get("/v1/nodes")?;
        let nodes: Vec<&Value> = list.as_array().into_iter().flatten().collect();
        let matches: Vec<&str> = nodes
            .iter()
            .filter(|n| {
                n["ID"].as_str().is_some_and(|i| i.starts_with(prefix))
                    || n["Name"].as_str() == Some(prefix)
            })
            .filter_map(|n| n["ID"].as_str())
            .collect();
        match matches.as_slice() {
            [one] => Ok(one.to_string()),
            [] => bail!("no node(s) with prefix or name {prefix:?} found"),
            many => bail!(
                "prefix {prefix:?} matched multiple nodes: {}",
                many.join(", ")
            ),
        }
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
