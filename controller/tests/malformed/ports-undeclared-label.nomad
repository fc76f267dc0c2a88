job "web" {
  group "web" {
    network {
      port "http" { to = 80 }
    }
    task "api" {
      driver = "docker"
      config {
        image = "traefik/whoami"
        ports = ["htp"]
      }
    }
  }
}
