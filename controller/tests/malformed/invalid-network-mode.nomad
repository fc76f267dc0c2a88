job "web" {
  group "web" {
    network {
      mode = "brigde"
      port "http" { to = 80 }
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
