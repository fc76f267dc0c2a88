job "web" {
  group "web" {
    network {
      port "http" { to = 80 }
      port "http" { to = 8080 }
    }
    task "api" {
      driver = "docker"
      config {
        image = "traefik/whoami"
        ports = ["http"]
      }
    }
  }
}
