job "web" {
  group "web" {
    task "api" {
      driver       = "docker"
      kill_timeout = "5 seconds"
      config { image = "traefik/whoami" }
    }
  }
}
