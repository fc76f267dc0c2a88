job "web" {
  group "web" {
    network {
      dynamic "port" {
        for_each = "http"
        labels   = [port.value]
        content {}
      }
    }
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
