locals {
  per_node = 8 / 0
}

job "web" {
  group "web" {
    count = local.per_node
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
