job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
      resources {
        memory     = 512
        memory_max = 256
      }
    }
  }
}
