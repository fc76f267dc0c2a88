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

# The HTTP API, /metrics and the RPC port clients join. Loopback keeps them on this machine.
# Beyond loopback the agent refuses to start without tokens: http_api_token (or DROVER_TOKEN)
# for the API, server { join_token } (or DROVER_JOIN_TOKEN) for the RPC port. For Prometheus
# on another host, `addresses { http = "10.0.0.10" }` moves only the API.
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
