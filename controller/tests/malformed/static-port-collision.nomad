job "web" {
  group "web" {
    network {
      port "http" { static = 8080 }
      port "admin" { static = 8080 }
    }
    task "api" {
      driver = "docker"
      config {
        image = "traefik/whoami"
        ports = ["http", "admin"]
      }
    }
  }
}
