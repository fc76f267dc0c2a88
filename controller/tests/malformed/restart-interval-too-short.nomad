job "web" {
  group "web" {
    restart {
      attempts = 10
      interval = "1m"
      delay    = "30s"
      mode     = "fail"
    }
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
