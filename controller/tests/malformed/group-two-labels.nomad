job "web" {
  group "web" "extra" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
