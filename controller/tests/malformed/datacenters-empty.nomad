job "web" {
  datacenters = []
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
