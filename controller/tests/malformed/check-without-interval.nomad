job "web" {
  group "web" {
    network {
      port "http" { to = 80 }
    }
    service {
      name = "web"
      port = "http"
      check {
        type    = "tcp"
        timeout = "2s"
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
