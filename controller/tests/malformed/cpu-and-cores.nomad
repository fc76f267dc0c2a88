job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
      resources {
        cpu   = 500
        cores = 2
      }
    }
  }
}
