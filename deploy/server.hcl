# drover's server, as deploy/drover.service runs it (with client.hcl): the state database,
# the scheduler and the HTTP API, and the watched directory of job files.
# Every key here is one drover reads (controller/src/agent/config.rs); Nomad keys drover
# does not use are accepted with a warning.

name       = "drover-1"
region     = "global"
datacenter = "dc1"

# The state database (server/state.db) and the allocation directories. systemd creates it
# (StateDirectory=drover), owned by the drover user.
data_dir = "/var/lib/drover"

# The HTTP API and /metrics. Loopback keeps the API (which has no authentication) on this
# machine; set the machine's address for Prometheus on another host to scrape it.
bind_addr = "127.0.0.1"

ports {
  http = 4646
  rpc  = 4647
}

log_level = "INFO"
# One JSON object per line, for a log shipper reading the journal.
log_json = false

server {
  enabled          = true
  bootstrap_expect = 1

  # A node that misses heartbeats for min_heartbeat_ttl + heartbeat_grace is down and its
  # allocations are replaced elsewhere.
  min_heartbeat_ttl = "10s"
  heartbeat_grace   = "10s"
}

# The desired state: every *.nomad, *.hcl, *.json, *.yaml file below this directory is a
# job (a GitOps sync writes here). Read-only to the service.
manifests {
  dir = "/etc/drover/jobs"

  # Every job is also listed and evaluated this often, even without a file event.
  resync_interval = "30s"

  # An emptied directory stops every job only after a second listing a grace period later;
  # true stops them at once.
  allow_empty = false
}
