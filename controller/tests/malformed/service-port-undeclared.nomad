job "web" {
  group "web" {
    network {
      port "http" { to = 80 }
    }
    service {
      name = "web"
      port = "https"
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
