job "web" {
  group "web" {
    count = -1
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
