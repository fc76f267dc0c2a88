job "web" {
  constraint {
    attribute = attr.kernel.name
    value     = "linux"
  }
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
