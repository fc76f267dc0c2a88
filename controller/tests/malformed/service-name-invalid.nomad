job "web" {
  group "web" {
    network {
      port "http" { to = 80 }
    }
    service {
      name = "web_frontend.v1"
      port = "http"
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
