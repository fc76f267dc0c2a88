job "web" {
  group "web" {
    count = "yes" ? 2 : 1
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
