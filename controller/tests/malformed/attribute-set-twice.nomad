job "web" {
  group "web" {
    count = 1
    count = 3
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
