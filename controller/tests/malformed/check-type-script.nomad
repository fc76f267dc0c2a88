job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
      service {
        name = "web"
        check {
          type     = "script"
          command  = "/bin/healthcheck"
          interval = "10s"
          timeout  = "2s"
        }
      }
    }
  }
}
