job "web" {
  constraint {
    attribute = "${attr.kernel.name}"
    operator  = "=~"
    value     = "linux"
  }
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
