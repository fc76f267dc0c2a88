job "web" {
  group "web" {
    task "init" {
      driver = "docker"
      config { image = "busybox" }
      lifecycle {
        hook    = "prestart"
        sidecar = false
      }
    }
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
