job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config {
        image = upper(["traefik/whoami"])
      }
    }
  }
}
