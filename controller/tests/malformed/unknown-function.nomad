job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config {
        image = uppercase("traefik/whoami")
      }
    }
  }
}
