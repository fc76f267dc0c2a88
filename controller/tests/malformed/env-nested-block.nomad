job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
      env {
        PORT = "8080"
        nested {
          X = "1"
        }
      }
    }
  }
}
