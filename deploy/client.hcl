# drover's client: runs this machine's allocations with the docker and raw_exec drivers.
# With server.hcl in the same agent (deploy/drover.service) the client talks to its own
# server in-process and needs no `servers`.

client {
  enabled = true

  # For a client on another machine, the servers it joins (host:rpc port):
  # servers = ["10.0.0.10:4647"]

  node_class = ""
  node_pool  = "default"

  # The node's address: what task ports bind on and services advertise. Default: bind_addr,
  # or, when that is 0.0.0.0, the default-route interface's address. Either name the
  # interface (Nomad's key) or the address (drover's), not both.
  # network_interface = "eth0"
  # network_address   = "10.0.0.11"

  meta {
    rack = "r1"
  }
}

plugin "docker" {
  config {
    # Let jobs mount host paths (docker `volumes`); off by default, as in Nomad.
    volumes {
      enabled = false
    }
    allow_privileged = false
  }
}

plugin "raw_exec" {
  config {
    # raw_exec runs commands as the drover user, inside the service's sandbox.
    enabled = false
  }
}
