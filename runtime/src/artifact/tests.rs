use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;

use super::*;

fn artifact(source: &str, destination: &str, mode: &str) -> Artifact {
    Artifact {
        source: source.into(),
        destination: destination.into(),
        mode: mode.into(),
        options: BTreeMap::new(),
        headers: BTreeMap::new(),
        chown: false,
    }
}

fn with_checksum(mut a: Artifact, c: &str) -> Artifact {
    a.options.insert("checksum".into(), c.into());
    a
}

const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn unsupported_sources_are_named() {
    for (src, want) in [
        (
            "git::https://github.com/x/y",
            "\"git\" getter is not supported",
        ),
        ("s3::https://s3.amazonaws.com/b/k", "\"s3\" getter"),
        ("github.com/hashicorp/nomad", "fetched with git"),
        ("gcs://bucket/obj", "gcs:// is not supported"),
        ("ftp://host/x", "ftp:// is not supported"),
        ("relative/path", "has no scheme"),
        ("file://host/x", "absolute path"),
        ("https:///x", "no host"),
    ] {
        let e = Plan::new(&artifact(src, "local/", "any")).expect_err(src);
        assert_eq!(e.field(), "source", "{src}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("unsupported artifact source {src:?}")),
            "{msg}"
        );
        assert!(msg.contains(want), "{msg} (want {want:?})");
    }
    for ok in [
        "https://example.com/x.tar.gz",
        "http://127.0.0.1:8080/c.json?x=1",
        "file:///srv/c.json",
        "/srv/c.json",
        "http::http://example.com/a",
    ] {
        Plan::new(&artifact(ok, "local/", "any")).expect(ok);
    }
}

#[test]
fn destinations_stay_in_the_task_dir() {
    assert_eq!(
        destination_within("local/").expect("local"),
        PathBuf::from("local")
    );
    assert_eq!(
        destination_within("/local/config/../x").expect("joined"),
        PathBuf::from("local/x")
    );
    assert_eq!(destination_within("").expect("empty"), PathBuf::new());
    let e = destination_within("local/../../x").expect_err("escape");
    assert!(e.to_string().contains("escapes the task directory"), "{e}");
    let e = Plan::new(&artifact("https://h/x", "../../etc", "any")).expect_err("escape");
    assert_eq!(e.field(), "destination");
    let e = Plan::new(&artifact("https://h/x", "", "file")).expect_err("no file name");
    assert!(e.to_string().contains("must name a file"), "{e}");
}

#[test]
fn options_and_query_parameters() {
    let p = Plan::new(&artifact(
        &format!("https://h/c.tgz?token=1&checksum=sha256%3A{ABC_SHA256}&archive=false"),
        "local/",
        "any",
    ))
    .expect("query");
    assert_eq!(p.describe(), "https://h/c.tgz?token=1");
    assert_eq!(p.archive, None);
    assert_eq!(
        p.checksum.as_ref().map(|c| c.hex.as_str()),
        Some(ABC_SHA256)
    );
    let p = Plan::new(&artifact("https://h/c.tgz", "local/", "any")).expect("tgz");
    assert_eq!(p.archive, Some(ArchiveKind::TarGz));
    let p = Plan::new(&artifact("https://h/c.tgz", "local/c.tgz", "file")).expect("file");
    assert_eq!(p.archive, None, "mode file never unpacks");
    let e = Plan::new(&with_checksum(
        artifact("https://h/c", "local/", "any"),
        "sha256:12",
    ))
    .expect_err("bad checksum");
    assert_eq!(e.field(), "options.checksum");
    let mut a = artifact("https://h/c", "local/", "any");
    a.options.insert("aws_access_key_id".into(), "x".into());
    let e = Plan::new(&a).expect_err("option");
    assert_eq!(e.field(), "options");
    assert!(e.to_string().contains("\"aws_access_key_id\""), "{e}");
    let e = Plan::new(&artifact("https://h/c", "local/", "folder")).expect_err("mode");
    assert_eq!(e.field(), "mode");
}

fn task_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(d.path().join("local")).expect("local");
    std::fs::create_dir_all(d.path().join("tmp")).expect("tmp");
    d
}

fn run(a: &Artifact, dir: &Path, limits: &ArtifactLimits) -> Result<Fetched, ArtifactError> {
    fetch(&Plan::new(a)?, dir, limits, &AtomicBool::new(false))
}

#[test]
fn file_sources_in_each_mode() {
    let src = tempfile::tempdir().expect("src");
    let file = src.path().join("c.json");
    std::fs::write(&file, "abc").expect("write");
    let dir = task_dir();
    let url = format!("file://{}", file.display());
    let limits = ArtifactLimits::default();

    let got = run(
        &with_checksum(
            artifact(&url, "local/config/config.json", "file"),
            &format!("sha256:{ABC_SHA256}"),
        ),
        dir.path(),
        &limits,
    )
    .expect("file mode");
    assert_eq!(got.bytes, 3);
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).expect(p);
    assert_eq!(read("local/config/config.json"), "abc");

    run(&artifact(&url, "local/", "any"), dir.path(), &limits).expect("any mode");
    assert_eq!(read("local/c.json"), "abc");

    let e = run(&artifact(&url, "local/", "dir"), dir.path(), &limits).expect_err("dir mode");
    assert!(e.to_string().contains("needs an archive"), "{e}");

    std::fs::create_dir_all(src.path().join("tree/sub")).expect("tree");
    std::fs::write(src.path().join("tree/sub/a"), "a").expect("a");
    let tree = format!("file://{}", src.path().join("tree").display());
    let got = run(&artifact(&tree, "local/tree", "dir"), dir.path(), &limits).expect("tree");
    assert_eq!(got.files, 1);
    assert_eq!(read("local/tree/sub/a"), "a");

    // Nothing is left behind in tmp/.
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp"))
            .expect("tmp")
            .count(),
        0
    );
}

#[test]
fn a_wrong_checksum_or_an_oversized_file_fails_and_leaves_nothing() {
    let src = tempfile::tempdir().expect("src");
    let file = src.path().join("c.json");
    std::fs::write(&file, "abc").expect("write");
    let dir = task_dir();
    let url = format!("file://{}", file.display());
    let wrong = format!("sha256:{}", "0".repeat(64));
    let e = run(
        &with_checksum(artifact(&url, "local/c.json", "file"), &wrong),
        dir.path(),
        &ArtifactLimits::default(),
    )
    .expect_err("mismatch");
    assert_eq!(
        e.to_string(),
        format!(
            "checksum mismatch: expected sha256 {}, got {ABC_SHA256}",
            "0".repeat(64)
        )
    );
    assert!(!dir.path().join("local/c.json").exists());
    let small = ArtifactLimits {
        http_max_size: 2,
        ..ArtifactLimits::default()
    };
    let e = run(&artifact(&url, "local/c.json", "file"), dir.path(), &small).expect_err("size");
    assert!(e.to_string().contains("http_max_size of 2 bytes"), "{e}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp"))
            .expect("tmp")
            .count(),
        0
    );
}

#[test]
fn a_destination_through_a_symlink_out_is_refused() {
    let dir = task_dir();
    let outside = tempfile::tempdir().expect("outside");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("local/config")).expect("link");
    let src = tempfile::tempdir().expect("src");
    std::fs::write(src.path().join("c.json"), "abc").expect("write");
    let url = format!("file://{}", src.path().join("c.json").display());
    let e = run(
        &artifact(&url, "local/config/c.json", "file"),
        dir.path(),
        &ArtifactLimits::default(),
    )
    .expect_err("symlink");
    assert_eq!(e.field(), "destination");
    assert!(e.to_string().contains("outside the task directory"), "{e}");
    assert!(!outside.path().join("c.json").exists());
}

/// One-shot HTTP server on loopback answering `status` and `body` to every request, for as
/// many requests as asked.
fn serve(status: &str, body: Vec<u8>, requests: usize) -> String {
    serve_checking(status, body, requests, None)
}

/// Like [`serve`]; with `need_header`, a request without that header line gets a 403.
fn serve_checking(
    status: &str,
    body: Vec<u8>,
    requests: usize,
    need_header: Option<&'static str>,
) -> String {
    let listener = TcpListener::bind("127.0.6.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let status = status.to_string();
    std::thread::spawn(move || {
        for _ in 0..requests {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            let mut seen = false;
            while r.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                seen |= need_header.is_some_and(|h| line.trim().eq_ignore_ascii_case(h));
                line.clear();
            }
            let status = if need_header.is_some() && !seen {
                "403 Forbidden"
            } else {
                status.as_str()
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}")
}

#[test]
fn http_downloads_archives_and_errors() {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "config/config.json", &b"abc"[..])
        .expect("append");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar.into_inner().expect("tar")).expect("gz");
    let base = serve("200 OK", gz.finish().expect("gz"), 1);
    let dir = task_dir();
    let got = run(
        &artifact(&format!("{base}/bundle.tar.gz"), "local/", "any"),
        dir.path(),
        &ArtifactLimits::default(),
    )
    .expect("http tar.gz");
    assert_eq!(got.files, 1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("local/config/config.json")).expect("read"),
        "abc"
    );

    let base = serve("404 Not Found", b"nope".to_vec(), 1);
    let url = format!("{base}/missing.json");
    let e = run(
        &artifact(&url, "local/", "any"),
        dir.path(),
        &ArtifactLimits::default(),
    )
    .expect_err("404");
    assert_eq!(e.to_string(), "bad response code: 404 Not Found");
    assert!(matches!(&e, ArtifactError::Http { url: u, .. } if *u == url));

    let base = serve("200 OK", vec![b'x'; 100], 1);
    let small = ArtifactLimits {
        http_max_size: 10,
        ..ArtifactLimits::default()
    };
    let e = run(
        &artifact(&format!("{base}/big"), "local/", "any"),
        dir.path(),
        &small,
    )
    .expect_err("too big");
    assert!(e.to_string().contains("http_max_size"), "{e}");
}

#[test]
fn headers_are_sent_and_checked() {
    let base = serve_checking(
        "200 OK",
        b"abc".to_vec(),
        2,
        Some("authorization: Bearer t0k"),
    );
    let dir = task_dir();
    let mut a = artifact(&format!("{base}/c.json"), "local/c.json", "file");
    let e = run(&a, dir.path(), &ArtifactLimits::default()).expect_err("no header");
    assert!(e.to_string().contains("403"), "{e}");
    a.headers
        .insert("Authorization".into(), "Bearer t0k".into());
    run(&a, dir.path(), &ArtifactLimits::default()).expect("with header");
    a.headers.insert("bad name".into(), "x".into());
    assert_eq!(Plan::new(&a).expect_err("bad").field(), "headers");
}
