job "web" {
  group "web" {
    network {
      port "http" {
        static = 70000
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
