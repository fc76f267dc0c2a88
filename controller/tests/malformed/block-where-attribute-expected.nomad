job "web" {
  group "web" {
    count {
      value = 3
    }
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
