job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami:v2" }
    }
  }
}
