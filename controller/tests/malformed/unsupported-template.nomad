job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
      template {
        data        = "PORT={{ env \"NOMAD_PORT_http\" }}"
        destination = "local/env"
        env         = true
      }
    }
  }
}
