job "web" {
  group "web" {
    count = "two"
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
