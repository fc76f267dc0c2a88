job "web" {
  group "web" {
    task "api" {
      config { image = "traefik/whoami" }
    }
  }
}
