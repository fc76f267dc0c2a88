job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config {
        image = "traefik/whoami"
        mount {
          type   = "tmpfs"
          target = "/scratch"
        }
      }
    }
  }
}
