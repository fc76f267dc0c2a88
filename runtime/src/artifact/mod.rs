//! Artifacts: Nomad's `artifact {}` with a subset of go-getter's semantics, fetched by the task
//! runner into the task directory before the task starts.
//!
//! Sources: `http://`, `https://` and `file://` URLs (and absolute paths, which go-getter
//! reads as files). Every other getter (`git::`, `s3::`, `gcs::`, `hg::`, detected GitHub or
//! S3 addresses …) is refused when the job is validated. The `checksum` and `archive` options
//! (in `options {}` or the URL's query, as go-getter takes them) are honoured; `mode` is
//! go-getter's client mode:
//!
//! - `any` (the default): an archive is unpacked into `destination`; any other file is saved
//!   in `destination` under its own name; a `file://` directory is copied into it.
//! - `file`: the file is saved as `destination` itself, never unpacked.
//! - `dir`: the source must be an archive or a `file://` directory.
//!
//! `destination` is relative to the task directory (Nomad's default `local/`) and can never
//! leave it: `..` climbing out and symlinks leading out are refused. Downloads are capped by
//! the node's `client { artifact { … } }` limits (see [`ArtifactLimits`]).

pub mod checksum;
pub mod unpack;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::spec::Artifact;
use checksum::{Checksum, Hasher};
use unpack::{ArchiveKind, UnpackLimits};

/// The node's limits on artifacts (Nomad's `client { artifact { … } }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactLimits {
    /// `http_read_timeout`: the whole download, 30 minutes by default (Nomad's default).
    pub http_read_timeout: Duration,
    /// `http_max_size`: bytes one download may have; 1 GiB by default.
    pub http_max_size: u64,
    /// `decompression_size_limit`: bytes one archive may unpack to; 4 GiB by default.
    pub decompression_size_limit: u64,
    /// `decompression_file_count_limit`: entries one archive may unpack; 4096 (Nomad's).
    pub decompression_file_count_limit: u64,
}

pub const GIB: u64 = 1024 * 1024 * 1024;

impl Default for ArtifactLimits {
    fn default() -> Self {
        ArtifactLimits {
            http_read_timeout: Duration::from_secs(30 * 60),
            http_max_size: GIB,
            decompression_size_limit: 4 * GIB,
            decompression_file_count_limit: 4096,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("unsupported artifact source {url:?}: {reason}")]
    UnsupportedSource { url: String, reason: String },
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("destination {destination:?} {reason}")]
    Destination { destination: String, reason: String },
    /// The message does not repeat the URL: the task event already names the artifact.
    #[error("{message}")]
    Http { url: String, message: String },
    #[error("the download took longer than the node's http_read_timeout of {}s", after.as_secs())]
    Timeout { after: Duration },
    #[error("larger than the node's {option} of {limit} bytes")]
    TooLarge { limit: u64, option: &'static str },
    #[error(
        "entry {entry:?} is one more than the node's decompression_file_count_limit of {limit}"
    )]
    TooManyFiles { entry: String, limit: u64 },
    #[error("checksum mismatch: expected {kind} {expected}, got {actual}")]
    ChecksumMismatch {
        kind: &'static str,
        expected: String,
        actual: String,
    },
    #[error("archive entry {entry:?} {reason}")]
    UnsafeEntry { entry: String, reason: String },
    #[error("bad archive: {0}")]
    Archive(String),
    #[error("failed to {op} {}: {err}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("download cancelled: the task is being stopped")]
    Cancelled,
}

impl ArtifactError {
    pub(crate) fn io(op: &'static str, path: &Path, err: std::io::Error) -> ArtifactError {
        ArtifactError::Io {
            op,
            path: path.to_path_buf(),
            err,
        }
    }

    pub(crate) fn unsafe_entry(entry: &str, reason: impl Into<String>) -> ArtifactError {
        ArtifactError::UnsafeEntry {
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn archive(e: impl std::fmt::Display) -> ArtifactError {
        ArtifactError::Archive(e.to_string())
    }

    /// The jobspec field the problem is in, for validation messages.
    pub fn field(&self) -> &'static str {
        match self {
            ArtifactError::UnsupportedSource { .. } => "source",
            ArtifactError::Invalid { field, .. } => field,
            ArtifactError::Destination { .. } => "destination",
            _ => "source",
        }
    }
}

/// go-getter's client modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Any,
    File,
    Dir,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// The URL as sent, without the `checksum`/`archive` query parameters.
    Http(String),
    File(PathBuf),
}

/// A validated artifact: what to fetch, how to check it and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    source: Source,
    /// The last segment of the source's path.
    name: String,
    checksum: Option<Checksum>,
    /// `None` when the file is kept as it is.
    archive: Option<ArchiveKind>,
    mode: Mode,
    /// Relative to the task directory, normalised.
    destination: PathBuf,
    /// `headers {}`: sent with an HTTP request.
    headers: Vec<(String, String)>,
}

/// The getters go-getter has and drover does not, for the error message.
const OTHER_GETTERS: &[&str] = &["git", "hg", "s3", "gcs", "ssh", "ftp", "ftps", "smb"];

fn unsupported(url: &str, reason: impl Into<String>) -> ArtifactError {
    ArtifactError::UnsupportedSource {
        url: url.to_string(),
        reason: reason.into(),
    }
}

/// Minimal percent-decoding for query values (`sha256%3A…`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `checksum` and `archive` out of a URL's query (go-getter reads them there too).
fn split_query(url: &str) -> (String, BTreeMap<String, String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), BTreeMap::new());
    };
    let mut kept = Vec::new();
    let mut taken = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "checksum" || k == "archive" {
            taken.insert(k.to_string(), percent_decode(v));
        } else {
            kept.push(pair);
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, taken)
}

/// The destination relative to the task directory, or why it leaves it.
pub fn destination_within(destination: &str) -> Result<PathBuf, ArtifactError> {
    let mut rel = PathBuf::new();
    for c in Path::new(destination).components() {
        match c {
            Component::Normal(p) => rel.push(p),
            // Nomad joins the destination onto the task directory, so `/local` is `local`.
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                if !rel.pop() {
                    return Err(ArtifactError::Destination {
                        destination: destination.to_string(),
                        reason: "escapes the task directory".into(),
                    });
                }
            }
        }
    }
    Ok(rel)
}

/// Whether a value still holds `${…}` for the node to fill in.
pub fn is_interpolated(s: &str) -> bool {
    s.contains("${")
}

impl Plan {
    /// Checks an artifact as the job gives it (already interpolated on the node; in a job
    /// file, fields holding `${…}` are checked on the node instead).
    pub fn new(a: &Artifact) -> Result<Plan, ArtifactError> {
        let mode = match a.mode.as_str() {
            "" | "any" => Mode::Any,
            "file" => Mode::File,
            "dir" => Mode::Dir,
            other => {
                return Err(ArtifactError::Invalid {
                    field: "mode",
                    message: format!("{other:?}: expected any, file or dir"),
                });
            }
        };
        let raw = a.source.trim();
        // go-getter's forced getter: `git::https://…`.
        let forced = raw
            .split_once("::")
            .filter(|(g, _)| !g.contains('/') && !g.contains(':'));
        let url = match forced {
            Some(("http" | "https" | "file", rest)) => rest,
            Some((getter, _)) => {
                return Err(unsupported(
                    raw,
                    format!(
                        "the {getter:?} getter is not supported; drover fetches http://, https:// and file:// sources"
                    ),
                ));
            }
            None => raw,
        };
        let (url, mut opts) = split_query(url);
        for (k, v) in &a.options {
            match k.as_str() {
                "checksum" | "archive" => {
                    opts.insert(k.clone(), v.clone());
                }
                other => {
                    return Err(ArtifactError::Invalid {
                        field: "options",
                        message: format!(
                            "unsupported option {other:?}: drover's http and file getters take checksum and archive"
                        ),
                    });
                }
            }
        }
        let (scheme, rest) = match url.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None if url.starts_with('/') => ("file".to_string(), url.as_str()),
            None => {
                let host = url.split('/').next().unwrap_or_default();
                let reason = if ["github.com", "bitbucket.org", "gitlab.com"].contains(&host) {
                    format!(
                        "{host} addresses are fetched with git by go-getter, which drover does not support"
                    )
                } else if host.ends_with("amazonaws.com") || host.ends_with("googleapis.com") {
                    "S3 and GCS sources are not supported".to_string()
                } else {
                    "it has no scheme: write http://, https:// or file://".to_string()
                };
                return Err(unsupported(raw, reason));
            }
        };
        let source = match scheme.as_str() {
            "http" | "https" => {
                let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
                if host.is_empty() {
                    return Err(unsupported(raw, "the URL has no host"));
                }
                Source::Http(format!("{scheme}://{rest}"))
            }
            "file" => {
                // `file:///abs/path` or a bare absolute path; no remote hosts.
                let path = if rest.starts_with('/') {
                    rest.to_string()
                } else if let Some(p) = rest.strip_prefix("localhost/") {
                    format!("/{p}")
                } else {
                    return Err(unsupported(
                        raw,
                        "file:// sources take an absolute path (file:///path/to/file)",
                    ));
                };
                Source::File(PathBuf::from(percent_decode(&path)))
            }
            s if OTHER_GETTERS.contains(&s) => {
                return Err(unsupported(
                    raw,
                    format!(
                        "{s}:// is not supported; drover fetches http://, https:// and file:// sources"
                    ),
                ));
            }
            s => {
                return Err(unsupported(
                    raw,
                    format!(
                        "unknown scheme {s:?}; drover fetches http://, https:// and file:// sources"
                    ),
                ));
            }
        };
        let path_part = match &source {
            Source::Http(u) => {
                let after_host = u.splitn(4, '/').nth(3).unwrap_or_default();
                after_host
                    .split(['?', '#'])
                    .next()
                    .unwrap_or_default()
                    .to_string()
            }
            Source::File(p) => p.display().to_string(),
        };
        let name = percent_decode(
            path_part
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(""),
        );
        let checksum = match opts.get("checksum") {
            Some(c) => Some(
                Checksum::parse(c).map_err(|message| ArtifactError::Invalid {
                    field: "options.checksum",
                    message,
                })?,
            ),
            None => None,
        };
        let archive = match opts.get("archive") {
            Some(v) => ArchiveKind::from_option(v).map_err(|message| ArtifactError::Invalid {
                field: "options.archive",
                message,
            })?,
            None => ArchiveKind::from_name(&name),
        };
        let archive = if mode == Mode::File { None } else { archive };
        let destination = destination_within(&a.destination)?;
        if mode == Mode::File && destination.as_os_str().is_empty() {
            return Err(ArtifactError::Destination {
                destination: a.destination.clone(),
                reason: "must name a file when mode = \"file\"".into(),
            });
        }
        for (k, v) in &a.headers {
            let valid_name = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid_name || v.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(ArtifactError::Invalid {
                    field: "headers",
                    message: format!("{k:?} is not a valid HTTP header"),
                });
            }
        }
        Ok(Plan {
            source,
            name,
            checksum,
            archive,
            mode,
            destination,
            headers: a
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// What the plan fetches, for messages.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Http(u) => u.clone(),
            Source::File(p) => format!("file://{}", p.display()),
        }
    }
}

/// What a fetch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Where it landed, on the host.
    pub path: PathBuf,
    /// Bytes downloaded (or copied).
    pub bytes: u64,
    /// Files written (1 unless an archive or a directory was unpacked).
    pub files: u64,
}

/// Fetches one artifact into `task_dir`, blocking: run it off the async runtime. `cancel`
/// stops it between reads. The download goes to a temporary file in `task_dir/tmp` first, so
/// a failed or cancelled fetch leaves nothing half-written at the destination.
pub fn fetch(
    plan: &Plan,
    task_dir: &Path,
    limits: &ArtifactLimits,
    cancel: &AtomicBool,
) -> Result<Fetched, ArtifactError> {
    let root = task_dir
        .canonicalize()
        .map_err(|e| ArtifactError::io("resolve", task_dir, e))?;
    let confine = |rel: &Path| {
        unpack::dir_within(&root, &rel.display().to_string(), rel).map_err(|e| match e {
            ArtifactError::UnsafeEntry { entry, reason } => ArtifactError::Destination {
                destination: entry,
                reason: reason.replace("the destination", "the task directory"),
            },
            other => other,
        })
    };
    let unpack_limits = UnpackLimits {
        max_bytes: limits.decompression_size_limit,
        max_files: limits.decompression_file_count_limit,
    };
    if let Source::File(p) = &plan.source
        && p.is_dir()
    {
        if plan.mode == Mode::File || plan.checksum.is_some() {
            return Err(ArtifactError::Invalid {
                field: if plan.checksum.is_some() {
                    "options.checksum"
                } else {
                    "mode"
                },
                message: format!("{} is a directory", p.display()),
            });
        }
        let dest = confine(&plan.destination)?;
        let files = unpack::copy_tree(p, &dest, unpack_limits, cancel)?;
        return Ok(Fetched {
            path: dest,
            bytes: 0,
            files,
        });
    }

    let tmp_dir = confine(Path::new("tmp"))?;
    let tmp = tmp_dir.join(format!(".artifact-{}", uuid::Uuid::new_v4().simple()));
    // Removed on every way out; after a successful rename there is nothing left to remove.
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _cleanup = Cleanup(&tmp);
    let bytes = download(plan, &tmp, limits, cancel)?;

    let placed = match (plan.archive, plan.mode) {
        (Some(kind), _) => {
            let dest = confine(&plan.destination)?;
            let files = unpack::unpack(kind, &tmp, &plan.name, &dest, unpack_limits, cancel)?;
            Fetched {
                path: dest,
                bytes,
                files,
            }
        }
        (None, Mode::Dir) => {
            return Err(ArtifactError::Invalid {
                field: "mode",
                message: format!(
                    "\"dir\" needs an archive (tar, tar.gz, tgz, zip) or a file:// directory, and {:?} is neither",
                    plan.name
                ),
            });
        }
        (None, Mode::File) => {
            let parent = confine(plan.destination.parent().unwrap_or(Path::new("")))?;
            let file_name = plan.destination.file_name().unwrap_or_default();
            place(&tmp, &parent.join(file_name), bytes)?
        }
        (None, Mode::Any) => {
            if plan.name.is_empty() {
                return Err(ArtifactError::Invalid {
                    field: "source",
                    message: "the URL names no file; set mode = \"file\" and a destination file"
                        .into(),
                });
            }
            let dir = confine(&plan.destination)?;
            place(&tmp, &dir.join(&plan.name), bytes)?
        }
    };
    Ok(placed)
}

/// Moves the downloaded file to `target`, replacing a file (or a symlink, never followed).
fn place(tmp: &Path, target: &Path, bytes: u64) -> Result<Fetched, ArtifactError> {
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => {
            return Err(ArtifactError::Destination {
                destination: target.display().to_string(),
                reason: "is a directory".into(),
            });
        }
        Ok(_) => {
            std::fs::remove_file(target).map_err(|e| ArtifactError::io("replace", target, e))?
        }
        Err(_) => {}
    }
    std::fs::rename(tmp, target)
        .map_err(|e| ArtifactError::io("move the download to", target, e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| ArtifactError::io("chmod", target, e))?;
    Ok(Fetched {
        path: target.to_path_buf(),
        bytes,
        files: 1,
    })
}

/// Streams the source into `tmp`, capped and hashed; checks the checksum.
fn download(
    plan: &Plan,
    tmp: &Path,
    limits: &ArtifactLimits,
    cancel: &AtomicBool,
) -> Result<u64, ArtifactError> {
    let mut out = std::fs::File::create(tmp).map_err(|e| ArtifactError::io("create", tmp, e))?;
    let mut hasher = plan.checksum.as_ref().map(|c| Hasher::new(c.kind));
    let limit = limits.http_max_size;
    let too_large = ArtifactError::TooLarge {
        limit,
        option: "http_max_size",
    };
    let mut reader: Box<dyn Read> = match &plan.source {
        Source::File(p) => {
            let f = std::fs::File::open(p).map_err(|e| ArtifactError::io("open", p, e))?;
            if f.metadata().map(|m| m.len()).unwrap_or(0) > limit {
                return Err(too_large);
            }
            Box::new(f)
        }
        Source::Http(url) => {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(limits.http_read_timeout))
                .http_status_as_error(false)
                .user_agent(concat!("drover/", env!("CARGO_PKG_VERSION")))
                .build()
                .into();
            let mut req = agent.get(url);
            for (k, v) in &plan.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let resp = req.call().map_err(|e| http_error(url, e, limits))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(ArtifactError::Http {
                    url: url.clone(),
                    message: format!(
                        "bad response code: {} {}",
                        status.as_u16(),
                        status.canonical_reason().unwrap_or("")
                    )
                    .trim_end()
                    .to_string(),
                });
            }
            let declared = resp
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large);
            }
            Box::new(HttpReader {
                inner: resp.into_body().into_reader(),
                url: url.clone(),
                limits: *limits,
            })
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ArtifactError::Cancelled);
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unwrap_read_error(e, plan)),
        };
        total += n as u64;
        if total > limit {
            return Err(too_large);
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        std::io::Write::write_all(&mut out, &buf[..n])
            .map_err(|e| ArtifactError::io("write", tmp, e))?;
    }
    if let (Some(h), Some(want)) = (hasher, plan.checksum.as_ref()) {
        let actual = h.finish();
        if actual != want.hex {
            return Err(ArtifactError::ChecksumMismatch {
                kind: want.kind.as_str(),
                expected: want.hex.clone(),
                actual,
            });
        }
    }
    Ok(total)
}

/// Carries an HTTP read error out through `std::io::Read` with its meaning intact.
struct HttpReader<R> {
    inner: R,
    url: String,
    limits: ArtifactLimits,
}

#[derive(Debug)]
struct WrappedArtifactError(ArtifactError);

impl std::fmt::Display for WrappedArtifactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for WrappedArtifactError {}

impl<R: Read> Read for HttpReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let inner = e.into_inner();
            let mapped = match inner {
                Some(inner) => match inner.downcast::<ureq::Error>() {
                    Ok(ue) => http_error(&self.url, *ue, &self.limits),
                    Err(other) => ArtifactError::Http {
                        url: self.url.clone(),
                        message: other.to_string(),
                    },
                },
                None => ArtifactError::Http {
                    url: self.url.clone(),
                    message: "the connection failed while reading".into(),
                },
            };
            std::io::Error::other(WrappedArtifactError(mapped))
        })
    }
}

fn unwrap_read_error(e: std::io::Error, plan: &Plan) -> ArtifactError {
    if e.get_ref().is_some_and(|i| i.is::<WrappedArtifactError>()) {
        if let Some(inner) = e.into_inner()
            && let Ok(w) = inner.downcast::<WrappedArtifactError>()
        {
            return w.0;
        }
        return ArtifactError::Archive("read failed".into());
    }
    match &plan.source {
        Source::File(p) => ArtifactError::io("read", p, e),
        Source::Http(url) => ArtifactError::Http {
            url: url.clone(),
            message: e.to_string(),
        },
    }
}

fn http_error(url: &str, e: ureq::Error, limits: &ArtifactLimits) -> ArtifactError {
    match e {
        ureq::Error::Timeout(_) => ArtifactError::Timeout {
            after: limits.http_read_timeout,
        },
        other => ArtifactError::Http {
            url: url.to_string(),
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
