job "web" {
  group "web" {
    task "api" {
      driver      = "docker"
      kill_signal = "terminate"
      config { image = "traefik/whoami" }
    }
  }
}
