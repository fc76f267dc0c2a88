job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config {
        image = "traefik/whoami"
        port_map {
          htpp = 80
        }
      }
      resources {
        network {
          port "http" {}
        }
      }
    }
  }
}
