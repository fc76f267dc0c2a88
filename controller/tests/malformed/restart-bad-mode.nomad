job "web" {
  group "web" {
    restart {
      attempts = 2
      interval = "30m"
      delay    = "15s"
      mode     = "retry"
    }
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
