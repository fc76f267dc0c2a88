//! The YAML form of a job is the HCL-JSON shape written in YAML: the seed's whoami written both
//! ways must give the same job.

use std::path::Path;

use drover::jobspec::{self, ParseOptions};

#[test]
fn whoami_in_yaml_is_the_same_job_as_in_hcl() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let opts = ParseOptions::default();
    let hcl = jobspec::parse_file(&root.join("../tests/fixtures/seed/whoami.nomad"), &opts)
        .unwrap_or_else(|e| panic!("{e}"));
    let yaml = jobspec::parse_file(&root.join("tests/fixtures/whoami.yaml"), &opts)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hcl.job, yaml.job);
    assert!(hcl.warnings.is_empty() && yaml.warnings.is_empty());
}

#[test]
fn repeated_unlabelled_blocks_are_lists_in_yaml() {
    let src = r#"
job:
  web:
    constraint:
      - attribute: "${attr.kernel.name}"
        value: linux
      - distinct_hosts: true
    group:
      app:
        count: 2
        network:
          port:
            http:
              to: 8080
        service:
          - name: web
            port: http
            provider: nomad
            check:
              - type: http
                path: /health
                interval: 10s
                timeout: 2s
              - type: tcp
                interval: 30s
                timeout: 2s
        task:
          server:
            driver: docker
            config:
              image: nginx:1.27
              ports: [http]
            env:
              MODE: production
"#;
    let parsed = jobspec::parse(
        Path::new("web.yaml"),
        src.as_bytes(),
        &ParseOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let job = parsed.job;
    assert_eq!(job.constraints.len(), 2);
    let group = &job.task_groups[0];
    assert_eq!(group.count, 2);
    assert_eq!(group.services[0].checks.len(), 2);
    assert_eq!(group.tasks[0].env["MODE"], "production");
}
