job "web" {
  type = "servise"
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
