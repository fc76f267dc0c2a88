job "web" {
  spread {
    attribute = "${node.datacenter}"
    target "dc1" {
      percent = 150
    }
  }
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
