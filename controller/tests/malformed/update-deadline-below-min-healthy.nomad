job "web" {
  update {
    min_healthy_time = "5m"
    healthy_deadline = "1m"
  }
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
