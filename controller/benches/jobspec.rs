//! Jobspec parsing speed: one realistic ~250-line job, and a directory of 10,000 small jobs
//! read from disk one after another on one thread (the target: under 1 s).
//!
//! `cargo bench -p drover-controller --bench jobspec`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use drover::jobspec::{self, ParseOptions};

const DIR_JOBS: usize = 10_000;

fn big_job(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures/big.nomad");
    let bytes = std::fs::read(&path).expect("benches/fixtures/big.nomad");
    let opts = ParseOptions::default();
    // A benchmark of a file that fails would measure the error path instead.
    match jobspec::parse(&path, &bytes, &opts) {
        Ok(p) => assert!(
            p.warnings.is_empty(),
            "big.nomad raises warnings: {:?}",
            p.warnings
        ),
        Err(e) => panic!("{e}"),
    }
    c.bench_function("parse+validate big.nomad", |b| {
        b.iter(|| {
            jobspec::parse(black_box(&path), black_box(&bytes), &opts)
                .map(|p| p.job.task_groups.len())
        })
    });
}

/// A whoami-sized job with its own id, as a directory of independent jobs would hold.
fn small_job(i: usize) -> String {
    format!(
        r#"job "whoami-{i}" {{
  datacenters = ["dc1"]

  group "web" {{
    count = {count}

    network {{
      port "http" {{
        to = 80
      }}
    }}

    task "api" {{
      driver = "docker"
      config {{
        image = "traefik/whoami:v1.{minor}"
        ports = ["http"]
      }}
      resources {{
        cpu    = 100
        memory = 64
      }}
    }}
  }}
}}
"#,
        count = 1 + i % 3,
        minor = i % 10,
    )
}

fn parse_dir(dir: &Path, opts: &ParseOptions) -> usize {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("bench directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| jobspec::Format::is_job_file(p))
        .collect();
    paths.sort();
    let mut ok = 0;
    for p in &paths {
        if jobspec::parse_file(p, opts).is_ok() {
            ok += 1;
        }
    }
    ok
}

fn directory(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    for i in 0..DIR_JOBS {
        std::fs::write(
            dir.path().join(format!("whoami-{i:05}.nomad")),
            small_job(i),
        )
        .expect("write job");
    }
    let opts = ParseOptions::default();
    assert_eq!(
        parse_dir(dir.path(), &opts),
        DIR_JOBS,
        "every generated job must parse"
    );

    let mut group = c.benchmark_group("directory");
    // One iteration is 10,000 files; a handful of samples is enough and keeps the run short.
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("parse+validate 10,000 whoami-sized files", |b| {
        b.iter(|| parse_dir(black_box(dir.path()), &opts))
    });
    group.finish();
}

criterion_group!(benches, big_job, directory);
criterion_main!(benches);
