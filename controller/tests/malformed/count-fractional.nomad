job "web" {
  group "web" {
    count = 1.5
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
