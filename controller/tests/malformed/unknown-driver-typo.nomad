job "web" {
  group "web" {
    task "api" {
      driver = "dokcer"
      config { image = "traefik/whoami" }
    }
  }
}
