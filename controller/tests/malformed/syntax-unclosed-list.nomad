job "web" {
  datacenters = ["dc1", "dc2"
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
