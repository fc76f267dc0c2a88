job "web" {
  group "web" {
    network {
      mode = "bridge"
      port "http" { to = 80 }
    }
    service {
      name = "web"
      port = "http"
      connect {
        sidecar_service {}
      }
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
